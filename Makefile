# quokka — build, test, run. See README.md.
CC ?= cc
BUILD ?= build
WERROR ?=
SANITIZE ?=
OPT ?= -O2
CFLAGS_BASE := -std=c11 -D_GNU_SOURCE -g $(OPT) -Wall -Wextra -Wno-unused-parameter \
    -Wshadow -Wpointer-arith -Wstrict-prototypes -Isrc -MMD -MP -pthread
ifneq ($(WERROR),)
CFLAGS_BASE += -Werror
endif
ifneq ($(SANITIZE),)
CFLAGS_BASE += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS += -fsanitize=address,undefined
endif
CFLAGS := $(CFLAGS_BASE) $(EXTRA_CFLAGS)
LDLIBS := -pthread -lm -luring -lslirp -lmicrohttpd -ljson-c -lseccomp

LIB_SRCS := $(filter-out src/main.c,$(shell find src -name '*.c' | sort))
LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/obj/%.o)
MAIN_OBJ := $(BUILD)/obj/src/main.o
UNIT_SRCS := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)

PYTEST := /usr/bin/python3 -m pytest

.PHONY: cross-aarch64 cross-aarch64-test soft-float-test all deps guest debian payloads test unit-test e2e-test run bench bench-interp clean format format-check fuzz-cpu \
    fuzz fuzz-build fuzz-bins fuzz-run

all: $(BUILD)/quokka

deps:
	@scripts/install-deps.sh

# Devices register themselves through a linker section, so all objects are linked directly
# (an archive would drop device objects nothing references by name).
$(BUILD)/quokka: $(MAIN_OBJ) $(LIB_OBJS)
	@echo "  LD      $@"
	@$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	@$(CC) $(CFLAGS) -DQUOKKA_VERSION=\"$(shell cat VERSION)\" -c -o $@ $<

$(BUILD)/tests/%: tests/unit/%.c $(LIB_OBJS)
	@mkdir -p $(dir $@)
	@echo "  CCLD    $@"
	@$(CC) $(CFLAGS) -Itests/unit $(LDFLAGS) -o $@ $< $(LIB_OBJS) -lcmocka $(LDLIBS)

# The interpreter micro-benchmark (informational timings, not a test).
$(BUILD)/bench/interp_micro: tests/unit/test_interp.c $(LIB_OBJS)
	@mkdir -p $(dir $@)
	@echo "  CCLD    $@"
	@$(CC) $(CFLAGS) -DINTERP_BENCH -Wno-unused-function -Itests/unit $(LDFLAGS) -o $@ $< $(LIB_OBJS) -lcmocka $(LDLIBS)

bench-interp: $(BUILD)/bench/interp_micro
	$(BUILD)/bench/interp_micro

# The x87 transcendentals must give the same bits on every host: no fused multiply-adds
# (clang contracts a * b + c by default).
$(BUILD)/obj/src/accel/tcg/x86/x87_transcend.o: CFLAGS += -ffp-contract=off

# The decoder test cross-checks against capstone (a test-only dependency).
$(BUILD)/tests/test_x86_decode: LDLIBS += -lcapstone

guest:
	@$(MAKE) -s -C guest BUILD=$(abspath $(BUILD))/guest

# The Debian 12 disk image (systemd on virtio-blk), built with mmdebstrap as root.
debian:
	@$(MAKE) -s -C guest BUILD=$(abspath $(BUILD))/guest debian

payloads:
	@$(MAKE) -s -C guest/payloads BUILD=$(abspath $(BUILD))/payloads

