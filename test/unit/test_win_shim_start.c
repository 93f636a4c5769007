/* The Windows shim's `start` (shim/win/start.c) and serving daemon
 * (shim/win/daemon*.c), under wine via `make test-windows`: hcsshim's pipe
 * names; a live pipe is detected; start spawns the daemon (this very test
 * executable, which turns into the daemon when it sees -socket), waits for
 * it to serve, prints the address, reuses a live shim; a daemon that fails
 * before serving makes start fail with its message; the daemon's log reaches
 * a client of the log pipe; a process-isolated Create answers Unimplemented
 * (Argon); Shutdown ends the daemon; delete answers and reports panic.log. The naming case runs on
 * Linux too; the others are Windows-only and report a skip there. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <uv.h>

#include "containerd/task/v2/shim.pb-c.h"
#include "shim/cli.h"
#include "shim/daemon.h"
#include "shim/socket.h"
#include "shim/start.h"
#include "ttrpc/ttrpc.h"

#ifdef _WIN32
#include <direct.h>
#include <fcntl.h>
#include <io.h>
#include <windows.h>
#endif

#define WAIT_MS 20000
#define FAIL_PREFIX "fail-"
#define FAIL_TEXT "cannot serve: the test asked for a failure"

static void test_pipe_names(void **state)
{
    (void)state;
    char *addr = shim_pipe_address(NULL, "default", "t1", NULL);
    assert_string_equal(
        addr, "\\\\.\\pipe\\ProtectedPrefix\\Administrators\\containerd-shim-default-t1-pipe");
    free(addr);
    char *log = shim_log_pipe_address("k8s.io", "pod1", NULL);
    assert_string_equal(log, "\\\\.\\pipe\\containerd-shim-k8s.io-pod1-log");
    free(log);
    char longid[300];
    memset(longid, 'x', sizeof(longid) - 1);
    longid[sizeof(longid) - 1] = '\0';
    shim_error_t *err = NULL;
    assert_null(shim_pipe_address(NULL, "default", longid, &err));
    assert_int_equal(err->code, RPC_INVALID_ARGUMENT);
    error_free(err);
    err = NULL;
    assert_null(shim_log_pipe_address("default", longid, &err));
    assert_int_equal(err->code, RPC_INVALID_ARGUMENT);
    error_free(err);
    /* What start prints: the pipe on Windows, runc's hashed socket on Linux. */
    char *serve = shim_serve_address("/run/containerd/containerd.sock", "default", "t1", NULL);
#ifdef _WIN32
    assert_string_equal(
        serve, "\\\\.\\pipe\\ProtectedPrefix\\Administrators\\containerd-shim-default-t1-pipe");
#else
    assert_string_equal(serve, "unix:///run/containerd/s/"
                               "df6a0c5cd2e9a1a16d9a3f2447365d9fc6021bc1d3d9a4caa2f5b2c4f773758f");
#endif
    free(serve);
}

#ifdef _WIN32

/* ---- the test executable as the daemon ---------------------------------- */

/* Like the real daemon's failure before serving: text on stdout, exit. */
static int serve_failing(void)
{
    DWORD n = 0;
    WriteFile(GetStdHandle(STD_OUTPUT_HANDLE), FAIL_TEXT, (DWORD)strlen(FAIL_TEXT), &n, NULL);
    return 1;
}

static int run_as_daemon(int argc, char **argv)
{
    struct shim_cli_args args;
    if (shim_cli_parse(argc, argv, &args, NULL) < 0)
        return 2;
    if (strncmp(args.id, FAIL_PREFIX, strlen(FAIL_PREFIX)) == 0)
        return serve_failing();
    return shim_daemon_run(&args);
}

/* ---- helpers --------------------------------------------------------------- */

struct fixture {
    char self[MAX_PATH];
    char bundle[MAX_PATH];
    char ns[32];
    char id[64];
    char *addr; /* the daemon's pipe, once started */
};

