/* uvm-helper: small static helper for the utility VM's /init (busybox sh has
 * no way to wait on a virtio-serial port or an input device).
 *
 *   uvm-helper port-path NAME [TIMEOUT_MS]
 *       prints /dev/vportNpM of the virtio-serial port named NAME (waits for
 *       it to appear: the module may still be probing).
 *   uvm-helper bridge-exec NAME TIMEOUT_MS CMD [ARGS...]
 *       opens the port NAME, waits until the host side is connected (while it
 *       is not, the guest sees POLLHUP and read() == 0), then runs CMD with a
 *       socket on fds 0 and 1 and relays between that socket and the port.
 *       The agent runs its bridge on stdin/stdout. SIGTERM/SIGINT are passed
 *       on; the exit status is CMD's.
 *   uvm-helper insmod [--nice N] LIST...
 *       loads the modules named in each LIST file (one path relative to
 *       /lib/modules per line, dependency order) in this one process: one
 *       busybox insmod per module costs a fork+exec each, slow under TCG.
 *       Failures (ENODEV on this CPU, already loaded) are skipped. --nice:
 *       at that scheduling priority (background loading).
 *   uvm-helper move-root INIT [ARGS...]      (exec'd by PID 1)
 *       makes the root an ordinary mount (bind / onto /newroot, move it over
 *       /, chroot) and execs INIT with UVM_STAGE=2: crun's pivot_root fails
 *       while the root is the initramfs itself. Kernel argument
 *       uvm.switchroot=0 skips the move.
 *   uvm-helper setup
 *       stage-2 basics in one process: proc, sysfs, devtmpfs, devpts, shm,
 *       /run, /tmp, cgroup2 (+cpu +memory +pids +io), then the modules of
 *       early.list, early-mmio.list or early-pci.list, channel.list; a child
 *       loads late.list (+ extra.list with uvm.extramodules=1) meanwhile at
 *       nice 19 (unless uvm.latemodules=0),
 *       then makes /dev/virtio-ports/<name> and prints "uvm: modules loaded".
 *   uvm-helper powerbtn
 *       waits for KEY_POWER on any /dev/input/event* (the ACPI power button
 *       QEMU's system_powerdown presses) and exits 0.
 *
 * Built statically by scripts/build-uvm.sh; not part of any library. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/input.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PORTS_DIR "/sys/class/virtio-ports"
#define MAX_INPUTS 32

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Finds the port whose sysfs name is NAME; writes "/dev/vportNpM" to out. */
static int find_port_once(const char *name, char *out, size_t outlen)
{
    DIR *d = opendir(PORTS_DIR);
    if (!d)
        return -1;
    struct dirent *e;
    int found = -1;
    while (found < 0 && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char path[512], buf[256];
        snprintf(path, sizeof(path), PORTS_DIR "/%s/name", e->d_name);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        ssize_t n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        if (n <= 0)
            continue;
        buf[n] = '\0';
        buf[strcspn(buf, "\n")] = '\0';
        if (strcmp(buf, name) == 0) {
            snprintf(out, outlen, "/dev/%s", e->d_name);
            found = 0;
        }
    }
    closedir(d);
    return found;
}

static int find_port(const char *name, long timeout_ms, char *out, size_t outlen)
{
    long long deadline = now_ms() + timeout_ms;
    for (;;) {
        if (find_port_once(name, out, outlen) == 0 && access(out, R_OK | W_OK) == 0)
            return 0;
        if (now_ms() >= deadline)
            return -1;
        sleep_ms(2);
    }
}

/* The port reports POLLHUP while no host is connected. */
static int wait_host_connected(int fd, long long deadline)
{
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN | POLLOUT};
        int r = poll(&p, 1, 10);
        if (r < 0 && errno != EINTR)
            return -1;
        if (r > 0 && !(p.revents & POLLHUP))
            return 0;
        if (now_ms() >= deadline)
            return -1;
        if (r > 0)
            sleep_ms(5); /* POLLHUP does not block: do not spin */
    }
}

static int cmd_port_path(int argc, char **argv)
{
    char dev[300];
    long timeout = argc > 3 ? atol(argv[3]) : 5000;
    if (find_port(argv[2], timeout, dev, sizeof(dev)) < 0) {
        fprintf(stderr, "uvm-helper: no virtio-serial port named %s\n", argv[2]);
        return 1;
    }
    puts(dev);
    return 0;
}

