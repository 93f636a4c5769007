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
#endif

uint64_t qemu_host_tsc_khz(void)
{
#ifdef HAVE_RDTSC
    static uint64_t cached;
    if (cached)
        return cached;
    /* Two samples 20 ms apart; take the better of three tries (preemption
     * between the two reads only makes a sample longer, never shorter). */
    double best = 0;
    for (int i = 0; i < 3; i++) {
        double t0 = now_ns();
        uint64_t c0 = __rdtsc();
        struct timespec d = {0, 20 * 1000 * 1000};
        nanosleep(&d, NULL);
        uint64_t c1 = __rdtsc();
        double t1 = now_ns();
        double khz = (double)(c1 - c0) / ((t1 - t0) / 1e6);
        if (best == 0 || khz > best)
            best = khz;
    }
    cached = (uint64_t)(best + 0.5);
    return cached;
#else
    return 0;
#endif
}
