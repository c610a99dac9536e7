# orchestrator — build, test, run.
#
#   make run     install what is missing, build, start local services, run `orchestrator serve`
#   make demo    the same services, then a sample project built with recorded model replies
#   make test    install what is missing, build, run every test against private services
#   make asan    the tests under AddressSanitizer and UBSan
#   make bench   benchmarks beside the reference implementations
#   make eval-check  every eval task checked in the sandbox (eval/README.md)
#   make checksrc the code conventions checked (tests/env/checksrc.py; make test runs it too)
#   make compose-test  compose/ brought up and down on a private Docker engine
#   make fuzz    every libFuzzer target for FUZZ_SECONDS (default 60) each (clang)
#   make         just build bin/orchestrator
#
# Variables: CC (gcc or clang), BUILD (build folder), T (only tests whose name contains T).

SHELL := /bin/bash
.DEFAULT_GOAL := all
# V=1 shows full compiler command lines
ifeq ($(V),1)
Q :=
else
Q := @
endif

CC ?= cc
BUILD ?= build
BIN := bin/orchestrator
ifneq ($(BUILD),build)
BIN := $(BUILD)/bin/orchestrator
endif

PKGS := libpq jansson libevent libevent_pthreads hiredis libcurl libgit2 libsodium libseccomp
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

OPT ?= -O2
SAN ?=
# snprintf truncation is deliberate throughout (bounded messages); gcc only
ifeq ($(findstring clang,$(shell $(CC) --version 2>/dev/null)),)
WARN_EXTRA := -Wno-format-truncation
endif
CFLAGS := -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow -Wvla -Wformat=2 \
	-Wno-format-nonliteral $(WARN_EXTRA) -g $(OPT) $(SAN) -pthread -I. -I$(BUILD)/gen $(PKG_CFLAGS) \
	$(EXTRA_CFLAGS)
LDFLAGS := $(SAN) -pthread $(EXTRA_LDFLAGS)
LDLIBS := $(PKG_LIBS) -lm

PARTS := core engine llm secrets bot spawner nodes web eval mcp
LIB_SRC := $(foreach d,$(PARTS),$(wildcard $(d)/*.c))
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/obj/%.o) $(BUILD)/obj/gen/embedded.o $(BUILD)/obj/gen/fwd_image.o
CLI_SRC := $(wildcard cli/*.c)
CLI_OBJ := $(CLI_SRC:%.c=$(BUILD)/obj/%.o)
LIB := $(BUILD)/liborch.a

EMBED_SRC := $(sort $(wildcard migrations/*.sql)) $(sort $(wildcard nodes/prompts/*)) \
	$(sort $(wildcard spawner/prompts/*)) $(sort $(wildcard web/static/*)) \
	$(sort $(wildcard eval/recordings/*.json eval/recordings/*.jsonl)) \
	$(sort $(wildcard eval/tasks/*/task.json))

