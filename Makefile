# containerd-shim-runhcs-v1 in C.
#
#   make              build every binary into build/bin/
#   make deps         install the Debian packages the build and tests need
#   make test         deps, build, unit tests, integration tests
#   make test SANITIZE=1   the same suite built with ASan+UBSan (build/san/)
#   make fuzz         libFuzzer targets, a short bounded run each
#   make format       clang-format the tree
#
# Layout: one folder per layer; every *.c directly in a module folder goes
# into that module's static library; cmd/<name>/ becomes build/bin/<name>;
# test/unit/test_<name>.c becomes a cmocka binary; test/fuzz/fuzz_<name>.c a
# libFuzzer target.

SHELL := /bin/bash
CC ?= cc
FUZZ_CC ?= clang
PKGS := libuv jansson libprotobuf-c

ifeq ($(SANITIZE),1)
BUILD ?= build/san
SAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
OPT := -O1
else
BUILD ?= build
SAN_FLAGS :=
OPT := -O2
endif

GEN := build/gen
BIN := $(BUILD)/bin
OBJ := $(BUILD)/obj
LIB := $(BUILD)/lib
TESTBIN := $(BUILD)/test

WARN := -Wall -Wextra -Werror
CPPFLAGS += -D_GNU_SOURCE -I. -I$(GEN) $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
CFLAGS += -std=c11 $(WARN) -g $(OPT) -MMD -MP $(SAN_FLAGS)
LDFLAGS += $(SAN_FLAGS)
LDLIBS += $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lpthread
# One section per function and object, so that the static binaries below can
# drop what they do not use (--gc-sections): less text resident per process.
ifneq ($(SANITIZE),1)
CFLAGS += -ffunction-sections -fdata-sections
endif

# Objects are rebuilt when the compile flags change (not on every Makefile edit).
CFLAGS_STAMP := $(OBJ)/.cflags
$(shell mkdir -p $(OBJ); echo '$(CPPFLAGS) $(CFLAGS)' | cmp -s - $(CFLAGS_STAMP) || echo '$(CPPFLAGS) $(CFLAGS)' > $(CFLAGS_STAMP))

# ---- generated protobuf code -------------------------------------------------
PROTO_SRC := $(shell find proto -name '*.proto' | sort)
PROTO_REL := $(PROTO_SRC:proto/%=%)
WKT := google/protobuf/any.proto google/protobuf/empty.proto google/protobuf/timestamp.proto google/protobuf/wrappers.proto
PROTO_C := $(addprefix $(GEN)/,$(PROTO_REL:.proto=.pb-c.c) $(WKT:.proto=.pb-c.c))
PROTO_STAMP := $(GEN)/.stamp

# Regenerate when the well-known-type list changes too (not on every Makefile edit).
WKT_LIST := $(GEN)/.wkt-list
$(shell mkdir -p $(GEN); echo '$(WKT)' | cmp -s - $(WKT_LIST) || echo '$(WKT)' > $(WKT_LIST))

$(PROTO_STAMP): $(PROTO_SRC) $(WKT_LIST)
	@mkdir -p $(GEN)
	protoc-c -Iproto -I/usr/include --c_out=$(GEN) $(PROTO_REL) $(WKT)
	@touch $@

$(PROTO_C): $(PROTO_STAMP)

# ---- module libraries ----------------------------------------------------------
# Order matters for static linking only without --start-group; we group them.
MODULES := common ttrpc gcs hcs uvm oci shim
PLATFORM := unix

