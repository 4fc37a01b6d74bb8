#!/bin/sh
#   make install into a scratch DESTDIR, build a program with the
#   installed agentclient.pc, and run it against an agentd from there.
#   Prints one "N passed, N failed" line.
B=${1:-build}
root=$(mktemp -d)
trap 'kill $pid 2>/dev/null; rm -rf "$root"' EXIT
fail () { echo " * install: FAILED: $1"; echo "0 passed, 1 failed"; exit 1; }

make -s install DESTDIR="$root" PREFIX=/usr B="$B" >/dev/null 2>"$root/log" \
    || fail "make install: $(tail -1 "$root/log")"
for file in usr/include/agentclient.h usr/include/agent.h \
            usr/lib/pkgconfig/agentclient.pc usr/lib/libagentclient.so.0 \
            usr/sbin/agentd usr/bin/agentctl usr/lib/agentd/seed.so \
            usr/lib/systemd/system/agentd.service etc/agentd/agentd.conf \
            usr/share/man/man8/agentd.8 usr/share/man/man3/libagentclient.3; do
    [ -e "$root/$file" ] || fail "$file not installed"
done
cat > "$root/app.c" <<'PROG'
#include <agentclient.h>
int
main (int argc, char *argv [])
{
    agc_conn_t *conn = agc_conn_new (argv [1]);
    ag_value_t *args = ag_value_new ("{s:i}", "delay_ms", (int64_t) 0);
    agc_agent_t *agent = agc_agent_new (conn, "Example", args, NULL);
    ag_value_destroy (&args);
    if (!agent)
        return 1;
    ag_value_t *value = agc_agent_call_value (agent, "complex_result", NULL);
    ag_value_print (value, stdout);
    printf ("\n");
    ag_value_destroy (&value);
    agc_agent_destroy (&agent);
    agc_conn_destroy (&conn);
    return 0;
}
PROG
flags=$(PKG_CONFIG_SYSROOT_DIR="$root" PKG_CONFIG_PATH="$root/usr/lib/pkgconfig" \
        pkg-config --cflags --libs agentclient) || fail "pkg-config agentclient"
cc $SANFLAGS -o "$root/app" "$root/app.c" $flags 2>"$root/log" || fail "cc: $(head -3 "$root/log")"
grep -q '^ExecStart=/usr/sbin/agentd -f -c /etc/agentd/agentd.conf$' \
    "$root/usr/lib/systemd/system/agentd.service" || fail "unit file paths"
fifo="$root/out"
mkfifo "$fifo"
"$root/usr/sbin/agentd" -f -e "ipc://$root/sock" --plugin "$root/usr/lib/agentd/seed.so" \
    > "$fifo" 2>/dev/null &
pid=$!
exec 3< "$fifo"
read -r line <&3
[ "$line" = "listening on ipc://$root/sock" ] || fail "agentd said '$line'"
out=$(LD_LIBRARY_PATH="$root/usr/lib" timeout 20 "$root/app" "ipc://$root/sock")
[ "$out" = '{"a": 1, "b": 2, "c": "hello world"}' ] || fail "program printed '$out'"
kill $pid
wait $pid || fail "agentd did not exit cleanly"
echo " * install: OK"
echo "1 passed, 0 failed"
