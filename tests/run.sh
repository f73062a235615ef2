#!/bin/sh
# run.sh - run the test binaries in BUILD_DIR/tests and add up the results.
# Each test prints "<name>: N passed, M failed"; this prints the closing
# "N passed, M failed" line and exits non-zero if anything failed or crashed.
#   run.sh BUILD_DIR                    every test_* binary
#   run.sh BUILD_DIR valgrind NAME...   the named tests under valgrind memcheck
B=${1:-build/release}
WRAP=""
LIST=""
if [ "${2:-}" = valgrind ]; then
    shift 2
    WRAP="valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite"
    export ES_VALGRIND=1
    for n in "$@"; do LIST="$LIST $B/tests/$n"; done
else
    for t in "$B"/tests/test_*; do
        case "$t" in *.stderr) ;; *) LIST="$LIST $t" ;; esac
    done
fi
passed=0
failed=0
for t in $LIST; do
    [ -x "$t" ] || continue
    name=$(basename "$t")
    out=$($WRAP "$t" 2>"$B/tests/$name.stderr")
    rc=$?
    echo "$out" | tail -n 20
    line=$(echo "$out" | grep -E "^$name: [0-9]+ passed, [0-9]+ failed$" | tail -n 1)
    if [ -z "$line" ]; then
        echo "$name: crashed or printed no result (exit $rc); stderr:"
        tail -n 30 "$B/tests/$name.stderr"
        failed=$((failed + 1))
        continue
    fi
    p=$(echo "$line" | sed 's/.*: \([0-9]*\) passed.*/\1/')
    f=$(echo "$line" | sed 's/.*passed, \([0-9]*\) failed/\1/')
    passed=$((passed + p))
    failed=$((failed + f))
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        echo "$name: exited $rc"
        tail -n 30 "$B/tests/$name.stderr"
        failed=$((failed + 1))
    elif [ "$f" -ne 0 ]; then
        tail -n 40 "$B/tests/$name.stderr"
    fi
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
