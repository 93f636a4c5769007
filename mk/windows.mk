# Windows cross-build (x86_64-w64-mingw32), included from the Makefile.
#
#   make windows-deps   mingw-w64, wine64; libuv, jansson, protobuf-c, cmocka
#                       cross-built from Debian sources into build/windows/sysroot
#   make windows        build/windows/containerd-shim-runhcs-v1.exe (PE32+)
#   make test-windows   the portable unit tests as .exe, run under wine64
#
# Module folders contribute <mod>/*.c plus <mod>/win/*.c (instead of unix/).
# The protobuf-c sources are the Linux build's (build/gen): one generator run.
# compat/win/compat.h is force-included to fill mingw's small POSIX gaps.

WIN := build/windows
WIN_HOST := x86_64-w64-mingw32
WIN_CC := $(WIN_HOST)-gcc
WIN_AR := $(WIN_HOST)-ar
WIN_SYSROOT := $(WIN)/sysroot
WIN_OBJ := $(WIN)/obj
WIN_LIB := $(WIN)/lib
WIN_TESTBIN := $(WIN)/test
WIN_EXE := $(WIN)/containerd-shim-runhcs-v1.exe
WIN_PLATFORM := win
WIN_DEPS_STAMP := $(addprefix $(WIN_SYSROOT)/.stamp-,libuv1 jansson protobuf-c cmocka)

WIN_CPPFLAGS := -D_WIN32_WINNT=0x0A00 -DWINVER=0x0A00 -D__USE_MINGW_ANSI_STDIO=1 \
	-D_GNU_SOURCE -include compat/win/compat.h -I. -I$(GEN) -I$(WIN_SYSROOT)/include
WIN_CFLAGS := -std=c11 $(WARN) -g -O2 -MMD -MP
WIN_LDFLAGS := -static -L$(WIN_SYSROOT)/lib
# libuv's own Windows dependencies (its libuv-static.pc), plus winpthreads
# for clock_gettime (timestamps in the shim). No -lcomputecore:
# hcs/win/hcs_api.c loads computecore.dll at run time, so the .exe (and every
# test) starts on hosts without HCS and under wine.
WIN_SYSLIBS := -luv_a -ljansson -lprotobuf-c -lpsapi -luser32 -ladvapi32 -liphlpapi \
	-luserenv -lws2_32 -ldbghelp -lole32 -lshell32 -luuid -lpthread