static int fixture_counter;

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    size_t n = sizeof(f->self);
    assert_int_equal(uv_exepath(f->self, &n), 0);
    char tmp[MAX_PATH];
    assert_true(GetTempPathA(sizeof(tmp), tmp) > 0);
    int pid = (int)uv_os_getpid();
    snprintf(f->ns, sizeof(f->ns), "ns%d", pid);
    snprintf(f->id, sizeof(f->id), "t%d", fixture_counter++);
    snprintf(f->bundle, sizeof(f->bundle), "%stest_win_shim_start-%d-%s", tmp, pid, f->id);
    assert_int_equal(_mkdir(f->bundle), 0);
    char path[MAX_PATH + 16];
    snprintf(path, sizeof(path), "%s\\config.json", f->bundle);
    FILE *cfg = fopen(path, "wb");
    assert_non_null(cfg);
    fputs("{\"ociVersion\":\"1.0.2\",\"process\":{\"args\":[\"cmd\"],\"cwd\":\"C:\\\\\"},"
          "\"root\":{\"path\":\"rootfs\"},\"windows\":{\"layerFolders\":[]}}",
          cfg);
    fclose(cfg);
    *state = f;
    return 0;
}

static void remove_bundle(const char *bundle)
{
    static const char *const files[] = {"config.json", "address", "shim.pid",
                                        "panic.log",   "out",     "in"};
    char path[MAX_PATH + 16];
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        snprintf(path, sizeof(path), "%s\\%s", bundle, files[i]);
        DeleteFileA(path);
    }
    RemoveDirectoryA(bundle);
}

struct call_result {
    bool done;
    int code;
    char message[512];
    uint32_t shim_pid;
};

static void on_reply(int code, const char *message, const uint8_t *payload, size_t len, void *arg)
{
    struct call_result *r = arg;
    r->done = true;
    r->code = code;
    snprintf(r->message, sizeof(r->message), "%s", message ? message : "");
    Containerd__Task__V2__ConnectResponse *resp =
        code == 0 ? containerd__task__v2__connect_response__unpack(NULL, len, payload) : NULL;
    if (resp != NULL) {
        r->shim_pid = resp->shim_pid;
        containerd__task__v2__connect_response__free_unpacked(resp, NULL);
    }
}

/* One Task call on a private loop; Connect fills shim_pid. */
static struct call_result task_call(const char *addr, const char *method,
                                    const ProtobufCMessage *req)
{
    struct call_result r = {0};
    uv_loop_t loop;
    uv_loop_init(&loop);
    ttrpc_client_t *client = NULL;
    assert_int_equal(ttrpc_client_new(&loop, addr, &client, NULL), 0);
    uint8_t buf[2048];
    assert_true(protobuf_c_message_get_packed_size(req) <= sizeof(buf));
    size_t len = protobuf_c_message_pack(req, buf);
    struct ttrpc_call_args args = {.service = "containerd.task.v2.Task",
                                   .method = method,
                                   .payload = buf,
                                   .len = len,
                                   .timeout_ms = WAIT_MS};
    assert_int_equal(ttrpc_client_call(client, &args, on_reply, &r, NULL), 0);
    while (!r.done)
        uv_run(&loop, UV_RUN_ONCE);
    ttrpc_client_close(client);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    return r;
}

static bool wait_gone(const char *addr)
{
    for (int i = 0; i < WAIT_MS / 50; i++) {
        if (!shim_socket_is_live(addr))
            return true;
        Sleep(50);
    }
    return false;
}

static void shutdown_daemon(struct fixture *f)
{
    Containerd__Task__V2__ShutdownRequest req = CONTAINERD__TASK__V2__SHUTDOWN_REQUEST__INIT;
    req.id = f->id;
    struct call_result r = task_call(f->addr, "Shutdown", &req.base);
    assert_int_equal(r.code, 0);
    assert_true(wait_gone(f->addr));
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    if (f->addr != NULL && shim_socket_is_live(f->addr)) {
        /* A failed case must not leave a daemon behind (wineserver -w waits). */
        Containerd__Task__V2__ShutdownRequest req = CONTAINERD__TASK__V2__SHUTDOWN_REQUEST__INIT;
        req.id = f->id;
        req.now = true;
        task_call(f->addr, "Shutdown", &req.base);
        wait_gone(f->addr);
    }
    free(f->addr);
    remove_bundle(f->bundle);
    free(f);
    return 0;
}