# Differential CPU fuzzing (tests/cpu/): random instruction sequences natively vs. the
# translator. CI runs a fixed seed (fewer under the sanitizers, which slow it ~10x) and
# replays tests/cpu/repro/; `make fuzz-cpu [FUZZ_SECONDS=n]` fuzzes and saves reproducers.
FUZZ_CPU := $(BUILD)/tests/fuzz_cpu
FUZZ_CPU_CI_COUNT ?= $(if $(SANITIZE),10000,100000)
FUZZ_CPU_CI_PARALLEL_COUNT ?= $(if $(SANITIZE),5000,30000)
FUZZ_CPU_OBJS := $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard tests/cpu/*.c))
# The reproducers are found from the source tree, whatever the current directory.
$(BUILD)/obj/tests/cpu/fuzz_cpu.o: CFLAGS += -DQUOKKA_SOURCE_DIR='"$(CURDIR)"'
$(FUZZ_CPU): $(FUZZ_CPU_OBJS) $(LIB_OBJS)
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	@$(CC) $(LDFLAGS) -o $@ $^ -lcapstone $(LDLIBS)

unit-test: $(UNIT_BINS) $(FUZZ_CPU)
	@set -e; for t in $(UNIT_BINS); do echo "== $$t"; $$t; done
	@echo "== $(FUZZ_CPU) --ci"; $(FUZZ_CPU) --ci --count $(FUZZ_CPU_CI_COUNT)
	@echo "== $(FUZZ_CPU) --ci --parallel"; \
	    $(FUZZ_CPU) --ci --parallel --count $(FUZZ_CPU_CI_PARALLEL_COUNT)

fuzz-cpu: $(FUZZ_CPU)
	@mkdir -p tests/cpu/repro
	$(FUZZ_CPU) --fuzz --repro-dir tests/cpu/repro $(if $(FUZZ_SECONDS),--seconds $(FUZZ_SECONDS))

# libFuzzer targets (fuzz/fuzz_*.c) built with clang, ASan and UBSan into build-fuzz/;
# `make fuzz [FUZZ_SECONDS=n]` replays fuzz/regressions/ and runs each target n seconds
# (default 60) from the seed corpus fuzz/corpus/<target>/ (new inputs go to build-fuzz/).
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := $(patsubst fuzz/%.c,%,$(sort $(wildcard fuzz/fuzz_*.c)))
fuzz-build:
	@$(MAKE) --no-print-directory BUILD=$(FUZZ_BUILD) CC=clang SANITIZE=1 OPT=-O1 \
	    EXTRA_CFLAGS=-fsanitize=fuzzer-no-link fuzz-bins
fuzz: fuzz-build
	scripts/fuzz.sh $(FUZZ_BUILD) $(FUZZ_SECONDS) $(FUZZ_TARGETS)
fuzz-bins: $(FUZZ_TARGETS:%=$(BUILD)/fuzz/%)
$(BUILD)/obj/fuzz/%.o: CFLAGS += -Itests/unit
$(BUILD)/fuzz/%: $(BUILD)/obj/fuzz/%.o $(LIB_OBJS)
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	@$(CC) $(LDFLAGS) -fsanitize=fuzzer -o $@ $^ $(LDLIBS)

# Cross build for a 64-bit non-x86 host (aarch64: software x87/SSE, the interpreter backend;
# HOST_ARCH names it, the compiler decides) and its tests under qemu-user.
AARCH64_BUILD ?= build-aarch64
cross-aarch64:
	@$(MAKE) --no-print-directory BUILD=$(AARCH64_BUILD) CC=aarch64-linux-gnu-gcc \
	    HOST_ARCH=aarch64 all $(AARCH64_BUILD)/tests/test_softfloat80 \
	    $(AARCH64_BUILD)/tests/test_x87_transcend
cross-aarch64-test: cross-aarch64 payloads
	scripts/cross-aarch64-test.sh $(AARCH64_BUILD) $(BUILD)

# The software x87/SSE path that non-x86 hosts run, built on this x86-64 host and checked by the
# x87/SSE differential test against the CPU itself.
SOFT_BUILD ?= build-soft
soft-float-test:
	@$(MAKE) --no-print-directory BUILD=$(SOFT_BUILD) EXTRA_CFLAGS=-DQUOKKA_SOFT_FLOAT \
	    $(SOFT_BUILD)/tests/test_fpu_sse
	$(SOFT_BUILD)/tests/test_fpu_sse

e2e-test: all payloads
	$(PYTEST) -v tests/e2e

# The whole suite: what .ci/run calls.
test: deps
	@$(MAKE) --no-print-directory all payloads unit-test
	@$(MAKE) --no-print-directory guest debian
	$(PYTEST) -v tests/e2e

run: deps all guest
	$(BUILD)/quokka run

bench: deps all payloads bench-interp
	/usr/bin/python3 bench/run.py
	/usr/bin/python3 bench/cpu.py
	@$(MAKE) --no-print-directory guest
	/usr/bin/python3 bench/boot.py
	/usr/bin/python3 bench/programs.py
	/usr/bin/python3 bench/api.py
	@$(MAKE) --no-print-directory debian
	/usr/bin/python3 bench/disk.py
	/usr/bin/python3 bench/net.py

# Every C file of the project (not guest/payloads: payload.h is assembler macros).
FORMAT_FILES = $(shell find src tests/unit tests/cpu fuzz guest/tools -name '*.[ch]' | sort)
format:
	clang-format -i $(FORMAT_FILES)

# What CI checks: the tree is formatted (prints each difference, fails on any).
format-check:
	clang-format --dry-run -Werror $(FORMAT_FILES)

clean:
	rm -rf $(BUILD)

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
