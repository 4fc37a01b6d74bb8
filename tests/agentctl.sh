#!/bin/sh
#   Black-box tests of agentctl: start a real agentd on an ephemeral port,
#   run every command against it in text and --json form, and check the
#   output and the exit statuses. Prints one "N passed, N failed" line
#   last and exits non-zero if any case failed. AGTEST_VALGRIND=1 runs
#   every agentctl under valgrind, a definite leak failing its case.
#
#   usage: sh tests/agentctl.sh BUILD_DIR
#
#   $VALGRIND is split into words on purpose; '$bin' is JSON, not shell.
# shellcheck disable=SC2086,SC2016
B=${1:-build}
CTL="$B/agentctl"
VALGRIND=
slack=3000                          #  ms an unreachable server may cost
if [ -n "$AGTEST_VALGRIND" ]; then
    VALGRIND="valgrind -q --leak-check=full --show-leak-kinds=definite
              --errors-for-leak-kinds=definite --error-exitcode=99"
    slack=20000
fi
tmp=$(mktemp -d)
pid=
passed=0
failed=0

cleanup () {
    if [ -n "$pid" ]; then
        kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

#   ---------------------------------------------------------------------
#   Helpers. A case is a shell function; each check returns 1 and sets
#   $why when it fails, and a case returns the status of its last check.

fail () {
    why="$*"
    return 1
}

#   Run agentctl on the test server: stdout in $tmp/out and $out, stderr
#   in $tmp/err and $err, exit status in $rc
ctl () {
    $VALGRIND "$CTL" -e "$ep" "$@" >"$tmp/out" 2>"$tmp/err"
    rc=$?
    out=$(cat "$tmp/out")
    err=$(cat "$tmp/err")
}

#   The same, with no -e of its own and AGENTD_ENDPOINT set to $1 (unset
#   if empty)
ctl_env () {
    value=$1
    shift
    if [ -n "$value" ]; then
        env AGENTD_ENDPOINT="$value" $VALGRIND "$CTL" "$@" \
            >"$tmp/out" 2>"$tmp/err"
    else
        env -u AGENTD_ENDPOINT $VALGRIND "$CTL" "$@" \
            >"$tmp/out" 2>"$tmp/err"
    fi
    rc=$?
    out=$(cat "$tmp/out")
    err=$(cat "$tmp/err")
}

status_is () {
    [ "$rc" = "$1" ] || fail "exit status $rc, wanted $1; stderr: $err"
}

#   Success: status 0 and nothing on stderr
succeeded () {
    status_is 0 || return 1
    [ -z "$err" ] || fail "stderr not empty: $err"
}

#   Failure with the given status, and a message on stderr, every line of
#   it starting with "agentctl: ", that contains the given text
failed_with () {
    status_is "$1" || return 1
    [ -n "$err" ] || fail "no message on stderr"
    if grep -v -q '^agentctl: ' "$tmp/err"; then
        fail "a line of stderr does not start with 'agentctl: ': $err"
        return 1
    fi
    grep -q -F -- "$2" "$tmp/err" || fail "stderr lacks '$2': $err"
}

out_is () {
    [ "$out" = "$1" ] || fail "output '$out', wanted '$1'"
}

out_has () {
    grep -q -F -- "$1" "$tmp/out" || fail "output lacks '$1': $out"
}

#   Check the output is one JSON document d for which a Python
#   expression holds
json_holds () {
    python3 -c 'import json, sys
d = json.load (open (sys.argv [1]))
sys.exit (0 if eval ("(" + sys.argv [2] + ")") else 1)' "$tmp/out" "$1" \
        2>"$tmp/py" \
        || fail "JSON check '$1' failed on: $(head -c 400 "$tmp/out")" \
                "$(tail -1 "$tmp/py")"
}

#   Milliseconds on a monotonic-enough clock
now_ms () {
    echo $(( $(date +%s%N) / 1000000 ))
}

run_case () {
    why=
    if "$1"; then
        echo " * agentctl $1: OK"
        passed=$((passed + 1))
    else
        echo " * agentctl $1: FAILED: $why"
        failed=$((failed + 1))
    fi
}

#   ---------------------------------------------------------------------
#   The cases. They run in order, on one server: later cases use the
#   agents earlier ones made ($id and the names ctr and ctr2).

help_and_version () {
    ctl_env "" --help
    succeeded || return 1
    out_has "usage: agentctl" || return 1
    out_has "getattr AGENT ATTR" || return 1
    ctl_env "" --version
    succeeded || return 1
    out_has "agentctl 0.1.0"
}

status_text () {
    ctl status
    succeeded || return 1
    out_has "AGP01" || return 1
    out_has "$ep" || return 1
    out_has "  Counter" || return 1
    out_has "  Example" || return 1
    out_has "add sync" || return 1
    out_has "slow async" || return 1
    out_has "count, label, overlaps, log" || return 1
    out_has "busy," || return 1
    out_has "served," || return 1
    grep -q '^pending  *[0-9]' "$tmp/out" || fail "no pending count: $out"
}

status_json () {
    ctl --json status
    succeeded || return 1
    json_holds 'd["protocol"] == "AGP01" and d["version"] == "0.1.0"' \
        || return 1
    json_holds 'd["endpoints"] == ["'"$ep"'"] and d["uptime_ms"] >= 0' \
        || return 1
    json_holds '[c["name"] for c in d["classes"]][:1] == ["Counter"]
                and "Example" in [c["name"] for c in d["classes"]]' \
        || return 1
    json_holds '[c for c in d["classes"] if c["name"] == "Counter"][0]
                == {"name": "Counter", "base": None,
                    "methods": {"add": "sync", "bump": "async",
                                "echo": "sync",
                                "echo_async": "async", "nap": "sync",
                                "slow": "async", "record": "async",
                                "fail": "sync", "blob": "sync"},
                    "attrs": ["count", "label", "overlaps", "log"]}' \
        || return 1
    json_holds 'set (d["threads"]) >= {"busy", "total", "max"}
                and set (d["calls"]) >= {"served", "failed"}
                and d["pending"] >= 0 and d["results"] >= 0
                and d["agents"] >= 0 and d["clients"] >= 0'
}

create_text () {
    ctl create Counter '{"start": 5, "label": "x"}' --name ctr
    succeeded || return 1
    id=${out% ctr}
    case "$id" in
        ''|*[!0-9]*) fail "create printed '$out', not 'ID ctr'"; return 1;;
    esac
}

