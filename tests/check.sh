#!/bin/sh
#   Run the unit selftests and the integration tests; print one total.
#   AGTEST_VALGRIND=1 runs the selftests and every agentd under valgrind.
B=${1:-build}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
status=0
if [ -n "$AGTEST_VALGRIND" ]; then
    valgrind -q --leak-check=full --show-leak-kinds=definite \
        --errors-for-leak-kinds=definite \
        --error-exitcode=99 "$B/tests/selftest" | tee "$out" || status=1
else
    "$B/tests/selftest" | tee -a "$out" || status=1
fi
"$B/tests/agtest" "$B" | tee -a "$out" || status=1
sh tests/install.sh "$B" | tee -a "$out" || status=1
if [ -f tests/agentctl.sh ]; then
    sh tests/agentctl.sh "$B" | tee -a "$out" || status=1
fi
#   The benchmark, short: it must run, and its figures are shown, but
#   timings on a shared machine are not a test (make bench judges them).
#   Not under sanitizers or valgrind, whose figures would mean nothing.
if [ -z "$AGTEST_VALGRIND" ] && [ -z "$SANFLAGS" ]; then
    if "$B/bench/agentbench" --quick "$B" > "$out.bench" 2>&1; then
        sed 's/^/   /' "$out.bench"
        echo " * agentbench --quick: OK"
        echo "1 passed, 0 failed" >> "$out"
    else
        cat "$out.bench"
        echo " * agentbench --quick: FAILED to run"
        echo "0 passed, 1 failed" >> "$out"
    fi
    rm -f "$out.bench"
fi
passed=$(sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\1/p' "$out" | awk '{s+=$1} END {print s+0}')
failed=$(sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\2/p' "$out" | awk '{s+=$1} END {print s+0}')
if [ "$status" != 0 ] && [ "$failed" = 0 ]; then
    failed=1                        #  a runner died before counting
fi
echo "check: $passed passed, $failed failed"
[ "$failed" = 0 ]
