#!/bin/sh
# embed.sh - compile the dashboard's files into the server (dash_web.c).
#
# usage: embed.sh FILE...   (each served as /assets/<name>; index.html at /)
# Written with od and sed only, like schema/embed.sh.
set -eu
echo '/* Generated from sync-server/web/ by sync-server/web/embed.sh.  Do not edit. */'
echo '#include <stddef.h>'
echo 'struct dash_file { const char *name, *type; const unsigned char *data; size_t len; };'
n=0
for f in "$@"; do
    echo "static const unsigned char file_$n[] = {"
    od -An -v -tx1 "$f" | sed 's/\([0-9a-f][0-9a-f]\)/0x\1,/g'
    echo '0x00 };'
    n=$((n + 1))
done
echo 'const struct dash_file dash_files[] = {'
n=0
for f in "$@"; do
    name=$(basename "$f")
    case "$name" in
    *.html) type='text/html; charset=utf-8' ;;
    *.css)  type='text/css; charset=utf-8' ;;
    *.js)   type='text/javascript; charset=utf-8' ;;
    *.svg)  type='image/svg+xml' ;;
    *.png)  type='image/png' ;;
    *.woff2) type='font/woff2' ;;
    *.json) type='application/json' ;;
    *)      type='application/octet-stream' ;;
    esac
    echo "    { \"$name\", \"$type\", file_$n, sizeof file_$n - 1 },"
    n=$((n + 1))
done
echo '    { NULL, NULL, NULL, 0 }'
echo '};'
