#!/bin/sh
#   make demo: start the guide's agent server, run the guide's program
#   against it (independent mode), stop the server.
set -e
B=${1:-build}
fifo=$(mktemp -u)
mkfifo "$fifo"
"$B/examples/dist_server" -e tcp://127.0.0.1:* > "$fifo" &
server=$!
trap 'kill $server 2>/dev/null; rm -f "$fifo"' EXIT
exec 3< "$fifo"
read -r line <&3
endpoint=${line#listening on }
echo "agent server: $endpoint (pid $server)"
"$B/examples/dist_main" --server "$endpoint"
kill $server
wait $server
