#include "hcs/qemu_host.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#define HAVE_RDTSC 1
#endif

#define KVM_GET_API_VERSION_IOCTL 0xAE00 /* _IO(KVMIO, 0x00) */

static bool cpu_has_hw_virt(void)
{
    FILE *f = fopen("/proc/cpuinfo", "re");
    if (!f)
        return false;
    char line[4096];
    bool found = false;
    while (!found && fgets(line, sizeof(line), f)) {
        if (strncmp(line, "flags", 5) != 0)
            continue;
        found = strstr(line, " vmx") != NULL || strstr(line, " svm") != NULL;
        break;
    }
    fclose(f);
    return found;
}

bool qemu_host_kvm_usable(void)
{
    int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return false;
    int version = ioctl(fd, KVM_GET_API_VERSION_IOCTL, 0);
    close(fd);
    return version == 12 && cpu_has_hw_virt();
}

#ifdef HAVE_RDTSC
static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_RAW, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* One sample: TSC ticks per ms over a sleep of `ms`. Preemption between the
 * paired reads only makes the interval longer, so higher is more accurate. */
static double tsc_sample_khz(long ms)
{
    double t0 = now_ns();
    uint64_t c0 = __rdtsc();
    struct timespec d = {0, ms * 1000 * 1000};
    nanosleep(&d, NULL);
    uint64_t c1 = __rdtsc();
    double t1 = now_ns();
    return (double)(c1 - c0) / ((t1 - t0) / 1e6);
}

/* The host kernel's own figure ("cpu MHz" of a CPU whose TSC runs at a
 * constant rate, e.g. a VM with tsc_known_freq): exact, and free to read. */
static double cpuinfo_khz(void)
{
    FILE *f = fopen("/proc/cpuinfo", "re");
    if (!f)
        return 0;
    char line[4096];
    double mhz = 0;
    bool constant = false, have_mhz = false;
    while (fgets(line, sizeof(line), f)) {
        if (!have_mhz && sscanf(line, "cpu MHz : %lf", &mhz) == 1)
            have_mhz = true;
        else if (strncmp(line, "flags", 5) == 0) {
            constant = strstr(line, " constant_tsc") != NULL;
            break;
        }
    }
    fclose(f);
    return have_mhz && constant ? mhz * 1000.0 : 0;
}

uint64_t qemu_host_tsc_khz(void)
{
    static uint64_t cached;
    if (cached)
        return cached;
    /* Each shim is a new process: a full calibration (3 x 20 ms) would be
     * paid on every UVM start. When /proc/cpuinfo has a figure that one short
     * sample confirms (within 0.5%), use it. */
    double reported = cpuinfo_khz();
    if (reported > 0) {
        double khz = tsc_sample_khz(5);
        if (khz > reported * 0.995 && khz < reported * 1.005) {
            cached = (uint64_t)(reported + 0.5);
            return cached;
        }
    }
    double best = 0;
    for (int i = 0; i < 3; i++) {
        double khz = tsc_sample_khz(20);
        if (khz > best)
            best = khz;
    }
    cached = (uint64_t)(best + 0.5);
    return cached;
}
#else
uint64_t qemu_host_tsc_khz(void)
{
    return 0;
}
#endif