define win_module_rules
WIN_$(1)_SRC := $$(wildcard $(1)/*.c) $$(wildcard $(1)/$(WIN_PLATFORM)/*.c)
WIN_$(1)_OBJ := $$(patsubst %.c,$(WIN_OBJ)/%.o,$$(WIN_$(1)_SRC))
$(WIN_LIB)/lib$(1).a: $$(WIN_$(1)_OBJ)
	@mkdir -p $$(dir $$@)
	rm -f $$@ && $(WIN_AR) rcs $$@ $$^
endef
$(foreach m,$(MODULES),$(eval $(call win_module_rules,$(m))))

WIN_PROTO_OBJ := $(patsubst $(GEN)/%.c,$(WIN_OBJ)/gen/%.o,$(PROTO_C))
$(WIN_LIB)/libproto.a: $(WIN_PROTO_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && $(WIN_AR) rcs $@ $^

$(WIN_OBJ)/gen/%.o: $(GEN)/%.c $(WIN_DEPS_STAMP) | $(PROTO_STAMP)
	@mkdir -p $(dir $@)
	$(WIN_CC) $(WIN_CPPFLAGS) $(WIN_CFLAGS) -Wno-unused-parameter -c $< -o $@

$(WIN_OBJ)/%.o: %.c $(WIN_DEPS_STAMP) | $(PROTO_STAMP)
	@mkdir -p $(dir $@)
	$(WIN_CC) $(WIN_CPPFLAGS) $(WIN_CFLAGS) -c $< -o $@

$(WIN_DEPS_STAMP) &:
	@scripts/build-windows-deps.sh

windows-deps:
	@scripts/build-windows-deps.sh

# ---- the shim executable -------------------------------------------------------
WIN_ALL_LIBS := $(foreach m,$(MODULES),$(if $(WIN_$(m)_SRC),$(WIN_LIB)/lib$(m).a)) \
	$(WIN_LIB)/libproto.a
WIN_LINK_LIBS = -Wl,--start-group $(WIN_ALL_LIBS) -Wl,--end-group $(WIN_SYSLIBS)
WIN_SHIM_OBJ := $(patsubst %.c,$(WIN_OBJ)/%.o,$(wildcard cmd/containerd-shim-runhcs-v1/*.c))
WIN_EXE_SRC := $(foreach m,$(MODULES),$(WIN_$(m)_SRC)) $(wildcard cmd/containerd-shim-runhcs-v1/*.c)

$(WIN_EXE): $(WIN_SHIM_OBJ) $(WIN_ALL_LIBS)
	$(WIN_CC) $(WIN_LDFLAGS) -o $@ $(WIN_SHIM_OBJ) $(WIN_LINK_LIBS)
	@file $@ | grep -q 'PE32+ executable' || { echo "windows: $@ is not a PE32+ executable" >&2; exit 1; }

# Builds everything it can (-k), then either confirms the PE32+ binary or
# names each source that does not compile for Windows yet and fails.
windows: $(WIN_DEPS_STAMP) $(PROTO_STAMP)
	@if $(MAKE) --no-print-directory -k $(WIN_EXE); then \
	  echo "windows: $$(file -b $(WIN_EXE) | cut -d, -f1-2): $(WIN_EXE)"; \
	else \
	  echo "windows: $(WIN_EXE) NOT built. Blocked by (compile errors above):" >&2; \
	  for src in $(WIN_EXE_SRC); do \
	    [ "$(WIN_OBJ)/$${src%.c}.o" -nt "$$src" ] || echo "  $$src" >&2; \
	  done; \
	  echo "  (see notes/windows.md for the fixes)" >&2; \
	  exit 1; \
	fi

# ---- unit tests under wine ------------------------------------------------------
# Tests that compile and link for Windows today, with the module libraries
# they need (all of whose sources compile). Add a test here once its
# blockers in notes/windows.md are fixed.
WIN_UNIT_TESTS := log sha256 ttrpc_frame ttrpc_client ttrpc_server gcs_frame gcs_msg \
	win_ttrpc_pipe oci_annotations oci_lcow_spec uvm_lcow_doc uvm_wcow_doc hcs_argon \
	hcs_modify hcs_stats win_hcs win_hvsock shim_cli shim_options shim_events win_shim_start \
	win_shim_stdio win_uvm common_strbuf gcs_guest_connection gcs_mux
WIN_TEST_MODULES := common ttrpc gcs oci hcs uvm shim
# Linux-only by nature: gcs_agent_*, gcs_transport (unix-dir, fdpair, vsock),
# gcs_mux_agent/_device, hcs_qmp, hcs_qemu_*, shim_bundle/start/stdio
# (test_win_shim_start covers the Windows start/daemon).
# test/support/*.c compile to nothing where POSIX-only; win/ has the rest.
WIN_TEST_SUPPORT_SRC := $(wildcard test/support/*.c) $(wildcard test/support/$(WIN_PLATFORM)/*.c)
WIN_TEST_SUPPORT_OBJ := $(patsubst %.c,$(WIN_OBJ)/%.o,$(WIN_TEST_SUPPORT_SRC))
WIN_TEST_LIBS := $(addprefix $(WIN_LIB)/lib,$(addsuffix .a,$(WIN_TEST_MODULES))) \
	$(WIN_LIB)/libproto.a
WIN_UNIT_EXE := $(patsubst %,$(WIN_TESTBIN)/test_%.exe,$(WIN_UNIT_TESTS))

# Keep the test objects (make would delete them as intermediates).
.SECONDARY: $(patsubst %,$(WIN_OBJ)/test/unit/test_%.o,$(WIN_UNIT_TESTS))

$(WIN_TESTBIN)/test_%.exe: $(WIN_OBJ)/test/unit/test_%.o $(WIN_TEST_SUPPORT_OBJ) $(WIN_TEST_LIBS)
	@mkdir -p $(dir $@)
	$(WIN_CC) $(WIN_LDFLAGS) -o $@ $< $(WIN_TEST_SUPPORT_OBJ) -Wl,--start-group $(WIN_TEST_LIBS) \
	  -Wl,--end-group -lcmocka-static $(WIN_SYSLIBS)

windows-test-build: $(WIN_DEPS_STAMP) $(PROTO_STAMP)
	@$(MAKE) --no-print-directory $(WIN_UNIT_EXE)

test-windows: windows-test-build
	@WIN_BUILD=$(WIN) scripts/run-wine-tests.sh $(WIN_UNIT_EXE)

.PHONY: windows windows-deps windows-test-build test-windows

ifneq ($(filter windows% test-windows $(WIN)/%,$(MAKECMDGOALS)),)
-include $(shell find $(WIN_OBJ) -name '*.d' 2>/dev/null)
endif