static volatile sig_atomic_t pending_signal;

static void on_signal(int sig)
{
    pending_signal = sig;
}

/* Writes all of buf to fd (blocking). */
static int write_all(int fd, const char *buf, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, buf, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        buf += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Copies between the port and the agent's socket until either side ends. A
 * port read of 0 means the host went away: the agent gets EOF on its bridge
 * (hcsshim's GCS treats that as the end of the session). */
static void relay(int port, int sock, pid_t child)
{
    static char buf[65536];
    for (;;) {
        if (pending_signal) {
            kill(child, pending_signal);
            pending_signal = 0;
        }
        struct pollfd p[2] = {{.fd = port, .events = POLLIN}, {.fd = sock, .events = POLLIN}};
        int r = poll(p, 2, -1);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return;
        }
        if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t n = read(port, buf, sizeof(buf));
            if (n < 0 && (errno == EINTR || errno == EAGAIN))
                continue;
            if (n <= 0 || write_all(sock, buf, (size_t)n) < 0)
                return;
        }
        if (p[1].revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t n = read(sock, buf, sizeof(buf));
            if (n < 0 && (errno == EINTR || errno == EAGAIN))
                continue;
            if (n <= 0 || write_all(port, buf, (size_t)n) < 0)
                return;
        }
    }
}

