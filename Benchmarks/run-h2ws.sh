#!/usr/bin/env bash
# WebSockets over HTTP/2 (RFC 8441) against WebSockets over HTTP/1.1, on Star's echo example.
#
#   ./run-h2ws.sh
#   DURATION=10 WARMUP=2 IDLE_STREAMS=10000 IDLE_HOLD=5 QUIET_WAIT=600 QUIET_LOAD=0.8 ./run-h2ws.sh
#   STAR_ECHO=/path/to/echo ./run-h2ws.sh      # use this Star binary instead of building one
#
# The server is Star's `echo` (Examples package), cleartext: HTTP/2 by prior knowledge (h2c) and
# HTTP/1.1 on the same port, started as run-ws.sh starts it (ws-common.sh), pinned to core 0. The
# client is h2wsload (h2wsload/, C on libnghttp2), pinned to core 1; it speaks both transports with the
# same code, so the comparison is one client against one server. loadgen (run-ws.sh's client) runs the
# HTTP/1.1 cases again as a cross-check. Before every measurement the script waits for a quiet
# machine (load-common.sh) and records the load average.
#
#   (e2) echo over h2:   h2wsload echo --connections 8 --streams 8 --size 32 (one message in flight per stream)
#   (e1) echo over h1:   h2wsload echo --h1 --connections 64 --size 32; and loadgen echo --connections 64
#        --inflight 1 --size 32 --text
#   (i2) idle over h2:   a fresh server; IDLE_STREAMS streams as IDLE_STREAMS/100 connections x 100 streams
#        (the server's default --http2-max-concurrent-streams), held IDLE_HOLD s: (VmRSS after - before) / streams
#   (i2w) the same as 10 connections x IDLE_STREAMS/10 streams, on a server started with
#        STAR_HTTP2_MAX_CONCURRENT_STREAMS=IDLE_STREAMS/10 (wider connections)
#   (i1) idle over h1:   a fresh server; IDLE_STREAMS connections (h2wsload --h1), and loadgen idle (run-ws.sh's (d))
set -euo pipefail

cd "$(dirname "$0")"
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
IDLE_STREAMS=${IDLE_STREAMS:-10000}
IDLE_HOLD=${IDLE_HOLD:-5}

# shellcheck source=ws-common.sh
. ./ws-common.sh  # start_server, stop_server (trapped), loadgen, field, round, raise_nofile ...
# shellcheck source=load-common.sh
. ./load-common.sh  # wait_load

need_tools run-h2ws.sh taskset jq timeout
if [[ ! -f /usr/include/nghttp2/nghttp2.h ]]; then
    apt-get install -y libnghttp2-dev
fi
build_c_tools
make -s -C "$BENCH_DIR/h2wsload"
H2WSLOAD=$BENCH_DIR/h2wsload/h2wsload
build_star_echo run-h2ws.sh

take_measure_lock run-h2ws.sh
raise_nofile run-h2ws.sh "$IDLE_STREAMS"

h2wsload() {  # output-json args... : one bounded h2wsload run on core 1
    local out=$1 status=0
    shift
    if [[ -z $SERVER_PID ]]; then
        echo '{"errors":1,"first_error":"server not running"}' >"$out"
        return 0
    fi
    timeout 300 taskset -c 1 "$H2WSLOAD" "$@" --port "$PORT" --server-pid "$SERVER_PID" >"$out" 2>"${out%.json}.txt" || status=$?
    check_alive "$(basename "$out" .json)"
    if ((status != 0)); then
        NOTES+=("h2wsload $* exited $status: $(tail -n 3 "${out%.json}.txt" | tr '\n' ' ')")
        echo "   h2wsload $* exited $status" >&2
    fi
    cat "${out%.json}.txt"
    return 0
}

P=$RESULTS/h2ws
ROWS=()
echo "== run-h2ws.sh: Star echo ($STAR_ECHO), ${DURATION}s runs after ${WARMUP}s warm-up; load average $(cut -d' ' -f1-3 /proc/loadavg)"

# ---- echo: one server for the three runs
start_server star "$P-echo-server.log"
wait_load "echo h2 8x8"
L_E2=$LOAD_AT_START
h2wsload "$P-e2-echo-h2.json" echo --connections 8 --streams 8 --size 32 --warmup "$WARMUP" --duration "$DURATION"
wait_load "echo h1 64 (h2wsload)"
L_E1=$LOAD_AT_START
h2wsload "$P-e1-echo-h1.json" echo --h1 --connections 64 --size 32 --warmup "$WARMUP" --duration "$DURATION"
wait_load "echo h1 64 (loadgen)"
L_E1L=$LOAD_AT_START
loadgen "$P-e1l-echo-h1-loadgen.json" echo --connections 64 --inflight 1 --size 32 --text --warmup "$WARMUP" --duration "$DURATION" --server-pid "$SERVER_PID"
cat "$P-e1l-echo-h1-loadgen.txt"
stop_server

# ---- idle: a fresh server for each
H2_CONNS=$(((IDLE_STREAMS + 99) / 100))
start_server star "$P-i2-server.log"
wait_load "idle h2 ${H2_CONNS}x100"
L_I2=$LOAD_AT_START
h2wsload "$P-i2-idle-h2.json" idle --connections "$H2_CONNS" --streams 100 --hold "$IDLE_HOLD" --timeout 60
stop_server

WIDE=$(((IDLE_STREAMS + 9) / 10))
if ((WIDE <= 1000)); then
    start_server star "$P-i2w-server.log" STAR_HTTP2_MAX_CONCURRENT_STREAMS="$WIDE"
    wait_load "idle h2 10x$WIDE"
    L_I2W=$LOAD_AT_START
    h2wsload "$P-i2w-idle-h2-wide.json" idle --connections 10 --streams "$WIDE" --hold "$IDLE_HOLD" --timeout 60
    stop_server
