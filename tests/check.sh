#!/bin/sh
#   Run the unit selftests and the integration tests; print one total.
#   AGTEST_VALGRIND=1 runs the selftests and every agentd under valgrind.
B=${1:-build}
out=$(mktemp)
trap 'rm -f "$out" "$out.rc" "$out.bench"' EXIT
status=0
#   Run a test program, its output shown and kept; a program that exits
#   with an error (a crash, or a leak report after its count) fails the
#   check even when every case it counted passed. A pipe's status is its
#   last command's, so the program's own goes through a file.
run () {
    { "$@"; echo $? > "$out.rc"; } | tee -a "$out"
    rc=$(cat "$out.rc")
    if [ "$rc" != 0 ]; then
        echo " * $*: exited with status $rc"
        status=1
    fi
}
if [ -n "$AGTEST_VALGRIND" ]; then
    run valgrind -q --leak-check=full --show-leak-kinds=definite \
        --errors-for-leak-kinds=definite \
        --error-exitcode=99 "$B/tests/selftest"
else
    run "$B/tests/selftest"
fi
run "$B/tests/agtest" "$B"
run "$B/tests/sectest" "$B"
run "$B/tests/attacktest" "$B"
run "$B/tests/faulttest" "$B"
run "$B/tests/hosttest" "$B"
run sh tests/install.sh "$B"
if [ -f tests/agentctl.sh ]; then
    run sh tests/agentctl.sh "$B"
fi
#   Several hosts in network namespaces (as root), else on loopback
run sh tests/netns.sh "$B"
rm -f "$out.rc"
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
