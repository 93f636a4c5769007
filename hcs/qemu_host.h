/* Host probes for the QEMU backend. */
#ifndef HCS_QEMU_HOST_H
#define HCS_QEMU_HOST_H

#include <stdbool.h>
#include <stdint.h>

/* True when /dev/kvm answers KVM_GET_API_VERSION == 12 and the CPU has
 * hardware virtualization (vmx/svm): a KVM that can run a stock guest
 * kernel (a PVM-only host cannot, linux-uvm.md §1). */
bool qemu_host_kvm_usable(void);
/* The host TSC frequency in kHz (under TCG the guest TSC runs at this rate);
 * measured once against CLOCK_MONOTONIC_RAW. 0 when unknown (not x86). */
uint64_t qemu_host_tsc_khz(void);

#endif
