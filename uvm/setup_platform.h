/* What uvm/setup.c asks of the platform (uvm/unix/setup.c, uvm/win/setup.c). */
#ifndef UVM_SETUP_PLATFORM_H
#define UVM_SETUP_PLATFORM_H

#include <jansson.h>

#include "common/error.h"
#include "uvm/options.h"

/* This host as the LCOW option code sees it (build gates, processors, file probing). */
void uvm_platform_host(struct uvm_host *host);
/* Adjusts a finished UVM document to what this platform's compute service
 * takes (QEMU: host paths with '/'); HCS takes it as it is. */
int uvm_platform_fix_document(json_t *doc, shim_error_t **err);
/* Why host bind mounts are dropped here, for the warning. */
extern const char uvm_platform_no_shares_reason[];

#endif