TEST_SUPPORT_SRC := $(wildcard tests/support/*.c)
TEST_SUPPORT_OBJ := $(TEST_SUPPORT_SRC:%.c=$(BUILD)/obj/%.o)
TEST_SRC := $(wildcard tests/unit/test_*.c tests/integration/test_*.c)
TEST_BIN := $(patsubst %.c,$(BUILD)/tests/%,$(notdir $(TEST_SRC)))
PROG_SRC := $(wildcard tests/progs/*.c tests/fakes/*.c)
PROG_BIN := $(patsubst %.c,$(BUILD)/tests/progs/%,$(notdir $(PROG_SRC)))
BENCH_SRC := $(wildcard bench/*.c)
BENCH_BIN := $(patsubst %.c,$(BUILD)/bench/%,$(notdir $(BENCH_SRC)))

# libFuzzer targets: built by tests/fuzz/run.sh with clang into build/fuzz
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BIN := $(patsubst %.c,$(BUILD)/fuzz/%,$(notdir $(FUZZ_SRC)))
FUZZ_SECONDS ?= 60

vpath test_%.c tests/unit tests/integration
vpath %.c tests/progs tests/fakes bench

.PHONY: all deps check-deps run demo services stop test test-build asan bench eval-check checksrc \
	clean distclean fmt compose-test fuzz fuzz-targets

all: check-deps $(BIN)

deps:
	@tests/env/deps.sh

check-deps:
	@pkg-config --exists $(PKGS) || { echo "missing libraries: run 'make deps' (or make run / make test, which install them)" >&2; \
		pkg-config --print-errors --exists $(PKGS); exit 1; }

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/gen/embedded.c: tests/env/embed.sh $(EMBED_SRC)
	@mkdir -p $(dir $@)
	$(Q)tests/env/embed.sh $@ $(EMBED_SRC)

$(BUILD)/obj/gen/embedded.o: $(BUILD)/gen/embedded.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CFLAGS) -c $< -o $@

# the docker sandbox's egress forwarder: static (images lack our libraries),
# without sanitizers, carried in the binary (spawner/sbx_int.h: sbx_fwd_image)
$(BUILD)/gen/egress-fwd: spawner/fwd/egress_fwd.c spawner/sbx_fwd.c spawner/sbx_int.h spawner/sandbox.h
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@ (static)")
	$(Q)$(CC) -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Os -static -s -I. -o $@ \
		spawner/fwd/egress_fwd.c spawner/sbx_fwd.c

$(BUILD)/gen/fwd_image.S: $(BUILD)/gen/egress-fwd
	$(Q)printf '%s\n' '.section .rodata' '.balign 16' '.globl sbx_fwd_image' \
		'.type sbx_fwd_image, @object' 'sbx_fwd_image:' '.incbin "$(abspath $<)"' \
		'.globl sbx_fwd_image_end' 'sbx_fwd_image_end:' \
		'.section .note.GNU-stack,"",@progbits' >$@

$(BUILD)/obj/gen/fwd_image.o: $(BUILD)/gen/fwd_image.S
	@mkdir -p $(dir $@)
	$(Q)$(CC) -c $< -o $@

$(LIB): $(LIB_OBJ)
	@rm -f $@
	$(Q)ar rcs $@ $^

$(BIN): $(CLI_OBJ) $(LIB)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $(CLI_OBJ) $(LIB) $(LDLIBS)

$(BUILD)/tests/test_%: $(BUILD)/obj/tests/unit/test_%.o $(TEST_SUPPORT_OBJ) $(LIB)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lcmocka

$(BUILD)/tests/test_%: $(BUILD)/obj/tests/integration/test_%.o $(TEST_SUPPORT_OBJ) $(LIB)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lcmocka

$(BUILD)/tests/progs/%: $(BUILD)/obj/progs/%.o $(TEST_SUPPORT_OBJ) $(LIB)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lcmocka

# the sandbox probe runs inside images without the host's libraries: static,
# without sanitizers
$(BUILD)/tests/progs/sbx_probe: tests/progs/sbx_probe.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@ (static)")
	$(Q)$(CC) -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -O2 -static -o $@ $<

$(BUILD)/obj/progs/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/bench/%: $(BUILD)/obj/benchsrc/%.o $(LIB)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/obj/benchsrc/%.o: bench/%.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/fuzz/fuzz_%: $(BUILD)/obj/fuzzsrc/fuzz_%.o $(LIB)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -fsanitize=fuzzer -o $@ $^ $(LDLIBS)

.PRECIOUS: $(BUILD)/obj/fuzzsrc/%.o
$(BUILD)/obj/fuzzsrc/%.o: tests/fuzz/%.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

test-build: check-deps $(BIN) $(TEST_BIN) $(PROG_BIN)

# used by tests/fuzz/run.sh, which sets CC, BUILD and SAN
fuzz-targets: check-deps $(FUZZ_BIN)

# The one test command: installs what is missing, builds, starts private
# PostgreSQL and Redis servers, runs everything, stops them (also on failure).
test:
	@tests/env/deps.sh
	@$(MAKE) --no-print-directory test-build
	@BUILD=$(BUILD) BIN=$(BIN) tests/run.sh $(T)

asan:
	@tests/env/deps.sh
	@$(MAKE) --no-print-directory BUILD=build/asan OPT=-O1 \
		SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" test-build
	@BUILD=build/asan BIN=build/asan/bin/orchestrator ASAN=1 \
		ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:halt_on_error=1 \
		UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 tests/run.sh $(T)

checksrc:
	@python3 tests/scripts/test_checksrc.py
# compose/docker-compose.yml up for real (images built locally), a project
# through it, then down (tests/compose/compose_test.py)
compose-test:
	@tests/env/deps.sh
	@$(MAKE) --no-print-directory $(BIN) $(BUILD)/tests/progs/factory_script
	@BUILD=$(BUILD) BIN=$(BIN) python3 tests/compose/compose_test.py
# Each libFuzzer target for FUZZ_SECONDS; F picks targets by name.
fuzz:
	@tests/env/deps.sh
	@FUZZ_SECONDS=$(FUZZ_SECONDS) tests/fuzz/run.sh $(F)

bench:
	@tests/env/deps.sh
	@$(MAKE) --no-print-directory $(BIN) $(BENCH_BIN) $(PROG_BIN)
	@BUILD=$(BUILD) BIN=$(BIN) bench/run.sh $(B)

# The eval tasks: hidden tests fail before the work and pass on the reference,
# each in the sandbox (make test checks a sample).
eval-check:
	@tests/env/deps.sh
	@$(MAKE) --no-print-directory $(BIN)
	@ORCH_BIN=$(BIN) BUILD=$(BUILD) eval/check_tasks.sh

# Local services for `make run` (data under ORCH_DATA_DIR/services).
services:
	@tests/env/deps.sh
	@tests/env/services.sh start

stop:
	@tests/env/services.sh stop

run:
	@tests/env/deps.sh
	@$(MAKE) --no-print-directory all
	@tests/env/services.sh start
	@$(BIN) migrate
	@echo "orchestrator: services are up; starting 'orchestrator serve' (Ctrl-C stops it; 'make stop' stops the services)"
	@exec $(BIN) serve

# The first run: a sample project built by the whole factory with recorded
# model replies, in the terminal chat (AUTO=1: the answers are typed for you).
demo:
	@tests/env/deps.sh
	@$(MAKE) --no-print-directory all
	@tests/env/services.sh start
	@$(BIN) migrate >/dev/null
	@$(BIN) demo $(if $(AUTO),--auto)

clean:
	rm -rf build bin

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
