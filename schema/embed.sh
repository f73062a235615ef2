#!/bin/sh
# embed.sh - turn the schema files into C arrays for the server and the SDK.
#
# usage: embed.sh schema.sql server.sql tablet.sql [migrations/NNN_*.sql ...]
# Migrations are numbered by their file name's leading digits.  Written with
# od and sed only, so the build needs nothing beyond coreutils.
set -eu
bytes() {
    od -An -v -tx1 "$1" | sed 's/\([0-9a-f][0-9a-f]\)/0x\1,/g'
    echo '0x00'
}
echo '/* Generated from schema/ by schema/embed.sh.  Do not edit. */'
echo '#include "schema.h"'
for f in "$1" "$2" "$3"; do
    name=$(basename "$f" .sql)
    echo "const char schema_${name}_sql[] = {"
    bytes "$f"
    echo '};'
done
shift 3
n=0
for f in "$@"; do
    echo "static const char migration_$n[] = {"
    bytes "$f"
    echo '};'
    n=$((n + 1))
done
echo 'const struct schema_migration schema_migrations[] = {'
n=0
for f in "$@"; do
    v=$(basename "$f" | sed 's/^0*\([0-9][0-9]*\)_.*/\1/')
    echo "    { $v, migration_$n },"
    n=$((n + 1))
done
echo '    { 0, 0 }'
echo '};'