static int cmd_bridge_exec(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: uvm-helper bridge-exec NAME TIMEOUT_MS CMD [ARGS...]\n");
        return 2;
    }
    long timeout = atol(argv[3]);
    long long deadline = now_ms() + timeout;
    char dev[300];
    if (find_port(argv[2], timeout, dev, sizeof(dev)) < 0) {
        fprintf(stderr, "uvm-helper: no virtio-serial port named %s\n", argv[2]);
        return 1;
    }
    int port = open(dev, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (port < 0) {
        fprintf(stderr, "uvm-helper: open %s: %s\n", dev, strerror(errno));
        return 1;
    }
    if (wait_host_connected(port, deadline) < 0) {
        fprintf(stderr, "uvm-helper: host never connected to %s\n", dev);
        return 1;
    }
    /* The agent gets a socket (its well-tested path) and never sees the
     * port's quirks: single open, EOF-while-disconnected, no shutdown(2). */
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
        fprintf(stderr, "uvm-helper: socketpair: %s\n", strerror(errno));
        return 1;
    }
    struct sigaction sa = {.sa_handler = on_signal}; /* no SA_RESTART: poll sees EINTR */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    pid_t child = fork();
    if (child < 0) {
        fprintf(stderr, "uvm-helper: fork: %s\n", strerror(errno));
        return 1;
    }
    if (child == 0) {
        signal(SIGTERM, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        if (dup2(sv[1], 0) < 0 || dup2(sv[1], 1) < 0)
            _exit(127);
        execv(argv[4], &argv[4]);
        fprintf(stderr, "uvm-helper: exec %s: %s\n", argv[4], strerror(errno));
        _exit(127);
    }
    close(sv[1]);
    relay(port, sv[0], child);
    close(sv[0]); /* the agent sees EOF on its bridge */
    int status = 0;
    while (waitpid(child, &status, 0) < 0) {
        if (errno != EINTR)
            return 1;
        if (pending_signal) {
            kill(child, pending_signal);
            pending_signal = 0;
        }
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static int load_module(const char *rel)
{
    char path[600];
    snprintf(path, sizeof(path), "/lib/modules/%s", rel);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = (int)syscall(SYS_finit_module, fd, "", 0);
    if (rc < 0 && errno != EEXIST)
        fprintf(stderr, "uvm-helper: %s: %s\n", rel, strerror(errno));
    close(fd);
    return rc;
}

static int cmd_insmod(int argc, char **argv)
{
    int first = 2;
    if (argc > 3 && strcmp(argv[2], "--nice") == 0) {
        /* Background loading yields the vCPU to the agent (one vCPU: the
         * agent's start would otherwise wait for ~0.5 s of module loading). */
        if (setpriority(PRIO_PROCESS, 0, atoi(argv[3])) < 0)
            perror("uvm-helper: setpriority");
        first = 4;
    }
    for (int i = first; i < argc; i++) {
        FILE *f = fopen(argv[i], "re");
        if (!f)
            continue;
        char line[512];
        while (fgets(line, sizeof(line), f)) {
            line[strcspn(line, "\r\n")] = '\0';
            if (line[0])
                load_module(line);
        }
        fclose(f);
    }
    return 0;
}

static void try_mount(const char *src, const char *target, const char *type, unsigned long flags,
                      const char *data)
{
    if (mount(src, target, type, flags, data) < 0 && errno != EBUSY)
        fprintf(stderr, "uvm-helper: mount %s on %s: %s\n", type ? type : src, target,
                strerror(errno));
}

static bool cmdline_has(const char *word)
{
    char buf[4096];
    int fd = open("/proc/cmdline", O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? read(fd, buf + 1, sizeof(buf) - 3) : -1;
    if (fd >= 0)
        close(fd);
    if (n <= 0)
        return false;
    buf[0] = ' ';
    buf[n + 1] = '\0';
    buf[strcspn(buf, "\n")] = '\0';
    strcat(buf, " ");
    char pat[128];
    snprintf(pat, sizeof(pat), " %s ", word);
    return strstr(buf, pat) != NULL;
}

static int cmd_move_root(int argc, char **argv)
{
    if (argc < 3)
        return 2;
    setenv("UVM_STAGE", "2", 1);
    try_mount("proc", "/proc", "proc", 0, NULL);
    if (!cmdline_has("uvm.switchroot=0")) {
        if (mount("/", "/newroot", NULL, MS_BIND, NULL) < 0 || chdir("/newroot") < 0 ||
            mount(".", "/", NULL, MS_MOVE, NULL) < 0 || chroot(".") < 0 || chdir("/") < 0)
            fprintf(stderr, "uvm-helper: moving the root: %s; staying on the initramfs\n",
                    strerror(errno));
    }
    execv(argv[2], &argv[2]);
    fprintf(stderr, "uvm-helper: exec %s: %s\n", argv[2], strerror(errno));
    return 127;
}

/* /dev/virtio-ports/<name> links, as udev would make them (there is no udev). */
static void link_ports(void)
{
    mkdir("/dev/virtio-ports", 0755);
    DIR *d = opendir(PORTS_DIR);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char path[300], name[128], dev[300], link[300];
        snprintf(path, sizeof(path), "%s/%s/name", PORTS_DIR, e->d_name);
        FILE *f = fopen(path, "re");
        if (!f)
            continue;
        if (fgets(name, sizeof(name), f)) {
            name[strcspn(name, "\n")] = '\0';
            snprintf(dev, sizeof(dev), "/dev/%s", e->d_name);
            snprintf(link, sizeof(link), "/dev/virtio-ports/%s", name);
            if (name[0] && !strchr(name, '/')) {
                unlink(link);
                if (symlink(dev, link) < 0)
                    fprintf(stderr, "uvm-helper: symlink %s: %s\n", link, strerror(errno));
            }
        }
        fclose(f);
    }
    closedir(d);
}

/* The late modules (SCSI disks, ext4, overlay; with uvm.extramodules=1 also
 * 9p, fuse, virtiofs, net, vsock) in a child at the lowest priority, started
 * before the channel modules: with two or more vCPUs they load next to the
 * agent's start, so the first container's disk is usable sooner; with one
 * vCPU they yield to it. */
static void start_late_modules(void)
{
    pid_t pid = fork();
    if (pid != 0) {
        if (pid < 0)
            perror("uvm-helper: fork");
        return;
    }
    char *lists[] = {"uvm-helper",
                     "insmod",
                     "--nice",
                     "19",
                     "/lib/modules/late.list",
                     "/lib/modules/extra.list"};
    if (!cmdline_has("uvm.latemodules=0"))
        cmd_insmod(cmdline_has("uvm.extramodules=1") ? 6 : 5, lists);
    /* The boot-time ports exist once virtio_console (the parent) probed. */
    char gcs_port[300];
    find_port("gcs", 10000, gcs_port, sizeof(gcs_port));
    link_ports();
    char up[64] = "?";
    FILE *f = fopen("/proc/uptime", "re");
    if (f) {
        if (fscanf(f, "%63s", up) != 1)
            strcpy(up, "?");
        fclose(f);
    }
    fprintf(stderr, "uvm: modules loaded (up %ss)\n", up);
    _exit(0);
}

static int cmd_setup(void)
{
    try_mount("proc", "/proc", "proc", 0, NULL);
    try_mount("sysfs", "/sys", "sysfs", 0, NULL);
    try_mount("devtmpfs", "/dev", "devtmpfs", 0, NULL);
    mkdir("/dev/pts", 0755);
    mkdir("/dev/shm", 01777);
    try_mount("devpts", "/dev/pts", "devpts", 0, "newinstance,ptmxmode=0666");
    try_mount("shm", "/dev/shm", "tmpfs", 0, "mode=1777");
    try_mount("run", "/run", "tmpfs", 0, "mode=0755");
    try_mount("tmp", "/tmp", "tmpfs", 0, "mode=1777");
    try_mount("cgroup2", "/sys/fs/cgroup", "cgroup2", 0, NULL);
    int fd = open("/sys/fs/cgroup/cgroup.subtree_control", O_WRONLY | O_CLOEXEC);
    if (fd >= 0) {
        /* One at a time: a controller the kernel lacks must not block the rest. */
        const char *ctl[] = {"+cpu", "+memory", "+pids", "+io"};
        for (size_t i = 0; i < sizeof(ctl) / sizeof(ctl[0]); i++) {
            if (write(fd, ctl[i], strlen(ctl[i])) < 0 && errno != EINVAL)
                break;
        }
        close(fd);
    }
    /* virtio over mmio (microvm) or pci (pc/q35). */
    bool pci = false;
    DIR *d = opendir("/sys/bus/pci/devices");
    if (d) {
        struct dirent *e;
        while (!pci && (e = readdir(d)) != NULL)
            pci = e->d_name[0] != '.';
        closedir(d);
    }
    /* The virtio core first: the late modules depend on it. */
    char *core[] = {"uvm-helper", "insmod", "/lib/modules/early.list"};
    cmd_insmod(3, core);
    start_late_modules();
    char *lists[] = {"uvm-helper", "insmod",
                     pci ? "/lib/modules/early-pci.list" : "/lib/modules/early-mmio.list",
                     "/lib/modules/channel.list"};
    return cmd_insmod(4, lists);
}

static int open_inputs(struct pollfd *fds)
{
    DIR *d = opendir("/dev/input");
    int n = 0;
    if (!d)
        return 0;
    struct dirent *e;
    while (n < MAX_INPUTS && (e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, "event", 5) != 0)
            continue;
        char path[300];
        snprintf(path, sizeof(path), "/dev/input/%s", e->d_name);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd >= 0)
            fds[n++] = (struct pollfd){.fd = fd, .events = POLLIN};
    }
    closedir(d);
    return n;
}