else
    L_I2W="n/a"
    echo '{}' >"$P-i2w-idle-h2-wide.json"
fi

start_server star "$P-i1-server.log"
wait_load "idle h1 $IDLE_STREAMS (h2wsload)"
L_I1=$LOAD_AT_START
h2wsload "$P-i1-idle-h1.json" idle --h1 --connections "$IDLE_STREAMS" --hold "$IDLE_HOLD" --timeout 60
stop_server

start_server star "$P-i1l-server.log"
wait_load "idle h1 $IDLE_STREAMS (loadgen)"
L_I1L=$LOAD_AT_START
loadgen "$P-i1l-idle-h1-loadgen.json" idle --connections "$IDLE_STREAMS" --hold "$IDLE_HOLD" --server-pid "$SERVER_PID"
cat "$P-i1l-idle-h1-loadgen.txt"
stop_server

# ---- the table
j() { field "$1" "$2"; }
{
    echo
    echo "run-h2ws.sh, $(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) cores ($(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)), $(uname -sr); commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- ../Sources 2>/dev/null || echo ' with uncommitted changes to Sources/')."
    echo "Server: Star's echo example, \`$(server_command star PORT)\`, cleartext (h2c by prior knowledge, HTTP/1.1 on the same port), core 0."
    echo "Client: h2wsload (libnghttp2 $(awk -F'"' '/define NGHTTP2_VERSION /{ print $2 }' /usr/include/nghttp2/nghttp2ver.h)) on core 1, and loadgen for the HTTP/1.1 cross-check."
    echo
    echo "| echo, 32 B text, one in flight per WebSocket | client | msg/s | p50 µs | p99 µs | server CPU % | client CPU % | errors | load average at start |"
    echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
    echo "| h2: 8 connections × 8 streams | h2wsload | $(round "$(j "$P-e2-echo-h2.json" .msgs_per_s)") | $(j "$P-e2-echo-h2.json" .p50_us) | $(j "$P-e2-echo-h2.json" .p99_us) | $(round "$(j "$P-e2-echo-h2.json" .server_cpu_pct)") | $(round "$(j "$P-e2-echo-h2.json" .client_cpu_pct)") | $(j "$P-e2-echo-h2.json" .errors) | $L_E2 |"
    echo "| h1: 64 connections | h2wsload --h1 | $(round "$(j "$P-e1-echo-h1.json" .msgs_per_s)") | $(j "$P-e1-echo-h1.json" .p50_us) | $(j "$P-e1-echo-h1.json" .p99_us) | $(round "$(j "$P-e1-echo-h1.json" .server_cpu_pct)") | $(round "$(j "$P-e1-echo-h1.json" .client_cpu_pct)") | $(j "$P-e1-echo-h1.json" .errors) | $L_E1 |"
    echo "| h1: 64 connections | loadgen | $(round "$(j "$P-e1l-echo-h1-loadgen.json" .messages_per_s)") | $(round "$(j "$P-e1l-echo-h1-loadgen.json" .latency_us.p50)") | $(round "$(j "$P-e1l-echo-h1-loadgen.json" .latency_us.p99)") | $(round "$(j "$P-e1l-echo-h1-loadgen.json" .server.cpu_percent)") | $(round "$(j "$P-e1l-echo-h1-loadgen.json" .client_cpu.percent_of_core)") | $(j "$P-e1l-echo-h1-loadgen.json" .errors.total) | $L_E1L |"
    echo
    echo "| idle WebSockets, held ${IDLE_HOLD} s, fresh server | client | open at the end | server VmRSS before → after (KiB) | KiB per WebSocket | load average at start |"
    echo "| --- | --- | ---: | --- | ---: | --- |"
    echo "| h2: $H2_CONNS connections × 100 streams | h2wsload | $(j "$P-i2-idle-h2.json" .open_at_end) | $(j "$P-i2-idle-h2.json" .rss_before_kib) → $(j "$P-i2-idle-h2.json" .rss_after_kib) | $(round "$(j "$P-i2-idle-h2.json" .kib_per_websocket)" 2) | $L_I2 |"
    echo "| h2: 10 connections × $WIDE streams | h2wsload | $(j "$P-i2w-idle-h2-wide.json" .open_at_end) | $(j "$P-i2w-idle-h2-wide.json" .rss_before_kib) → $(j "$P-i2w-idle-h2-wide.json" .rss_after_kib) | $(round "$(j "$P-i2w-idle-h2-wide.json" .kib_per_websocket)" 2) | $L_I2W |"
    echo "| h1: $IDLE_STREAMS connections | h2wsload --h1 | $(j "$P-i1-idle-h1.json" .open_at_end) | $(j "$P-i1-idle-h1.json" .rss_before_kib) → $(j "$P-i1-idle-h1.json" .rss_after_kib) | $(round "$(j "$P-i1-idle-h1.json" .kib_per_websocket)" 2) | $L_I1 |"
    echo "| h1: $IDLE_STREAMS connections | loadgen | $(j "$P-i1l-idle-h1-loadgen.json" .open_at_end) | $(j "$P-i1l-idle-h1-loadgen.json" .server.rss_before_kib) → $(j "$P-i1l-idle-h1-loadgen.json" .server.rss_after_kib) | $(round "$(j "$P-i1l-idle-h1-loadgen.json" .server.kib_per_connection)" 2) | $L_I1L |"
    if ((${#NOTES[@]} + ${#LOAD_NOTES[@]} > 0)); then
        echo
        echo "Problems seen:"
        for n in "${NOTES[@]}" "${LOAD_NOTES[@]}"; do echo "- $n"; done
    fi
} | tee "$RESULTS/h2ws.md"
