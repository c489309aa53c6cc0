# surveybus — one plain Makefile. `make` builds bin/, `make test` runs everything CI runs.
CC       ?= cc
OPT      ?= -O2
SANITIZE ?=
CSTD      = -std=c11 -D_GNU_SOURCE
WARN      = -Wall -Wextra -Wstrict-prototypes -Wwrite-strings -Werror
PKGS      = rdkafka libmosquitto jansson hiredis libcrypto libmicrohttpd
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CHECK_LIBS := $(shell pkg-config --libs check 2>/dev/null)
CFLAGS   += $(CSTD) $(OPT) -g $(WARN) -Icommon $(PKG_CFLAGS)
LDLIBS   += $(PKG_LIBS) -lpthread -lm
ifneq ($(SANITIZE),)
CFLAGS   += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS  += -fsanitize=$(SANITIZE)
endif

B := build
COMMON_SRC := $(sort $(wildcard common/*.c))
COMMON_OBJ := $(COMMON_SRC:%.c=$(B)/%.o)
LIB        := $(B)/libsurveybus.a

# services/<dir> -> bin/surveybus-<dir>, except ctl -> bin/surveybusctl
SERVICE_DIRS := $(notdir $(wildcard services/*))
bin_name = $(if $(filter ctl,$1),surveybusctl,surveybus-$1)
BINS := $(foreach s,$(SERVICE_DIRS),bin/$(call bin_name,$s))

UNIT_SRC := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(B)/tests/unit/%)
INT_SRC  := $(sort $(wildcard tests/integration/test_*.c))
INT_BIN  := $(INT_SRC:tests/integration/%.c=$(B)/tests/integration/%)
INT_SUPPORT := $(B)/tests/integration/harness.o
FUZZ_SRC := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_REPLAY := $(FUZZ_SRC:tests/fuzz/%.c=$(B)/tests/fuzz/replay_%)

.PHONY: all deps test unit integration fuzz-replay fuzz clean format bench bench-dispatcher bench-aggregator demo
.SECONDARY:
all: $(BINS)

deps:
	@scripts/deps.sh

# V=1 shows the full commands
Q := $(if $(V),,@)

$(B)/%.o: %.c $(wildcard common/*.h) $(wildcard services/*/*.h) $(wildcard tests/integration/*.h)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CFLAGS) -c -o $@ $<

$(LIB): $(COMMON_OBJ)
	@rm -f $@
	$(Q)ar rcs $@ $^

define SERVICE_RULE
bin/$(call bin_name,$1): $(patsubst %.c,$(B)/%.o,$(wildcard services/$1/*.c)) $(LIB)
	@mkdir -p bin
	@$$(if $$(Q),echo "  LINK    $$@")
	$$(Q)$$(CC) $$(LDFLAGS) -o $$@ $$^ $$(LDLIBS)
endef
$(foreach s,$(SERVICE_DIRS),$(eval $(call SERVICE_RULE,$s)))

$(B)/tests/unit/%: $(B)/tests/unit/%.o $(LIB)
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(CHECK_LIBS) $(LDLIBS)

$(B)/tests/integration/%: $(B)/tests/integration/%.o $(INT_SUPPORT) $(LIB)
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(CHECK_LIBS) $(LDLIBS)

# Fuzz targets are also linked with a plain main() that replays a corpus, so `make test`
# exercises them with gcc while `make fuzz` runs them under libFuzzer (clang).
$(B)/tests/fuzz/replay_%: $(B)/tests/fuzz/%.o $(B)/tests/fuzz/replay_main.o $(LIB)
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

unit: $(UNIT_BIN)
	@tests/run-tests.sh unit $(UNIT_BIN)

integration: $(BINS) $(INT_BIN)
	@tests/run-tests.sh integration $(INT_BIN)

fuzz-replay: $(FUZZ_REPLAY)
	@tests/run-tests.sh fuzz $(FUZZ_REPLAY)

# The test command of the README: installs what is missing, builds, runs every suite.
test: deps
	@$(MAKE) --no-print-directory all web
	@$(MAKE) --no-print-directory $(UNIT_BIN) $(INT_BIN) $(FUZZ_REPLAY)
	@out=$$(tests/scripts/test_run_tests.sh 2>&1) || { echo "$$out"; exit 1; }
	@tests/run-tests.sh all

FUZZ_SECONDS ?= 30
FUZZ_CC ?= clang
fuzz: deps
	@scripts/fuzz.sh $(FUZZ_SECONDS)

# Benchmarks print throughput and latency beside the raw ceilings measured in the same run.
BENCH_SRC := $(sort $(wildcard bench/*.c))
BENCH_BIN := $(BENCH_SRC:bench/%.c=$(B)/bench/%)
$(B)/bench/%: $(B)/bench/%.o $(LIB)
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

bench: bench-dispatcher bench-aggregator

bench-dispatcher: deps all $(BENCH_BIN)
	@bench/bench_dispatcher.sh

bench-aggregator: deps all $(BENCH_BIN)
	@bench/bench_aggregator.sh

# the whole pipeline on local servers, with simulated traffic and a live view (Ctrl-C stops);
# the dashboard is optional: without a recent enough Node.js (scripts/check-node.sh) the demo
# runs without it instead of failing
demo: deps all
	@$(MAKE) --no-print-directory web || echo "demo: the dashboard was not built; continuing without it" >&2
	@scripts/demo.sh

# The dashboard (web/ -> web/dist, served by surveybus-web); the C build does not need it.
.PHONY: web
web:
	@scripts/check-node.sh
	cd web && npm ci --no-audit --no-fund && npx vite build

clean:
	rm -rf $(B) bin

format:
	clang-format -i common/*.[ch] services/*/*.[ch] tests/*/*.[ch]
