#!/bin/sh
# build.sh - build the libFuzzer targets and the corpus generator into
# tests/fuzz/out/ (ignored by git).  Run from anywhere; needs clang (14 on
# Debian 12) and the project's build dependencies (make deps).
#
#   sh tests/fuzz/build.sh            all targets + gen_corpus
#   sh tests/fuzz/build.sh fuzz_push  one target
set -eu
cd "$(dirname "$0")/../.."
OUT=tests/fuzz/out
mkdir -p "$OUT"
CC=${CC:-clang}

# The embedded schema, generated like the Makefile does, but into our own
# directory so a concurrent `make` elsewhere never races with us.
sh schema/embed.sh schema/schema.sql schema/server.sql schema/tablet.sql \
    $(ls schema/migrations/[0-9]*.sql 2>/dev/null | sort) > "$OUT/schema_gen.c.tmp"
mv "$OUT/schema_gen.c.tmp" "$OUT/schema_gen.c"
# The dashboard's page, compiled into the server (sync-server/web/embed.sh).
sh sync-server/web/embed.sh $(ls sync-server/web/*.html sync-server/web/*.css \
    sync-server/web/*.js sync-server/web/*.svg sync-server/web/*.png 2>/dev/null | sort) \
    > "$OUT/web_gen.c.tmp"
mv "$OUT/web_gen.c.tmp" "$OUT/web_gen.c"

FLAGS="-g -O1 -fno-sanitize-recover=undefined -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -fno-omit-frame-pointer"
INC="-Iclient-sdk/include -Iclient-sdk/src -Isync-server -Itests/fuzz"
SRC="client-sdk/src/*.c $OUT/schema_gen.c $OUT/web_gen.c $(ls sync-server/*.c | grep -v main.c | tr "\n" " ") tests/fuzz/fuzz_common.c"
LIBS="-lsqlite3 -lsodium -lcjson -lcivetweb -lqrencode -lz -lpthread -lm"

targets=${1:-"fuzz_changeset fuzz_envelope fuzz_push fuzz_json gen_corpus"}
for t in $targets; do
    if [ "$t" = gen_corpus ]; then
        san="-fsanitize=address,undefined"
    else
        san="-fsanitize=fuzzer,address,undefined"
    fi
    echo "$CC $FLAGS $san $INC -o $OUT/$t tests/fuzz/$t.c $SRC $LIBS"
    # shellcheck disable=SC2086
    $CC $FLAGS $san $INC -o "$OUT/$t" "tests/fuzz/$t.c" $SRC $LIBS
done
