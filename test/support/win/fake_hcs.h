/* Pieces every fake computecore table in the Windows unit tests needs. */
#ifndef TEST_SUPPORT_WIN_FAKE_HCS_H
#define TEST_SUPPORT_WIN_FAKE_HCS_H

#include <winsock2.h> /* before windows.h, as libuv needs */
#include <windows.h>

#include <computedefs.h>

/* A result document as HCS hands it out: UTF-16 in LocalAlloc memory (the
 * backend frees it with LocalFree). NULL for NULL. */
PWSTR fake_hcs_doc(const char *utf8);
/* Raises an event the way HCS does: on a thread that is not the loop's;
 * returns once the callback has run. */
void fake_hcs_raise_event(HCS_EVENT_CALLBACK cb, void *ctx, HCS_EVENT_TYPE type, const char *data);

#endif
