#include "test/support/win/fake_hcs.h"

#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "hcs/win/utf16.h"

PWSTR fake_hcs_doc(const char *utf8)
{
    if (utf8 == NULL)
        return NULL;
    wchar_t *w = hcs_utf8_to_utf16(utf8, NULL);
    if (w == NULL)
        return NULL;
    size_t bytes = (wcslen(w) + 1) * sizeof(wchar_t);
    PWSTR out = LocalAlloc(LMEM_FIXED, bytes);
    if (out != NULL)
        memcpy(out, w, bytes);
    free(w);
    return out;
}

struct event_call {
    HCS_EVENT_CALLBACK cb;
    void *ctx;
    HCS_EVENT_TYPE type;
    const char *data;
};

static void event_thread(void *opaque)
{
    struct event_call *c = opaque;
    wchar_t *w = c->data ? hcs_utf8_to_utf16(c->data, NULL) : NULL;
    HCS_EVENT ev = {.Type = c->type, .EventData = w, .Operation = NULL};
    c->cb(&ev, c->ctx);
    free(w);
}

void fake_hcs_raise_event(HCS_EVENT_CALLBACK cb, void *ctx, HCS_EVENT_TYPE type, const char *data)
{
    struct event_call c = {cb, ctx, type, data};
    uv_thread_t t;
    if (uv_thread_create(&t, event_thread, &c) == 0)
        uv_thread_join(&t);
}
