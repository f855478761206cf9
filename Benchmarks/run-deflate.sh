#!/usr/bin/env bash
# What permessage-deflate (RFC 7692) costs in Star's `echo` example: server memory per idle
# connection, and the throughput of 64 KiB JSON echoes, with compression and without.
#
#   ./run-deflate.sh
#   DURATION=10 WARMUP=2 CONNECTIONS=16 SIZE=65536 IDLE_CONNECTIONS=1000 HOLD=5 PRIME_SIZE=4096 ./run-deflate.sh
#
# Every run gets a freshly started server, pinned to core 0; loadgen runs pinned to core 1, against
# 127.0.0.1 only, and every phase is bounded in time (loadgen's own limits, plus `timeout`).
# The table goes to Benchmarks/results/deflate.md, loadgen's JSON and the server logs next to it.
set -euo pipefail

cd "$(dirname "$0")"
ROOT=$(cd .. && pwd)
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
CONNECTIONS=${CONNECTIONS:-16}
SIZE=${SIZE:-65536}
IDLE_CONNECTIONS=${IDLE_CONNECTIONS:-1000}
HOLD=${HOLD:-5}
PRIME_SIZE=${PRIME_SIZE:-4096}
PORT=${PORT:-18180}
RESULTS=results
mkdir -p "$RESULTS"

if [[ ! -e /usr/include/zlib.h ]]; then # loadgen links the system zlib
    apt-get update
    apt-get install -y zlib1g-dev
fi
for tool in taskset curl jq make cc timeout; do
    command -v "$tool" >/dev/null || { echo "run-deflate.sh: needs $tool" >&2; exit 1; }
done

# One Swift build at a time on this machine: every build goes through the shared lock.
(cd "$ROOT/Examples" && flock /tmp/swiftbuild.lock swift build -c release --product echo)
ECHO="$(cd "$ROOT/Examples" && flock /tmp/swiftbuild.lock swift build -c release --show-bin-path)/echo"
make -s -C loadgen
LOADGEN=loadgen/loadgen

# Hold the same lock while measuring, so no build (ours or anyone's) competes for the cores.
exec 9>/tmp/swiftbuild.lock
echo "waiting for /tmp/swiftbuild.lock to measure..."
flock 9

SERVER_PID=
stop_server() {
    if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    SERVER_PID=
}
trap stop_server EXIT

start_server() { # name deflate(true|false): a fresh server, so earlier runs leave no allocator state
    PORT=$((PORT + 1))
    taskset -c 0 "$ECHO" --port "$PORT" --log-level warning --no-access-log --ws-max-size 16777216 \
        --ws-per-message-deflate "$2" >"$RESULTS/deflate-$1-server.log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 100); do # up to 10 s; the route answers plain HTTP with 426
        code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/echo" 2>/dev/null || true)
        [[ $code != 000 && -n $code ]] && return 0
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    echo "echo did not answer on port $PORT; its log:" >&2
    cat "$RESULTS/deflate-$1-server.log" >&2
    exit 1
}

run_loadgen() { # name args... -> results/deflate-NAME.json; loadgen exits 1 when it counted errors
    local name=$1
    shift
    local rc=0
    timeout 300 taskset -c 1 "$LOADGEN" "$@" --url "ws://127.0.0.1:$PORT/echo" --server-pid "$SERVER_PID" \
        --json >"$RESULTS/deflate-$name.json" 2>"$RESULTS/deflate-$name.txt" || rc=$?
    if ((rc > 1)); then
        echo "loadgen failed ($rc):" >&2
        cat "$RESULTS/deflate-$name.txt" >&2
        exit 1
    fi
    sed 's/^/   /' "$RESULTS/deflate-$name.txt"
}

echo "== echo: $ECHO (core 0); loadgen (core 1); load average: $(cut -d' ' -f1-3 /proc/loadavg)"

