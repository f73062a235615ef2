# eldersync - offline-first sync for home-based elderly care.
#
#   make run        install missing packages (as root), build, create the
#                   demo county and serve it on http://127.0.0.1:8080
#   make test       build and run every test     (make test SAN=1: ASan+UBSan)
#   make bench      print the benchmark figures
#   make valgrind   the core tests under valgrind memcheck

CC      ?= cc
CFLAGS  ?= -O2 -g
CFLAGS  += -std=c11 -Wall -Wextra -Wshadow -Wstrict-prototypes \
           -Wmissing-prototypes -Wformat=2 -Wno-format-nonliteral \
           -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE
CPPFLAGS += -Iclient-sdk/include -Iclient-sdk/src -Isync-server
LDLIBS  = -lcivetweb -lsqlite3 -lsodium -lcjson -lpthread -lm

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

# Debian packages: building, then the extras the tests use.
BUILD_PKGS = gcc libc6-dev make libcivetweb-dev libsqlite3-dev libsodium-dev libcjson-dev
TEST_PKGS  = sqlite3 valgrind
# make fuzz: clang 14 and its libFuzzer / sanitizer runtimes.
FUZZ_PKGS  = clang-14 libclang-rt-14-dev

SDK_SRC    = $(wildcard client-sdk/src/*.c)
SDK_OBJ    = $(SDK_SRC:client-sdk/src/%.c=$(B)/sdk/%.o) $(B)/sdk/schema_gen.o
SERVER_SRC = $(filter-out sync-server/main.c,$(wildcard sync-server/*.c))
SERVER_OBJ = $(SERVER_SRC:sync-server/%.c=$(B)/server/%.o)
FUZZ_TARGETS = fuzz_changeset fuzz_envelope fuzz_push fuzz_json
# The fuzz targets' seeds and regressions, replayed once by make test.
FUZZ_REPLAY = $(FUZZ_TARGETS:%=$(B)/tests/test_%)
TESTS      = $(patsubst tests/%.c,$(B)/tests/%,$(wildcard tests/test_*.c)) $(FUZZ_REPLAY)
MIGRATIONS = $(sort $(wildcard schema/migrations/[0-9]*.sql))

.PHONY: all deps run test bench valgrind fuzz clean
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

build/.deps-ok:
	@sh .ci/deps.sh $(BUILD_PKGS) $(TEST_PKGS)
	@mkdir -p build && touch $@

test: build/.deps-ok
	$(MAKE) all
	sh tests/run.sh $(B)

bench: build/.deps-ok
	$(MAKE) all $(B)/bench
	$(B)/bench

# The core paths under valgrind memcheck: 0 errors, 0 definite leaks, the
# servers these tests start included.  (The kill campaigns are left out:
# they measure timing, and valgrind's slowdown would only blunt them.)
VALGRIND_TESTS = test_schema test_changeset test_envelope test_hlc test_demo test_policy test_badinput test_audit test_keys test_lock test_converge \
                 test_storage test_oom test_fuzz_changeset test_fuzz_envelope test_fuzz_push test_fuzz_json
valgrind: build/.deps-ok
	$(MAKE) all
	sh tests/run.sh $(B) valgrind $(VALGRIND_TESTS)

# Every libFuzzer target for FUZZ_SECONDS each (one process, one core),
# after replaying the seeds and regressions; logs in tests/fuzz/out/.
FUZZ_SECONDS ?= 60
fuzz:
	@sh .ci/deps.sh $(BUILD_PKGS) $(FUZZ_PKGS)
	CC=clang-14 sh tests/fuzz/build.sh
	sh tests/fuzz/run.sh replay
	@for t in $(FUZZ_TARGETS); do sh tests/fuzz/run.sh $$t $(FUZZ_SECONDS) || exit 1; done

DEMO_DB ?= var/demo.db
run: deps
	$(MAKE) all
	@mkdir -p var
	@test -f $(DEMO_DB) || $(B)/sync-server --config config/demo.json demo-init --db $(DEMO_DB)
	@echo
	@echo "Next, in another terminal (ids from the list above, or: $(B)/sync-server --config config/demo.json scopes):"
	@echo "  CODE=\$$($(B)/sync-server --config config/demo.json enroll-code --role hall --scope HALL_ID)"
	@echo "  $(B)/eldersync --db /tmp/hall.db enroll --server http://127.0.0.1:8080 --code \$$CODE"
	@echo "  $(B)/eldersync --db /tmp/hall.db sync"
	@echo "  $(B)/eldersync --db /tmp/hall.db query \"SELECT hex(id), name FROM seniors LIMIT 5\""
	@echo "Health: curl http://127.0.0.1:8080/v1/health    Stop: Ctrl-C"
	@echo
	$(B)/sync-server --config config/demo.json --db $(DEMO_DB)

clean:
	rm -rf build
