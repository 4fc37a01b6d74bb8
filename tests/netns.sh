#!/bin/sh
#   Agents on several hosts: two agentd servers and a client, each in a
#   network namespace of its own, joined by a bridge on private addresses
#   (10.77.0.0/24). Shows:
#   - agents on both servers called from the third host;
#   - a pipeline whose futures go from server to server: each server's
#     "fetched" count shows it handed the value on itself;
#   - a host cut off (link down) mid-call: the call fails within the
#     timeout, and the other server keeps working;
#   - a client host cut off without a word: the server notices by its
#     heartbeats and deletes the agents that client owned.
#   Everything it made is removed at the end, even on failure. Without
#   the privileges for namespaces it says so and runs on loopback, where
#   a server or client is cut off by stopping it (SIGSTOP).
#
#   usage: tests/netns.sh [BUILD_DIR]; prints "N passed, N failed"
B=${1:-build}
B=$(cd "$B" && pwd)
tmp=$(mktemp -d)
tag=$$
BR=agbr$tag
NS=""
PIDS=""
passed=0
failed=0

cleanup () {
    for pid in $PIDS; do
        kill -CONT "$pid" 2>/dev/null
        kill "$pid" 2>/dev/null
    done
    for ns in $NS; do
        ip netns del "$ns" 2>/dev/null
    done
    [ -n "$NS" ] && ip link del "$BR" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

ok () { echo " * netns $1: OK"; passed=$((passed + 1)); }
fail () { echo " * netns $1: FAILED: $2"; failed=$((failed + 1)); }

#   Hosts a, b (servers) and c (client)
#   AGTEST_NO_NETNS=1 takes the loopback way even where namespaces work
if [ -z "$AGTEST_NO_NETNS" ] && [ "$(id -u)" = 0 ] \
&& ip netns add aga$tag 2>/dev/null; then
    mode=netns
    NS="aga$tag"
    ip netns add agb$tag && NS="$NS agb$tag"
    ip netns add agc$tag && NS="$NS agc$tag"
    ip link add "$BR" type bridge && ip link set "$BR" up
    n=1
    for host in a b c; do
        ns=ag$host$tag
        ip link add "v$host$tag" type veth peer name eth0 netns "$ns"
        ip link set "v$host$tag" master "$BR" up
        ip -n "$ns" addr add "10.77.0.$n/24" dev eth0
        ip -n "$ns" link set eth0 up
        ip -n "$ns" link set lo up
        n=$((n + 1))
    done
    ADDR_A=10.77.0.1
    ADDR_B=10.77.0.2
    IN_A="ip netns exec aga$tag"
    IN_B="ip netns exec agb$tag"
    IN_C="ip netns exec agc$tag"
    echo " * netns: hosts aga$tag (10.77.0.1), agb$tag (10.77.0.2) and" \
         "agc$tag (10.77.0.3) on bridge $BR"
else
    mode=loopback
    ADDR_A=127.0.0.1
    ADDR_B=127.0.0.1
    IN_A=""
    IN_B=""
    IN_C=""
    echo " * netns: cannot make network namespaces here (needs root);" \
         "running every server on loopback instead"
fi

#   Start agentd on a host; its endpoint in the named variable. The first
#   line it prints is read through a FIFO, so nothing is polled.
start () {
    host=$1 addr=$2 var=$3 name=${4:-$1}
    shift 3
    [ $# -gt 0 ] && shift
    mkfifo "$tmp/$name.out"
    #   (ip netns exec runs the program in its place: $! is agentd)
    eval "prefix=\$IN_$(echo "$host" | tr a-z A-Z)"
    $prefix "$B/agentd" -f -e "tcp://$addr:*" --insecure --grace-ms 0 -p \
        "$B/plugins/seed.so" "$@" > "$tmp/$name.out" 2> "$tmp/$name.log" &
    pid=$!
    PIDS="$PIDS $pid"
    eval "${var}_PID=$pid"
    exec 3< "$tmp/$name.out"
    read -r line <&3 || line=""
    #   Keep reading what else it prints, so it never blocks on stdout
    cat <&3 > /dev/null &
    PIDS="$PIDS $!"
    exec 3<&-
    case "$line" in
        "listening on "*) eval "$var=\${line#listening on }" ;;
        *) echo " * netns: agentd on host $host did not start:"
           cat "$tmp/$name.log"; exit 1 ;;
    esac
}
#   Each fetches the futures it is given from the other
start a "$ADDR_A" EP_A a --peer "tcp://$ADDR_B:*"
start b "$ADDR_B" EP_B b --peer "tcp://$ADDR_A:*"

ctl () { shift; $IN_C "$B/agentctl" "$@"; }
fetched () {
    ctl c -e "$1" --json status | python3 -c \
        'import json, sys; print (json.load (sys.stdin)["fetched"])'
}

#   1. Agents on two servers, called from the third host
if ctl c -e "$EP_A" create Example '{"delay_ms": 0}' --name ea > /dev/null \
&& ctl c -e "$EP_B" create Example '{"delay_ms": 0}' --name eb > /dev/null \
&& [ "$(ctl c -e "$EP_A" call ea sync_method)" = sync ] \
&& [ "$(ctl c -e "$EP_B" call eb sync_method)" = sync ]; then
    ok "two servers from a third host ($mode)"