# (a) server RSS per idle connection
IDLE_ROWS=()
idle_run() { # name server-deflate label client-label loadgen-args...
    local name=$1 deflate=$2 label=$3 client=$4
    shift 4
    echo "-- idle, $label: $client"
    start_server "$name" "$deflate"
    run_loadgen "$name" idle --connections "$IDLE_CONNECTIONS" --hold "$HOLD" "$@"
    stop_server
    IDLE_ROWS+=("$(jq -r --arg l "$label" --arg c "$client" \
        '"| \($l) | \($c) | \(.open_at_end) | \(.server.rss_before_kib) | \(.server.rss_after_kib) | \(.server.kib_per_connection | . * 100 | round / 100) | \(.errors.total) |"' \
        "$RESULTS/deflate-$name.json")")
}
idle_run idle-off false "off" "no messages"
idle_run idle-on true "on" "negotiated, no messages" --deflate
idle_run idle-off-primed false "off" "one $PRIME_SIZE-byte JSON echo each" --prime --size "$PRIME_SIZE" --payload json
idle_run idle-on-primed true "on" "one $PRIME_SIZE-byte JSON echo each" --prime --size "$PRIME_SIZE" --payload json --deflate-once

# (b) throughput of SIZE-byte JSON echoes
ECHO_ROWS=()
echo_run() { # name server-deflate label loadgen-args...
    local name=$1 deflate=$2 label=$3
    shift 3
    echo "-- echo, $label"
    start_server "$name" "$deflate"
    run_loadgen "$name" echo --connections "$CONNECTIONS" --inflight 1 --size "$SIZE" --payload json \
        --warmup "$WARMUP" --duration "$DURATION" --verify-all "$@"
    stop_server
    ECHO_ROWS+=("$(jq -r --arg l "$label" '
        def r(n): . * n | round / n;
        (if .deflate then "\(.deflate.sent_wire_bytes / .deflate.sent_messages | round) / \(.deflate.received_wire_bytes / ([.deflate.received_messages, 1] | max) | round)" else "\(.size) / \(.size)" end) as $wire |
        "| \($l) | \(.messages_per_s | round) | \(.mb_per_s | r(10)) | \($wire) | \(.latency_us.p50 / 1000 | r(100)) | \(.latency_us.p99 / 1000 | r(100)) | \(.server.cpu_percent | r(10)) | \(.server.cpu_percent / 100 / .messages_per_s * 1e6 | round) | \(.client_cpu.percent_of_core | r(10)) | \(.errors.total) |"' \
        "$RESULTS/deflate-$name.json")")
}
echo_run echo-off false "off"
echo_run echo-on true "on" --deflate-once
echo_run echo-on-stream true "on, loadgen deflates each message" --deflate

AGREED=$(jq -r '.deflate.agreed' "$RESULTS/deflate-echo-on.json")
{
    echo
    echo "Star \`echo\` (release, \`--ws-max-size 16777216\`; \`--ws-per-message-deflate false\` for \"off\"), a fresh"
    echo "server per run on core 0; loadgen on core 1 ($(nproc) cores). Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)."
    echo "loadgen offers \`permessage-deflate; client_max_window_bits\`; Star agreed \`$AGREED\`."
    echo
    echo "Server RSS per idle connection, $IDLE_CONNECTIONS connections held ${HOLD} s (\`loadgen idle\`):"
    echo
    echo "| deflate | before the hold | open | RSS before (KiB) | RSS after (KiB) | KiB per connection | errors |"
    echo "| --- | --- | ---: | ---: | ---: | ---: | ---: |"
    printf '%s\n' "${IDLE_ROWS[@]}"
    echo
    echo "$SIZE-byte JSON text echoes, $CONNECTIONS connections, 1 in flight each, ${DURATION} s after ${WARMUP} s warm-up,"
    echo "every byte verified (\`loadgen echo --payload json --verify-all\`). \"on\" uses \`--deflate-once\`: loadgen"
    echo "compresses the payload once and splices each message's sequence bytes in, so it stays off the"
    echo "critical path; in the last row it deflates every message (level 6), as a browser would."
    echo
    echo "| deflate | msg/s | MB/s (payload) | B on the wire per message (sent / echoed) | p50 (ms) | p99 (ms) | server CPU % | server CPU µs/msg | loadgen CPU % | errors |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    printf '%s\n' "${ECHO_ROWS[@]}"
} | tee "$RESULTS/deflate.md"