define module_rules
$(1)_SRC := $$(wildcard $(1)/*.c) $$(wildcard $(1)/$(PLATFORM)/*.c)
$(1)_OBJ := $$(patsubst %.c,$(OBJ)/%.o,$$($(1)_SRC))
$(LIB)/lib$(1).a: $$($(1)_OBJ)
	@mkdir -p $$(dir $$@)
	rm -f $$@ && ar rcs $$@ $$^
ALL_LIBS += $$(if $$($(1)_SRC),$(LIB)/lib$(1).a)
endef
$(foreach m,$(MODULES),$(eval $(call module_rules,$(m))))

# Guest-agent modules (gcs/guest/*.c) -> libgcsguest.a, linked like any module
# library so unit tests can use them; only cmd/gcs references them.
gcsguest_SRC := $(wildcard gcs/guest/*.c)
gcsguest_OBJ := $(patsubst %.c,$(OBJ)/%.o,$(gcsguest_SRC))
$(LIB)/libgcsguest.a: $(gcsguest_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^
ALL_LIBS += $(if $(gcsguest_SRC),$(LIB)/libgcsguest.a)

PROTO_OBJ := $(patsubst $(GEN)/%.c,$(OBJ)/gen/%.o,$(PROTO_C))
$(LIB)/libproto.a: $(PROTO_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^
ALL_LIBS += $(LIB)/libproto.a

$(OBJ)/gen/%.o: $(GEN)/%.c $(CFLAGS_STAMP) | $(PROTO_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -Wno-unused-parameter -c $< -o $@

$(OBJ)/%.o: %.c $(CFLAGS_STAMP) | $(PROTO_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

LINK_LIBS = -Wl,--start-group $(ALL_LIBS) -Wl,--end-group

# ---- binaries: cmd/<name>/*.c -> $(BIN)/<name> ---------------------------------
CMDS := $(notdir $(patsubst %/,%,$(dir $(wildcard cmd/*/*.c))))
CMDS := $(sort $(CMDS))
BINARIES := $(addprefix $(BIN)/,$(CMDS))