/* Runs shim_start with empty options; returns its result, *out the output. */
static int run_start(struct fixture *f, char *out, size_t out_size, shim_error_t **err)
{
    char in_path[MAX_PATH + 8], out_path[MAX_PATH + 8];
    snprintf(in_path, sizeof(in_path), "%s\\in", f->bundle);
    snprintf(out_path, sizeof(out_path), "%s\\out", f->bundle);
    int in_fd = _open(in_path, _O_RDWR | _O_CREAT | _O_TRUNC | _O_BINARY, 0600);
    int out_fd = _open(out_path, _O_RDWR | _O_CREAT | _O_TRUNC | _O_BINARY, 0600);
    assert_true(in_fd >= 0 && out_fd >= 0);
    char *argv[] = {
        f->self,   "-namespace", f->ns,   "-id", f->id, "-address", "\\\\.\\pipe\\test-containerd",
        "-bundle", f->bundle,    "start", NULL};
    struct shim_cli_args args;
    assert_int_equal(shim_cli_parse(10, argv, &args, NULL), 0);
    int rc = shim_start(&args, f->self, in_fd, out_fd, err);
    _lseek(out_fd, 0, SEEK_SET);
    int n = _read(out_fd, out, (unsigned)out_size - 1);
    out[n > 0 ? n : 0] = '\0';
    _close(in_fd);
    _close(out_fd);
    return rc;
}

static char *read_bundle_file(const struct fixture *f, const char *name)
{
    char path[MAX_PATH + 16];
    snprintf(path, sizeof(path), "%s\\%s", f->bundle, name);
    FILE *fp = fopen(path, "rb");
    if (fp == NULL)
        return NULL;
    char *buf = calloc(1, 512);
    size_t n = fread(buf, 1, 511, fp);
    buf[n] = '\0';
    fclose(fp);
    return buf;
}

/* ---- cases ----------------------------------------------------------------- */

static void on_server_stopped(void *arg)
{
    *(bool *)arg = true;
}

static void test_live_pipe_detection(void **state)
{
    struct fixture *f = *state;
    char name[128];
    snprintf(name, sizeof(name), "\\\\.\\pipe\\test_win_shim_start-%s-%s", f->ns, f->id);
    assert_false(shim_socket_is_live(name));
    assert_false(shim_socket_is_live("not-a-pipe"));
    uv_loop_t loop;
    uv_loop_init(&loop);
    ttrpc_server_t *server = NULL;
    struct ttrpc_server_options opts = {0};
    assert_int_equal(ttrpc_server_new(&loop, &opts, &server, NULL), 0);
    assert_int_equal(ttrpc_server_listen(server, name, NULL), 0);
    assert_true(shim_socket_is_live(name));
    assert_int_equal(shim_socket_remove(name, NULL), 0); /* a no-op for pipes */
    bool stopped = false;
    ttrpc_server_shutdown(server, 0, on_server_stopped, &stopped);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_true(stopped);
    assert_int_equal(uv_loop_close(&loop), 0);
    assert_false(shim_socket_is_live(name));
}