else
    fail "two servers from a third host" "calls failed"
fi

#   2. The pipeline: parse and render on a, check on b; futures passed on
a0=$(fetched "$EP_A")
b0=$(fetched "$EP_B")
out=$($IN_C "$B/examples/pipeline" --plugin "$B/plugins/seed.so" \
            --delay-ms 200 "$EP_A" "$EP_B" 2>&1)
a1=$(fetched "$EP_A")
b1=$(fetched "$EP_B")
echo "$out" | sed 's/^/   /'
blocked=$(echo "$out" | sed -n 's/^caller blocked: \([0-9.]*\) s$/\1/p')
if echo "$out" | grep -q '^\[render\] page_1 -> parse -> check -> render$' \
&& [ "$a1" = $((a0 + 1)) ] && [ "$b1" = $((b0 + 1)) ] \
&& python3 -c "import sys; sys.exit (0 if $blocked < 0.1 else 1)"; then
    ok "futures server to server: a fetched $a0 -> $a1, b $b0 -> $b1"
else
    fail "futures server to server" "fetched a $a0 -> $a1, b $b0 -> $b1"
fi

#   3. Host a cut off mid-call: the caller hears within its timeout, and
#   b keeps working
ctl c -e "$EP_A" create WebAgent '{"name": "slow", "delay_ms": 30000}' \
    --name slow > /dev/null
start_ns=$(date +%s%N)
ctl c -e "$EP_A" -t 2000 call slow get_answer '{"url": "x"}' \
    > "$tmp/cut.out" 2>&1 &
caller=$!
#   Wait until a holds the call: LIST shows the agent busy (in a worker
#   thread, or out at its host)
busy=0
deadline=$(( $(date +%s) + 20 ))
while [ "$busy" -lt 1 ] && [ "$(date +%s)" -lt "$deadline" ]; do
    busy=$(ctl c -e "$EP_A" --json list | python3 -c \
        'import json, sys; print (sum (1 for a in json.load (sys.stdin) if a["name"] == "slow" and a["busy"]))')
done
if [ "$mode" = netns ]; then
    ip link set "va$tag" down
else
    kill -STOP "$EP_A_PID"
fi
wait "$caller"
status=$?
elapsed_ms=$(( ($(date +%s%N) - start_ns) / 1000000 ))
if [ "$status" = 3 ] && [ "$elapsed_ms" -lt 15000 ] \
&& grep -q "no reply" "$tmp/cut.out"; then
    ok "host cut off mid-call: exit 3 after $elapsed_ms ms ($(cat "$tmp/cut.out"))"
else
    fail "host cut off mid-call" "exit $status after $elapsed_ms ms: $(cat "$tmp/cut.out")"
fi
if [ "$(ctl c -e "$EP_B" call eb sync_method)" = sync ]; then
    ok "the other server keeps working"
else
    fail "the other server keeps working" "call on b failed"
fi

#   4. A client host cut off without closing its connection: b drops it
#   when its heartbeats go unanswered, and deletes the agents it owned
#   after the grace time; its detached agent stays
printf 'server\n    heartbeat_ms = 200\n    heartbeat_timeout_ms = 1000\n    client_grace_ms = 500\n' > "$tmp/beat.conf"
start b "$ADDR_B" EP_D d -c "$tmp/beat.conf" -p "$B/plugins/testclasses.so"
mkfifo "$tmp/holder.out"
$IN_C "$B/tests/agtest" --hold "$EP_D" "$B" > "$tmp/holder.out" 2>&1 &
holder=$!
PIDS="$PIDS $holder"
exec 3< "$tmp/holder.out"
ids=""
for i in 1 2 3 4; do
    read -r id <&3 && ids="$ids $id"
done
exec 3<&-
set -- $ids
owned="$1 $2 $3" detached=$4
listed () {
    $IN_B "$B/agentctl" -e "$EP_D" --json list | python3 -c \
        'import json, sys; print (" ".join (str (i) for i in sorted (a["id"] for a in json.load (sys.stdin))))'
}
before=$(listed)
if [ "$mode" = netns ]; then
    ip link set "vc$tag" down
else
    kill -STOP "$holder"
fi
start_ns=$(date +%s%N)
deadline=$(( $(date +%s) + 30 ))
left=$before
while [ "$(date +%s)" -lt "$deadline" ]; do
    left=$(listed)
    [ "$left" = "$detached" ] && break
done
elapsed_ms=$(( ($(date +%s%N) - start_ns) / 1000000 ))
if [ $# = 4 ] && [ "$before" = "$owned $detached" ] \
&& [ "$left" = "$detached" ] && grep -q "client gone" "$tmp/d.log"; then
    ok "client host cut off: its 3 agents deleted after $elapsed_ms ms, the detached one kept"
else
    fail "client host cut off" "agents before: $before; after $elapsed_ms ms: $left"
fi

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
