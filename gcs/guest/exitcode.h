/* Exit codes reported by WaitForProcess (gcs-bridge.md §6.5). */
#ifndef GCS_GUEST_EXITCODE_H
#define GCS_GUEST_EXITCODE_H

#include <stdint.h>

/* Container processes: exit status, or 128 + signo after a signal. */
uint32_t gcs_exit_code_container(int wait_status);
/* Processes run in the UVM itself: exit status, or 0xFFFFFFFF (Go's -1)
 * after a signal. */
uint32_t gcs_exit_code_uvm(int wait_status);
/* Rebuilds a wait status from libuv's exit callback arguments. */
int gcs_wait_status_from_uv(int64_t exit_status, int term_signal);

#endif
