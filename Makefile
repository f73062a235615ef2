# eldersync - offline-first sync for home-based elderly care.
#
#   make run        install missing packages (as root), build, create the
#                   demo county and serve it on http://127.0.0.1:8080
#   make test       build and run every test     (make test SAN=1: ASan+UBSan)
#   make bench      print the benchmark figures
#   make valgrind   the core tests under valgrind memcheck
#   make soak       500 tablets syncing for SOAK_SECONDS (default 600), then
#                   1000 slowloris connections; prints the load figures
#   make campaign   the server kill campaign: 50 tablets, 200+ SIGKILLs,
#                   10,000+ pushes and pulls (CAMPAIGN_KILLS, CAMPAIGN_OPS);
#                   then the tablet faults with 10,000 offline writes

CC      ?= cc
CFLAGS  ?= -O2 -g
CFLAGS  += -std=c11 -Wall -Wextra -Wshadow -Wstrict-prototypes \
           -Wmissing-prototypes -Wformat=2 -Wno-format-nonliteral \
           -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE
CPPFLAGS += -Iclient-sdk/include -Iclient-sdk/src -Isync-server
LDLIBS  = -lcivetweb -lsqlite3 -lsodium -lcjson -lqrencode -lz -lpthread -lm

ifeq ($(SAN),1)
B       = build/san
CFLAGS  += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS += -fsanitize=address,undefined
else
B       = build/release
endif
ifeq ($(WERROR),1)
CFLAGS  += -Werror
endif

# Debian packages: building, then the extras the tests use (chromium and a
# CJK font for the dashboard's browser test; node and npm: .ci/node.sh).
BUILD_PKGS = gcc libc6-dev make libcivetweb-dev libsqlite3-dev libsodium-dev libcjson-dev \
             libqrencode-dev zlib1g-dev
TEST_PKGS  = sqlite3 valgrind chromium fonts-noto-cjk
BROWSER    = tests/browser
# make fuzz: clang 14 and its libFuzzer / sanitizer runtimes.
FUZZ_PKGS  = clang-14 libclang-rt-14-dev