static void test_start_spawns_then_reuses(void **state)
{
    struct fixture *f = *state;
    char out[512];
    shim_error_t *err = NULL;
    int rc = run_start(f, out, sizeof(out), &err);
    if (rc < 0)
        fail_msg("start: %s", err->msg);
    f->addr = shim_pipe_address(NULL, f->ns, f->id, NULL);
    assert_string_equal(out, f->addr); /* the plain address, nothing else */
    assert_true(shim_socket_is_live(f->addr));
    char *address = read_bundle_file(f, "address");
    assert_non_null(address);
    assert_string_equal(address, f->addr);
    free(address);
    char *pid_text = read_bundle_file(f, "shim.pid");
    assert_non_null(pid_text);
    int daemon_pid = atoi(pid_text);
    free(pid_text);
    assert_true(daemon_pid > 0);

    /* The daemon answers Connect with its own pid. */
    Containerd__Task__V2__ConnectRequest connect = CONTAINERD__TASK__V2__CONNECT_REQUEST__INIT;
    connect.id = f->id;
    struct call_result r = task_call(f->addr, "Connect", &connect.base);
    assert_int_equal(r.code, 0);
    assert_int_equal((int)r.shim_pid, daemon_pid);

    /* A second start finds the live shim: same address, its pid. */
    rc = run_start(f, out, sizeof(out), &err);
    if (rc < 0)
        fail_msg("second start: %s", err->msg);
    assert_string_equal(out, f->addr);
    pid_text = read_bundle_file(f, "shim.pid");
    assert_int_equal(atoi(pid_text), daemon_pid);
    free(pid_text);

    shutdown_daemon(f);
}

static void test_start_reports_daemon_failure(void **state)
{
    struct fixture *f = *state;
    snprintf(f->id, sizeof(f->id), FAIL_PREFIX "%d", fixture_counter);
    char out[512];
    shim_error_t *err = NULL;
    assert_int_equal(run_start(f, out, sizeof(out), &err), -1);
    assert_non_null(strstr(err->msg, FAIL_TEXT));
    error_free(err);
    assert_string_equal(out, ""); /* nothing printed */
    char *address = read_bundle_file(f, "address");
    assert_null(address);
}

/* A WCOW spec without spec.windows.hyperv asks for process isolation
 * (Argon), which the Windows shim does not implement: Create says so. */
static void test_create_process_isolated_is_unimplemented(void **state)
{
    struct fixture *f = *state;
    char out[512];
    shim_error_t *err = NULL;
    if (run_start(f, out, sizeof(out), &err) < 0)
        fail_msg("start: %s", err->msg);
    f->addr = shim_pipe_address(NULL, f->ns, f->id, NULL);
    Containerd__Task__V2__CreateTaskRequest req = CONTAINERD__TASK__V2__CREATE_TASK_REQUEST__INIT;
    req.id = f->id;
    req.bundle = f->bundle;
    struct call_result r = task_call(f->addr, "Create", &req.base);
    assert_int_equal(r.code, RPC_UNIMPLEMENTED);
    if (strstr(r.message, "process isolation on Windows (Argon) is not implemented") == NULL)
        fail_msg("Create answered: %s", r.message);
    shutdown_daemon(f);
}

/* delete on Windows: -bundle (not the cwd), the DeleteResponse, the
 * daemon's panic.log as a cleanup warning, and no complaint when there is no
 * compute system left to terminate. */