create_json () {
    ctl --json create Counter null --name ctr2
    succeeded || return 1
    json_holds 'd["name"] == "ctr2" and isinstance (d["id"], int)
                and d["class"]["name"] == "Counter"
                and d["class"]["methods"]["slow"] == "async"'
}

create_errors () {
    ctl create Counter --name ctr
    failed_with 4 "agentctl: error 409" || return 1
    ctl create NoSuchClass
    failed_with 4 "agentctl: error 406" || return 1
    ctl create Counter '{"label": 5}'
    failed_with 4 "agentctl: error 422" || return 1
    out_is ""
}

list_text () {
    ctl list
    succeeded || return 1
    header='^ID  *NAME  *CLASS  *SERVED  *QUEUED  *AGE  *BUSY  *STATE$'
    head -1 "$tmp/out" | grep -q "$header" \
        || fail "no header: $out" || return 1
    grep -q "^$id  *ctr  *Counter  *[0-9][0-9]*  *0  *[0-9.a-z]*  *no  *running$" \
        "$tmp/out" || fail "no row for $id ctr Counter: $out" || return 1
    out_has "ctr2"
}

list_json () {
    ctl --json list
    succeeded || return 1
    json_holds '[(a["name"], a["class"], a["queued"], a["busy"])
                 for a in d if a["id"] == '"$id"']
                == [("ctr", "Counter", 0, False)]' || return 1
    json_holds 'all (set (a) >= {"id", "name", "class", "served", "queued",
                                  "age_ms", "busy"} for a in d)'
}

call_by_id () {
    ctl call "$id" add 3
    succeeded || return 1
    out_is 8
}

call_json () {
    ctl --json call "$id" add 0
    succeeded || return 1
    json_holds 'd == 8'
}

getattr_text_and_json () {
    ctl getattr "$id" count
    succeeded || return 1
    out_is 8 || return 1
    ctl getattr ctr label
    succeeded || return 1
    out_is x || return 1
    ctl --json getattr ctr label
    succeeded || return 1
    json_holds 'd == "x"'
}

show_text () {
    ctl show "$id"
    succeeded || return 1
    grep -q "^name  *ctr$" "$tmp/out" || fail "no name line: $out" \
        || return 1
    grep -q "^class  *Counter$" "$tmp/out" || fail "no class line: $out" \
        || return 1
    grep -q '^count  *8$' "$tmp/out" || fail "no count 8: $out" || return 1
    grep -q '^label  *"x"$' "$tmp/out" || fail "no label: $out" || return 1
    grep -q '^overlaps  *0$' "$tmp/out" || fail "no overlaps: $out" \
        || return 1
    grep -q '^log  *\[\]$' "$tmp/out" || fail "no log: $out"
}