SDK_SRC    = $(wildcard client-sdk/src/*.c)
SDK_OBJ    = $(SDK_SRC:client-sdk/src/%.c=$(B)/sdk/%.o) $(B)/sdk/schema_gen.o
SERVER_SRC = $(filter-out sync-server/main.c,$(wildcard sync-server/*.c))
SERVER_OBJ = $(SERVER_SRC:sync-server/%.c=$(B)/server/%.o) $(B)/server/web_gen.o
WEB_FILES  = $(sort $(wildcard sync-server/web/*.html sync-server/web/*.css sync-server/web/*.js \
                               sync-server/web/*.svg sync-server/web/*.png))
FUZZ_TARGETS = fuzz_changeset fuzz_envelope fuzz_push fuzz_json
# The fuzz targets' seeds and regressions, replayed once by make test.
FUZZ_REPLAY = $(FUZZ_TARGETS:%=$(B)/tests/test_%)
TESTS      = $(patsubst tests/%.c,$(B)/tests/%,$(wildcard tests/test_*.c)) $(FUZZ_REPLAY)
MIGRATIONS = $(sort $(wildcard schema/migrations/[0-9]*.sql))

.PHONY: all deps run test bench valgrind soak campaign fuzz clean
all: $(B)/sync-server $(B)/eldersync $(TESTS)

# Installs what is missing when root; otherwise prints the exact command.
deps:
	@sh .ci/deps.sh $(BUILD_PKGS)

$(B)/sdk/schema_gen.c: schema/embed.sh schema/schema.sql schema/server.sql schema/tablet.sql $(MIGRATIONS)
	@mkdir -p $(@D)
	sh schema/embed.sh schema/schema.sql schema/server.sql schema/tablet.sql $(MIGRATIONS) > $@

$(B)/sdk/%.o: client-sdk/src/%.c client-sdk/src/*.h client-sdk/include/eldersync.h
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<
$(B)/sdk/schema_gen.o: $(B)/sdk/schema_gen.c
	$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<
# The dashboard's page and assets, compiled into the server.
$(B)/server/web_gen.c: sync-server/web/embed.sh $(WEB_FILES)
	@mkdir -p $(@D)
	sh sync-server/web/embed.sh $(WEB_FILES) > $@
$(B)/server/web_gen.o: $(B)/server/web_gen.c
	$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<
$(B)/server/%.o: sync-server/%.c sync-server/*.h client-sdk/src/*.h
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

$(B)/libeldersync.a: $(SDK_OBJ)
	rm -f $@
	ar rcs $@ $^
$(B)/libserver.a: $(SERVER_OBJ)
	rm -f $@
	ar rcs $@ $^

$(B)/sync-server: sync-server/main.c $(B)/libserver.a $(B)/libeldersync.a
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)
$(B)/eldersync: client-sdk/cli/eldersync.c $(B)/libeldersync.a
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)
$(B)/tests/support.o: tests/support.c tests/*.h client-sdk/src/*.h sync-server/*.h
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) -Itests $(CFLAGS) -DES_BUILD_DIR='"$(B)"' -c -o $@ $<
# Test helpers every test may use (an archive: only what a test calls is
# linked): the fault-injecting VFS, the in-process push fixture and the
# fuzzers' fixed-id county.
TEST_LIB_SRC = tests/faultvfs.c tests/pushfix.c tests/fuzz/fuzz_common.c
TEST_LIB_OBJ = $(patsubst %.c,$(B)/tests/lib/%.o,$(notdir $(TEST_LIB_SRC)))
$(B)/tests/lib/%.o: tests/%.c tests/*.h tests/fuzz/*.h client-sdk/src/*.h sync-server/*.h
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) -Itests -Itests/fuzz $(CFLAGS) -c -o $@ $<
$(B)/tests/lib/%.o: tests/fuzz/%.c tests/fuzz/*.h client-sdk/src/*.h sync-server/*.h
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) -Itests -Itests/fuzz $(CFLAGS) -c -o $@ $<
$(B)/tests/libtest.a: $(TEST_LIB_OBJ)
	rm -f $@
	ar rcs $@ $^
$(B)/tests/%: tests/%.c tests/*.h $(B)/tests/support.o $(B)/tests/libtest.a $(B)/libserver.a $(B)/libeldersync.a
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) -Itests -Itests/fuzz $(CFLAGS) $(LDFLAGS) -o $@ $< $(B)/tests/support.o $(B)/tests/libtest.a $(B)/libserver.a $(B)/libeldersync.a $(LDLIBS)

$(B)/tests/test_fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/replay_main.c tests/fuzz/*.h $(B)/tests/libtest.a $(B)/libserver.a $(B)/libeldersync.a
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) -Itests -Itests/fuzz $(CFLAGS) $(LDFLAGS) -DFUZZ_TARGET='"fuzz_$*"' -o $@ $< tests/fuzz/replay_main.c $(B)/tests/libtest.a $(B)/libserver.a $(B)/libeldersync.a $(LDLIBS)

$(B)/bench: tests/bench.c tests/*.h $(B)/tests/support.o $(B)/libserver.a $(B)/libeldersync.a
	$(CC) $(CPPFLAGS) -Itests $(CFLAGS) $(LDFLAGS) -o $@ $< $(B)/tests/support.o $(B)/libserver.a $(B)/libeldersync.a $(LDLIBS)

build/.deps-ok: Makefile
	@sh .ci/deps.sh $(BUILD_PKGS) $(TEST_PKGS)
	@sh .ci/node.sh
	@mkdir -p build && touch $@

# playwright-core for the browser test, exactly as locked (no browser
# download: the test drives Debian's /usr/bin/chromium).
$(BROWSER)/node_modules/.package-lock.json: $(BROWSER)/package.json $(BROWSER)/package-lock.json
	cd $(BROWSER) && npm ci --prefer-offline --no-audit --no-fund

test: build/.deps-ok $(BROWSER)/node_modules/.package-lock.json
	$(MAKE) all
	sh tests/run.sh $(B)

bench: build/.deps-ok
	$(MAKE) all $(B)/bench
	$(B)/bench

# The core paths under valgrind memcheck: 0 errors, 0 definite leaks, the
# servers these tests start included.  (The kill campaigns are left out:
# they measure timing, and valgrind's slowdown would only blunt them.)
VALGRIND_TESTS = test_schema test_changeset test_envelope test_hlc test_demo test_policy test_badinput test_audit test_keys test_lock test_converge \
                 test_storage test_oom test_fuzz_changeset test_fuzz_envelope test_fuzz_push test_fuzz_json \
                 test_dash_api test_pull_scan
valgrind: build/.deps-ok
	$(MAKE) all
	sh tests/run.sh $(B) valgrind $(VALGRIND_TESTS)

# Long campaigns, outside make test (which runs bounded versions of them).
SOAK_SECONDS   ?= 600
CAMPAIGN_KILLS ?= 200
CAMPAIGN_OPS   ?= 10000
soak: build/.deps-ok
	$(MAKE) all
	ES_LOAD_TABLETS=500 ES_LOAD_SECONDS=$(SOAK_SECONDS) ES_LOAD_THINK_MS=20000 \
	    ES_LOAD_MEALS=10 ES_LOAD_WARMUP_S=$$(( $(SOAK_SECONDS) / 2 )) $(B)/tests/test_load
	ES_SLOW_CONNS=1000 ES_SLOW_SECONDS=60 $(B)/tests/test_hardening
campaign: build/.deps-ok
	$(MAKE) all
	ES_KILL_TABLETS=50 ES_KILL_MIN=$(CAMPAIGN_KILLS) ES_KILL_OPS=$(CAMPAIGN_OPS) \
	    ES_KILL_SPAN_MS=1000 $(B)/tests/test_crash
	ES_OFFLINE_WRITES=10000 $(B)/tests/test_tablet_faults

# Every libFuzzer target for FUZZ_SECONDS each (one process, one core),
# after replaying the seeds and regressions; logs in tests/fuzz/out/.
# FUZZ_SEED=N makes the mutation sequence repeatable (CI); unset, each run
# explores from a random seed (campaigns).
FUZZ_SECONDS ?= 60
FUZZ_SEED ?=
fuzz:
	@sh .ci/deps.sh $(BUILD_PKGS) $(FUZZ_PKGS)
	CC=clang-14 sh tests/fuzz/build.sh
	sh tests/fuzz/run.sh replay
	@for t in $(FUZZ_TARGETS); do FUZZ_SEED=$(FUZZ_SEED) sh tests/fuzz/run.sh $$t $(FUZZ_SECONDS) || exit 1; done

DEMO_DB ?= var/demo.db
DEMO_URL = http://127.0.0.1:8080
# A fresh demo county every time (its history ends yesterday); then, while
# the server runs, simulated tablets sync today's work through the protocol.
run: deps
	$(MAKE) all
	@mkdir -p var/tablets
	@rm -f $(DEMO_DB) $(DEMO_DB)-wal $(DEMO_DB)-shm $(DEMO_DB).key
	@$(B)/sync-server --config config/demo.json demo-init --db $(DEMO_DB)
	@echo
	@echo "Dashboard: $(DEMO_URL)/  (log in with an account above; today's work arrives in ~20 s)"
	@echo "A tablet of your own, in another terminal (ids from the list above):"
	@echo "  CODE=\$$($(B)/sync-server --config config/demo.json enroll-code --role hall --scope HALL_ID)"
	@echo "  $(B)/eldersync --db /tmp/hall.db enroll --server $(DEMO_URL) --code \$$CODE"
	@echo "  $(B)/eldersync --db /tmp/hall.db sync"
	@echo "Health: curl $(DEMO_URL)/v1/health    Stop: Ctrl-C"
	@echo
	@( $(B)/sync-server --config config/demo.json --db $(DEMO_DB) demo-day --url $(DEMO_URL) \
	    --dir var/tablets & ) ; \
	exec $(B)/sync-server --config config/demo.json --db $(DEMO_DB)

clean:
	rm -rf build
