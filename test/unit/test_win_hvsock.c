/* gcs/win/transport_hvsock.c: the service GUID of a vsock port
 * (gcs-bridge.md §1.1), GUID text form, and a listen attempt that fails
 * cleanly where AF_HYPERV does not exist (wine). Runs via `make
 * test-windows`; on Linux it builds to a single skipped case. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#ifdef _WIN32

#include "gcs/win/transport_hvsock.h"

static void test_service_id_of_port(void **state)
{
    (void)state;
    static const struct {
        uint32_t port;
        const char *guid;
    } cases[] = {
        {0x40000000u, "40000000-facb-11e6-bd58-64006a7986d3"}, /* the bridge */
        {0x40000001u, "40000001-facb-11e6-bd58-64006a7986d3"}, /* first stdio port */
        {1, "00000001-facb-11e6-bd58-64006a7986d3"},           /* entropy */
        {109, "0000006d-facb-11e6-bd58-64006a7986d3"},         /* GCS log */
        {564, "00000234-facb-11e6-bd58-64006a7986d3"},         /* Plan 9 */
        {0xFFFFFFFFu, "ffffffff-facb-11e6-bd58-64006a7986d3"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        GUID g;
        char text[GCS_GUID_STRING_LEN + 1];
        gcs_hvsock_service_id(cases[i].port, &g);
        gcs_guid_format(&g, text);
        assert_string_equal(text, cases[i].guid);
        assert_int_equal(g.Data1, cases[i].port);
    }
}

static void test_guid_parse(void **state)
{
    (void)state;
    GUID g, want;
    gcs_hvsock_service_id(0x40000000u, &want);
    assert_int_equal(gcs_guid_parse("40000000-facb-11e6-bd58-64006a7986d3", &g), 0);
    assert_memory_equal(&g, &want, sizeof(g));
    assert_int_equal(gcs_guid_parse("{40000000-FACB-11E6-BD58-64006A7986D3}", &g), 0);
    assert_memory_equal(&g, &want, sizeof(g));

    const char *vm = "2b3c4d5e-0f1a-4b2c-8d3e-4f5a6b7c8d9e";
    char text[GCS_GUID_STRING_LEN + 1];
    assert_int_equal(gcs_guid_parse(vm, &g), 0);
    gcs_guid_format(&g, text);
    assert_string_equal(text, vm);

    static const char *const bad[] = {
        "",
        "40000000-facb-11e6-bd58-64006a7986d",   /* short */
        "40000000-facb-11e6-bd58-64006a7986d3a", /* long */
        "40000000xfacb-11e6-bd58-64006a7986d3",  /* separator */
        "4000000g-facb-11e6-bd58-64006a7986d3",  /* not hex */
        "{40000000-facb-11e6-bd58-64006a7986d3", /* one brace */
        "40000000-facb-11e6-bd5-864006a7986d3",  /* dash moved */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(gcs_guid_parse(bad[i], &g), -1);
}

static void on_accept(struct gcs_listener *l, uv_stream_t *stream, int status, void *opaque)
{
    (void)l;
    (void)status;
    (void)opaque;
    gcs_stream_close(stream);
}

/* Under wine there is no AF_HYPERV: a clear error, nothing left open. On a
 * Hyper-V host binding to an unknown VM id may work; then close it again. */
static void test_listen_fails_cleanly(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    GUID vm;
    assert_int_equal(gcs_guid_parse("2b3c4d5e-0f1a-4b2c-8d3e-4f5a6b7c8d9e", &vm), 0);
    struct gcs_transport *t = NULL;
    shim_error_t *err = NULL;
    assert_int_equal(gcs_transport_hvsock_new(&loop, &vm, &t, &err), 0);
    struct gcs_listener *l = NULL;
    int rc = gcs_transport_listen(t, 0x40000000u, on_accept, NULL, &l, &err);
    if (rc == 0) {
        assert_int_equal(gcs_listener_port(l), 0x40000000u);
        gcs_listener_close(l);
    } else {
        assert_int_equal(rc, -1);
        assert_null(l);
        assert_non_null(err);
        assert_non_null(strstr(err->msg, "hvsock"));
        assert_true(err->code == RPC_UNAVAILABLE || err->code == RPC_ALREADY_EXISTS);
        print_message("listen failed as expected here: %s\n", err->msg);
        error_free(err);
        err = NULL;
    }
    /* The host never dials the guest. */
    assert_int_equal(gcs_transport_connect(t, 0x40000000u, NULL, NULL, &err), -1);
    assert_int_equal(err->code, RPC_UNIMPLEMENTED);
    error_free(err);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    gcs_transport_destroy(t);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_service_id_of_port),
        cmocka_unit_test(test_guid_parse),
        cmocka_unit_test(test_listen_fails_cleanly),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

#else /* !_WIN32 */

static void test_windows_only(void **state)
{
    (void)state;
    skip(); /* gcs/win/ is built and tested by `make test-windows` */
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_windows_only)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}

#endif