static void test_delete(void **state)
{
    struct fixture *f = *state;
    char path[MAX_PATH + 16];
    snprintf(path, sizeof(path), "%s\\panic.log", f->bundle);
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    fputs("panic: something broke", fp);
    fclose(fp);
    char out_path[MAX_PATH + 8], warn_path[MAX_PATH + 8];
    snprintf(out_path, sizeof(out_path), "%s\\out", f->bundle);
    snprintf(warn_path, sizeof(warn_path), "%s\\in", f->bundle);
    int out_fd = _open(out_path, _O_RDWR | _O_CREAT | _O_TRUNC | _O_BINARY, 0600);
    int warn_fd = _open(warn_path, _O_RDWR | _O_CREAT | _O_TRUNC | _O_BINARY, 0600);
    assert_true(out_fd >= 0 && warn_fd >= 0);
    char *argv[] = {f->self,   "-namespace", f->ns,    "-id", f->id,
                    "-bundle", f->bundle,    "delete", NULL};
    struct shim_cli_args args;
    assert_int_equal(shim_cli_parse(8, argv, &args, NULL), 0);
    assert_int_equal(shim_delete(&args, out_fd, warn_fd, NULL), 0);
    uint8_t resp_buf[128];
    _lseek(out_fd, 0, SEEK_SET);
    int n = _read(out_fd, resp_buf, sizeof(resp_buf));
    assert_true(n > 0);
    Containerd__Task__V2__DeleteResponse *resp =
        containerd__task__v2__delete_response__unpack(NULL, (size_t)n, resp_buf);
    assert_non_null(resp);
    assert_int_equal(resp->exit_status, 255);
    assert_non_null(resp->exited_at);
    assert_true(resp->exited_at->seconds > 0);
    containerd__task__v2__delete_response__free_unpacked(resp, NULL);
    char warn[512];
    _lseek(warn_fd, 0, SEEK_SET);
    n = _read(warn_fd, warn, sizeof(warn) - 1);
    warn[n > 0 ? n : 0] = '\0';
    assert_non_null(strstr(warn, "panic: something broke"));
    /* no HCS under wine: the crashed-shim cleanup finds nothing to terminate, quietly */
    assert_null(strstr(warn, "compute system"));
    _close(out_fd);
    _close(warn_fd);
}

/* containerd reads the daemon's log from \\.\pipe\containerd-shim-<ns>-<id>-log. */
static void test_log_pipe(void **state)
{
    struct fixture *f = *state;
    char out[512];
    shim_error_t *err = NULL;
    if (run_start(f, out, sizeof(out), &err) < 0)
        fail_msg("start: %s", err->msg);
    f->addr = shim_pipe_address(NULL, f->ns, f->id, NULL);
    char *log_name = shim_log_pipe_address(f->ns, f->id, NULL);
    HANDLE log = INVALID_HANDLE_VALUE;
    for (int i = 0; i < WAIT_MS / 50 && log == INVALID_HANDLE_VALUE; i++) {
        log = CreateFileA(log_name, GENERIC_READ, 0, NULL, OPEN_EXISTING, 0, NULL);
        if (log == INVALID_HANDLE_VALUE)
            Sleep(50);
    }
    free(log_name);
    assert_true(log != INVALID_HANDLE_VALUE);
    /* The daemon polls for log clients; give it a few polls to switch. */
    Sleep(1000);
    shutdown_daemon(f);
    char text[8192];
    size_t len = 0;
    DWORD got = 0;
    while (len < sizeof(text) - 1 &&
           ReadFile(log, text + len, (DWORD)(sizeof(text) - 1 - len), &got, NULL) && got > 0)
        len += got;
    text[len] = '\0';
    CloseHandle(log);
    if (strstr(text, "msg=\"shutdown requested\"") == NULL)
        fail_msg("log pipe got: \"%s\"", text);
    assert_non_null(strstr(text, "msg=\"shim exiting\""));
}

#else /* !_WIN32 */

static void windows_only(void **state)
{
    (void)state;
    print_message("skipped: spawning the Windows daemon needs Windows (make test-windows)\n");
    skip();
}

#endif

int main(int argc, char **argv)
{
#ifdef _WIN32
    /* start spawns this executable as the daemon: it serves instead. */
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-socket") == 0)
            return run_as_daemon(argc, argv);
    }
    setvbuf(stdout, NULL, _IONBF, 0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pipe_names),
        cmocka_unit_test_setup_teardown(test_live_pipe_detection, setup, teardown),
        cmocka_unit_test_setup_teardown(test_start_spawns_then_reuses, setup, teardown),
        cmocka_unit_test_setup_teardown(test_start_reports_daemon_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_create_process_isolated_is_unimplemented, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_log_pipe, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete, setup, teardown),
    };
#else
    (void)argc;
    (void)argv;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pipe_names),
        cmocka_unit_test(windows_only),
    };
#endif
    return cmocka_run_group_tests(tests, NULL, NULL);
}