show_json () {
    ctl --json show ctr
    succeeded || return 1
    json_holds 'd["id"] == '"$id"' and d["name"] == "ctr"
                and d["class"] == "Counter" and d["busy"] is False
                and d["attrs"] == {"count": 8, "label": "x",
                                   "overlaps": 0, "log": []}
                and "errors" not in d'
}

call_by_name () {
    ctl call ctr add -1
    succeeded || return 1
    out_is 7 || return 1
    ctl getattr "$id" count
    succeeded || return 1
    out_is 7
}

call_async () {
    ctl call ctr slow '{"ms": 50, "tag": "woke"}'
    succeeded || return 1
    out_is woke || return 1
    ctl call ctr record 42
    succeeded || return 1
    out_is null || return 1
    ctl --json getattr ctr log
    succeeded || return 1
    json_holds 'd == [42]'
}

#   A call that runs longer than the timeout: the server answers pings
#   meanwhile, so it is not taken for dead
call_longer_than_timeout () {
    ctl -t 200 call ctr nap '{"ms": 700, "tag": 1}'
    succeeded || return 1
    out_is 1
}

#   A call with a deadline: one that finishes in time prints its result;
#   one that does not fails with 504 at its deadline
call_with_deadline () {
    ctl -d 5000 call ctr nap '{"ms": 1, "tag": "in time"}'
    succeeded || return 1
    out_is "in time" || return 1
    ctl --deadline=100 call ctr nap '{"ms": 1000, "tag": 1}'
    failed_with 4 "504" || return 1
    ctl -d 100 list
    failed_with 2 "--deadline is an option of call only" || return 1
    ctl -d -1 call ctr add 1
    failed_with 2 "--deadline needs" || return 1
    #   The nap ran on: the agent answers once it is over
    ctl call ctr add 0
    succeeded
}

json_round_trip () {
    args='{"a": [1, -2, 2.5, 0.1, "\u00e9t\u00e9", null, true, false],
           "b": {"$bin": "aGVsbG8="}, "c": {"$ext": [7, "AAE="]},
           "d": {"": {}}, "e": 18446744073709551, "f": "tab\there"}'
    ctl --json call ctr echo_async "$args"
    succeeded || return 1
    python3 -c 'import json, sys
sys.exit (0 if json.load (open (sys.argv [1])) == json.loads (sys.argv [2])
          else 1)' "$tmp/out" "$args" || fail "echo changed the value: $out" \
        || return 1
    #   Text form: a string as it is, anything else as JSON
    ctl call ctr echo '"two\nlines"'
    succeeded || return 1
    out_is "two
lines" || return 1
    ctl call ctr blob '{"size": 3}'
    succeeded || return 1
    json_holds 'd == {"$bin": "eHh4"}'
}

args_from_stdin () {
    echo '{"ms": 0, "tag": [1, 2]}' \
        | $VALGRIND "$CTL" -e "$ep" --json call ctr nap - \
        >"$tmp/out" 2>"$tmp/err"
    rc=$?
    err=$(cat "$tmp/err")
    succeeded || return 1
    json_holds 'd == [1, 2]'
}

no_such_method () {
    ctl call ctr x
    msg="agentctl: error 405 no such method: Counter has no public method 'x'"
    failed_with 4 "$msg" || return 1
    [ "$err" = "$msg" ] || fail "stderr '$err', wanted '$msg'" || return 1
    out_is ""
}

remote_errors () {
    ctl call ctr fail
    failed_with 4 "agentctl: error 520 agent error: failed on purpose" \
        || return 1
    ctl call ctr add '"three"'
    failed_with 4 "agentctl: error 422" || return 1
    ctl getattr ctr nope
    failed_with 4 "agentctl: error 407" || return 1
    ctl show nobody
    failed_with 4 "agentctl: error 404" || return 1
    ctl call nobody add 1
    failed_with 4 "agentctl: error 404"
}

bad_json () {
    ctl call ctr add '{"start": 5'
    failed_with 2 "agentctl: bad JSON argument" || return 1
    ctl call ctr echo hello
    failed_with 2 "quotes" || return 1
    ctl call ctr echo '{"a": 1, "a": 2}'
    failed_with 2 "duplicate" || return 1
    ctl create Counter '{"x": {"$bin": "not base64!"}}'
    failed_with 2 "base64" || return 1
    deep=$(python3 -c 'print ("[" * 40 + "]" * 40)')
    ctl call ctr echo "$deep"
    failed_with 2 "nested deeper" || return 1
    #   Checked before anything is sent: no server needed
    $VALGRIND "$CTL" -e "ipc://$tmp/nobody.sock" -t 5000 call x y '[1,' \
        >"$tmp/out" 2>"$tmp/err"
    rc=$?
    err=$(cat "$tmp/err")
    failed_with 2 "bad JSON argument"
}

