#!/bin/sh
# run.sh - run one fuzz target, or replay the seed corpora and regressions.
#
#   sh tests/fuzz/run.sh fuzz_changeset 600    fuzz for 600 s (one process)
#   sh tests/fuzz/run.sh replay                every target over its seeds and
#                                              tests/fuzz/regressions/ (fast; exits
#                                              non-zero on a crash)
#
# Build first with sh tests/fuzz/build.sh (make fuzz does all of it).  New
# inputs go to tests/fuzz/out/work/<target> (ignored by git); crashes to
# tests/fuzz/out/artifacts/.  One process, one core.  FUZZ_SEED=N fixes
# libFuzzer's random seed, so a run repeats (CI); unset, it is random.
set -eu
cd "$(dirname "$0")/../.."
OUT=tests/fuzz/out
what=${1:?usage: run.sh TARGET SECONDS | replay}

if [ "$what" = replay ]; then
    fail=0
    for t in fuzz_changeset fuzz_envelope fuzz_push fuzz_json; do
        set -- tests/fuzz/corpus/$t/*
        for f in tests/fuzz/regressions/$t-*; do
            [ -e "$f" ] && set -- "$@" "$f"
        done
        # FUZZ_RESET_EVERY=1: each push input starts from the seeded county
        if FUZZ_RESET_EVERY=1 "$OUT/$t" -timeout=10 "$@" > "$OUT/replay-$t.log" 2>&1; then
            echo "$t: $# inputs, no crash"
        else
            echo "$t: CRASH (see $OUT/replay-$t.log)"
            grep -E "^fuzz_[a-z]+: |runtime error|ERROR: AddressSanitizer|SUMMARY|^Running: " \
                "$OUT/replay-$t.log" | tail -n 4
            fail=1
        fi
    done
    exit $fail
fi

secs=${2:-600}
mkdir -p "$OUT/work/$what" "$OUT/artifacts"
cd "$OUT"
# One process, in-process fuzzing (one core); the exit status is the
# fuzzer's, so a finding fails the run.  Log: tests/fuzz/out/<target>.log
rc=0
"./$what" ${FUZZ_SEED:+-seed="$FUZZ_SEED"} -max_total_time="$secs" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="artifacts/$what-" \
    "work/$what" "../corpus/$what" > "$what.log" 2>&1 || rc=$?
runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$what.log")
cov=$(grep -E '^#[0-9]+' "$what.log" | tail -n 1 | sed -n 's/.*\(cov: [0-9]*\).*\(ft: [0-9]*\).*\(corp: [^ ]*\).*/\1 \2 \3/p')
if [ "$rc" -eq 0 ]; then
    echo "$what: ${runs:-?} executions in ${secs} s, no finding ($cov)"
else
    echo "$what: FINDING (exit $rc), see tests/fuzz/out/$what.log and out/artifacts/"
    grep -E "^fuzz_[a-z]+: |runtime error|ERROR: |SUMMARY" "$what.log" | head -n 5
fi
exit $rc
