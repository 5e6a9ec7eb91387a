# cipherdm -- one top-level Makefile. `make` builds libcdm.a and the five
# tools into bin/; `make check` runs every test (plain and ASan+UBSan builds);
# `make demo` runs a secure sampling end to end; `make install PREFIX=...`.
# Missing Debian packages are installed with apt-get when run as root.

PREFIX ?= /usr/local
CC ?= gcc
OPT ?= -O2 -march=native
WARN = -Wall -Wextra -Wshadow -Wvla -Wformat=2 -Wno-unused-parameter
CFLAGS ?= $(OPT) -g
CFLAGS += -std=gnu17 $(WARN) -pthread -MMD -MP
LDLIBS = -lssl -lcrypto -lzstd -lpng -ljansson -lopenblas -lm -pthread

SANITIZE ?=
ifneq ($(SANITIZE),)
BUILD ?= build-asan
BIN ?= bin-asan
CFLAGS += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS += -fsanitize=$(SANITIZE)
else
BUILD ?= build
BIN ?= bin
endif

TOOLS = cdm-share cdm-party cdm-unet-step cdm-reveal cdm-bench
LIB_SRC = $(sort $(wildcard lib/*/*.c))
LIB_OBJ = $(LIB_SRC:%.c=$(BUILD)/%.o)
CMD_COMMON_SRC = $(filter-out $(TOOLS:%=cmd/%.c),$(wildcard cmd/*.c))
CMD_COMMON_OBJ = $(CMD_COMMON_SRC:%.c=$(BUILD)/%.o)
TEST_SRC = $(sort $(wildcard tests/unit/test_*.c))
TEST_BIN = $(TEST_SRC:tests/unit/%.c=$(BUILD)/tests/%)
FUZZ_SRC = $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_REPLAY = $(FUZZ_SRC:tests/fuzz/%.c=$(BUILD)/fuzz/%-replay)
LIBCDM = $(BUILD)/libcdm.a
DEPS_STAMP = .deps-ok

.SECONDARY:
.PHONY: all tools tests check check-plain check-asan demo install clean deps fuzz-bins

all: $(DEPS_STAMP) $(TOOLS:%=$(BIN)/%) $(LIBCDM)

tools: all

# ---- Debian dependencies ---------------------------------------------------
DEB_PACKAGES = gcc make pkg-config libssl-dev libzstd-dev libpng-dev libjansson-dev \
	libopenblas-dev openssl zstd iproute2
$(DEPS_STAMP):
	@sh scripts/ensure-deps.sh $(DEB_PACKAGES)
	@touch $@

deps:
	@rm -f $(DEPS_STAMP)
	@$(MAKE) --no-print-directory $(DEPS_STAMP)

# ---- build -------------------------------------------------------------------
$(BUILD)/%.o: %.c | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Ilib -c $< -o $@

$(LIBCDM): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(BIN)/%: $(BUILD)/cmd/%.o $(CMD_COMMON_OBJ) $(LIBCDM)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%: $(BUILD)/tests/unit/%.o $(LIBCDM)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# Fuzz targets build as plain replay drivers (tests/fuzz/replay.c supplies
# main) so `make check` replays the corpus without a fuzzer installed.
$(BUILD)/fuzz/%-replay: $(BUILD)/tests/fuzz/%.o $(BUILD)/tests/fuzz/replay.o $(LIBCDM)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# Test-only tools (tests/tools/*.c), e.g. the digit classifier the CLI
# tests use to check that a sample shows the requested digit.
TOOL_SRC = $(sort $(wildcard tests/tools/*.c))
TEST_TOOLS = $(TOOL_SRC:tests/tools/%.c=$(BUILD)/tools/%)
$(BUILD)/tools/%: $(BUILD)/tests/tools/%.o $(LIBCDM)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

tests: all $(TEST_BIN) $(FUZZ_REPLAY) $(TEST_TOOLS)

# ---- checks ------------------------------------------------------------------
check: $(DEPS_STAMP)
	@$(MAKE) --no-print-directory tests
	@$(MAKE) --no-print-directory SANITIZE=address,undefined tests
	@sh tests/run.sh

check-plain: tests
	@SKIP_ASAN=1 sh tests/run.sh

demo: all
	@sh scripts/demo.sh

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1 \
		$(DESTDIR)$(PREFIX)/share/man/man7 \
		$(DESTDIR)$(PREFIX)/share/bash-completion/completions \
		$(DESTDIR)$(PREFIX)/share/zsh/site-functions
	install -m 755 $(TOOLS:%=$(BIN)/%) $(DESTDIR)$(PREFIX)/bin/
	install -m 644 $(wildcard man/*.1) $(DESTDIR)$(PREFIX)/share/man/man1/
	install -m 644 $(wildcard man/*.7) $(DESTDIR)$(PREFIX)/share/man/man7/
	install -m 644 completions/cdm.bash $(DESTDIR)$(PREFIX)/share/bash-completion/completions/cdm
	install -m 644 completions/_cdm $(DESTDIR)$(PREFIX)/share/zsh/site-functions/_cdm

clean:
	rm -rf build build-asan bin bin-asan

-include $(wildcard build/*/*.d build/*/*/*.d build-asan/*/*.d build-asan/*/*/*.d)