static int cmd_powerbtn(void)
{
    struct pollfd fds[MAX_INPUTS];
    int n;
    /* evdev/button load in the background: wait for the device nodes. */
    while ((n = open_inputs(fds)) == 0)
        sleep_ms(100);
    for (;;) {
        if (poll(fds, n, -1) < 0) {
            if (errno == EINTR)
                continue;
            return 1;
        }
        for (int i = 0; i < n; i++) {
            if (!(fds[i].revents & POLLIN))
                continue;
            struct input_event ev[16];
            ssize_t r = read(fds[i].fd, ev, sizeof(ev));
            for (ssize_t k = 0; r > 0 && k < r / (ssize_t)sizeof(ev[0]); k++) {
                if (ev[k].type == EV_KEY && ev[k].code == KEY_POWER && ev[k].value == 1)
                    return 0;
            }
        }
    }
}

int main(int argc, char **argv)
{
    if (argc >= 3 && strcmp(argv[1], "port-path") == 0)
        return cmd_port_path(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "bridge-exec") == 0)
        return cmd_bridge_exec(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "insmod") == 0)
        return cmd_insmod(argc, argv);
    if (argc >= 3 && strcmp(argv[1], "move-root") == 0)
        return cmd_move_root(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "setup") == 0)
        return cmd_setup();
    if (argc >= 2 && strcmp(argv[1], "powerbtn") == 0)
        return cmd_powerbtn();
    fprintf(stderr,
            "usage: uvm-helper port-path NAME [TIMEOUT_MS] | bridge-exec NAME TIMEOUT_MS "
            "CMD [ARGS...] | insmod LIST... | move-root INIT [ARGS...] | setup | powerbtn\n");
    return 2;
}