define cmd_rules
$(1)_OBJ := $$(patsubst %.c,$(OBJ)/%.o,$$(wildcard cmd/$(1)/*.c))
$(BIN)/$(1): $$($(1)_OBJ) $$(ALL_LIBS)
	@mkdir -p $$(dir $$@)
	$$(CC) $$(LDFLAGS) -o $$@ $$($(1)_OBJ) $$(LINK_LIBS) $$(or $$(LDLIBS_$(1)),$$(LDLIBS))
endef
$(foreach c,$(CMDS),$(eval $(call cmd_rules,$(c))))

# The guest agent drops into an initramfs and both long-running processes are
# counted per container: link them fully static (libc included). Shared libc
# pages are resident in every process that maps them, so a static binary of
# a few hundred KiB has a smaller RSS than a dynamic one (see make bench).
# A sanitizer build cannot be static.
ifneq ($(SANITIZE),1)
STATIC_LDLIBS := -Wl,--gc-sections -static -luv_a -ljansson -lprotobuf-c -lpthread -ldl -lrt
LDLIBS_gcs := $(STATIC_LDLIBS)
LDLIBS_containerd-shim-runhcs-v1 := $(STATIC_LDLIBS)
endif

all: $(ALL_LIBS) $(BINARIES)

# ---- unit tests ----------------------------------------------------------------
UNIT_SRC := $(wildcard test/unit/test_*.c)
UNIT_BIN := $(patsubst test/unit/%.c,$(TESTBIN)/%,$(UNIT_SRC))
TEST_SUPPORT_SRC := $(wildcard test/support/*.c)
TEST_SUPPORT_OBJ := $(patsubst %.c,$(OBJ)/%.o,$(TEST_SUPPORT_SRC))

$(TESTBIN)/test_%: $(OBJ)/test/unit/test_%.o $(TEST_SUPPORT_OBJ) $(ALL_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $< $(TEST_SUPPORT_OBJ) $(LINK_LIBS) $(LDLIBS) -lcmocka

# Extra test helpers written in C: test/tools/<name>.c -> $(TESTBIN)/<name>
TOOL_SRC := $(wildcard test/tools/*.c)
TOOL_BIN := $(patsubst test/tools/%.c,$(TESTBIN)/%,$(TOOL_SRC))
$(TESTBIN)/%: $(OBJ)/test/tools/%.o $(ALL_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $< $(LINK_LIBS) $(LDLIBS)

# Go reference peers for interop tests: test/interop/go/<name>/ -> $(TESTBIN)/<name>,
# built offline in GOPATH mode against Debian's /usr/share/gocode (ttrpc v1.1.1).
GO_TOOL_DIRS := $(wildcard test/interop/go/*/)
GO_TOOL_BIN := $(patsubst test/interop/go/%/,$(TESTBIN)/%,$(GO_TOOL_DIRS))
GO_GOPATH := $(abspath $(BUILD)/gopath)
GO_ENV := GO111MODULE=off GOPATH=$(GO_GOPATH):/usr/share/gocode GOCACHE=$(abspath build/gocache) GOFLAGS=-buildvcs=false
$(GO_GOPATH)/src/ttrpcinterop:
	@mkdir -p $(dir $@)
	ln -sfn $(abspath test/interop/go) $@
$(GO_TOOL_BIN): $(TESTBIN)/%: $(wildcard test/interop/go/*/*.go) | $(GO_GOPATH)/src/ttrpcinterop
	@mkdir -p $(dir $@)
	$(GO_ENV) go build -o $@ ttrpcinterop/$*
ifneq ($(shell command -v go),)
TOOL_BIN += $(GO_TOOL_BIN)
endif

test-build: $(BINARIES) $(UNIT_BIN) $(TOOL_BIN)

unit: test-build
	@BUILD=$(BUILD) scripts/run-unit-tests.sh $(UNIT_BIN)

integration: test-build
	@BUILD=$(BUILD) SANITIZE=$(SANITIZE) scripts/run-integration-tests.sh

test: deps
	$(MAKE) test-build
	$(MAKE) unit
	$(MAKE) integration

deps:
	@scripts/deps.sh

# Linux utility VM boot files (kernel, initrd.img) -> build/LinuxBootFiles/
# (always with the plain, non-sanitizer agent: it runs inside the guest).
uvm: deps
	@$(MAKE) --no-print-directory SANITIZE= BUILD=build build/bin/gcs
	@GCS_BIN=build/bin/gcs scripts/build-uvm.sh build/LinuxBootFiles

# ---- fuzzing -------------------------------------------------------------------
FUZZ_BUILD := build/fuzz
FUZZ_SRC := $(wildcard test/fuzz/fuzz_*.c)
FUZZ_BIN := $(patsubst test/fuzz/%.c,$(FUZZ_BUILD)/%,$(FUZZ_SRC))
FUZZ_LIB_SRC := $(foreach m,$(MODULES),$(wildcard $(m)/*.c) $(wildcard $(m)/$(PLATFORM)/*.c))
FUZZ_LIB_SRC += $(wildcard gcs/guest/*.c)
FUZZ_FLAGS := -std=c11 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all $(WARN) -Wno-unused-parameter
FUZZ_SECONDS ?= 30

$(FUZZ_BUILD)/fuzz_%: test/fuzz/fuzz_%.c $(FUZZ_LIB_SRC) $(PROTO_STAMP)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(CPPFLAGS) $(FUZZ_FLAGS) -o $@ $< $(FUZZ_LIB_SRC) $(PROTO_C) $(LDLIBS)

fuzz: deps $(FUZZ_BIN)
	@FUZZ_SECONDS=$(FUZZ_SECONDS) scripts/run-fuzz.sh $(FUZZ_BIN)

# ---- benchmarks ------------------------------------------------------------------
# bench/<name>.c -> build/bench/bin/<name>, always the plain (non-sanitizer)
# build; scripts/bench.sh runs everything against a private containerd.
BENCH_SRC := $(wildcard bench/*.c)
BENCH_BIN := $(patsubst bench/%.c,build/bench/bin/%,$(BENCH_SRC))
build/bench/bin/%: $(OBJ)/bench/%.o $(ALL_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $< $(LINK_LIBS) $(LDLIBS)

bench: deps
	@$(MAKE) --no-print-directory SANITIZE= BUILD=build all $(BENCH_BIN)
	@scripts/bench.sh

# ---- demo: one container through containerd and the shim (scripts/demo.sh) ----------
demo: deps
	@$(MAKE) --no-print-directory SANITIZE= BUILD=build all
	@BIN_DIR=$(abspath build/bin) scripts/demo.sh

# ---- misc ------------------------------------------------------------------------
format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build

.PHONY: all deps uvm test test-build unit integration fuzz format clean demo bench
.DEFAULT_GOAL := all

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
include mk/windows.mk