usage_errors () {
    ctl frobnicate
    failed_with 2 "unknown command 'frobnicate'" || return 1
    ctl
    failed_with 2 "no command" || return 1
    ctl --frob list
    failed_with 2 "unknown option '--frob'" || return 1
    ctl call ctr
    failed_with 2 "call AGENT METHOD" || return 1
    ctl list extra
    failed_with 2 "usage" || return 1
    ctl --name n list
    failed_with 2 "--name" || return 1
    ctl -t soon ping
    failed_with 2 "-t needs" || return 1
    ctl_env "" -e "http://localhost/" ping
    failed_with 2 "http://localhost/"
}

unreachable () {
    for command in ping status list "call ctr add 1" "show ctr"; do
        start=$(now_ms)
        timeout 60 $VALGRIND "$CTL" -e "ipc://$tmp/nobody.sock" -t 300 \
            $command >"$tmp/out" 2>"$tmp/err"
        rc=$?
        err=$(cat "$tmp/err")
        elapsed=$(( $(now_ms) - start ))
        failed_with 3 "agentctl: error 590" || return 1
        [ "$elapsed" -lt "$slack" ] \
            || fail "$command took $elapsed ms to give up" || return 1
    done
}

environment () {
    ctl_env "$ep" getattr ctr label
    succeeded || return 1
    out_is x || return 1
    #   -e wins over the environment
    ctl_env "ipc://$tmp/nobody.sock" -e "$ep" ping
    succeeded
}

ping_text_and_json () {
    ctl ping
    succeeded || return 1
    case "$out" in
        ''|*[!0-9]*) fail "ping printed '$out', not a number"; return 1;;
    esac
    ctl --json ping
    succeeded || return 1
    json_holds 'isinstance (d["usecs"], int) and d["usecs"] >= 0
                and d["endpoint"] == "'"$ep"'"'
}

options_after_command () {
    ctl list --json
    succeeded || return 1
    json_holds 'isinstance (d, list)'
}

delete_by_id () {
    ctl delete "$id"
    succeeded || return 1
    out_is "" || return 1
    ctl getattr "$id" count
    failed_with 4 "agentctl: error 404" || return 1
    ctl delete "$id"
    failed_with 4 "agentctl: error 404" || return 1
    ctl getattr ctr count
    failed_with 4 "agentctl: error 404"
}

delete_by_name_json () {
    ctl --json delete ctr2
    succeeded || return 1
    json_holds 'isinstance (d["deleted"], int)' || return 1
    ctl call ctr2 add 1
    failed_with 4 "agentctl: error 404" || return 1
    ctl --json list
    json_holds 'not [a for a in d if a["name"] in ("ctr", "ctr2")]'
}

man_page () {
    command -v groff >/dev/null || return 0
    warnings=$(groff -man -ww -z man/agentctl.1 2>&1)
    [ -z "$warnings" ] || fail "groff: $warnings"
}

#   ---------------------------------------------------------------------
#   Start the server and read the endpoint it bound

if [ ! -x "$CTL" ] || [ ! -x "$B/agentd" ]; then
    echo " * agentctl: FAILED: $CTL or $B/agentd not built"
    echo "0 passed, 1 failed"
    exit 1
fi
mkfifo "$tmp/agentd.out"
"$B/agentd" -f -e 'tcp://127.0.0.1:*' --plugin "$B/plugins/testclasses.so" \
    --plugin "$B/plugins/seed.so" >"$tmp/agentd.out" 2>"$tmp/agentd.err" &
pid=$!
exec 3<"$tmp/agentd.out"
read -r line <&3
ep=${line#listening on }
if [ "$line" = "$ep" ] || [ -z "$ep" ]; then
    echo " * agentctl: FAILED: agentd said '$line':" \
         "$(tail -3 "$tmp/agentd.err")"
    echo "0 passed, 1 failed"
    exit 1
fi

for name in help_and_version status_text status_json create_text \
            create_json create_errors list_text list_json call_by_id \
            call_json getattr_text_and_json show_text show_json \
            call_by_name call_async call_longer_than_timeout \
            call_with_deadline \
            json_round_trip args_from_stdin no_such_method remote_errors \
            bad_json usage_errors unreachable environment \
            ping_text_and_json options_after_command delete_by_id \
            delete_by_name_json man_page; do
    run_case "$name"
done

#   Stop the server: SIGTERM, and it exits 0
kill -TERM "$pid"
wait "$pid"
status=$?
pid=
exec 3<&-
if [ "$status" = 0 ]; then
    echo " * agentctl agentd_exit: OK"
    passed=$((passed + 1))
else
    echo " * agentctl agentd_exit: FAILED: exit status $status"
    failed=$((failed + 1))
fi
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
