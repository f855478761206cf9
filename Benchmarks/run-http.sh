#!/usr/bin/env bash
# HTTP throughput and tail latency of star-hello, hb-hello and vapor-hello under wrk.
#
#   ./run-http.sh            # build (release) and run all three servers
#   SERVERS="star hb" ./run-http.sh
#   DURATION=10s CONNECTIONS=64 WARMUP=3 ./run-http.sh
#   BIN=.build/release SERVERS=star ./run-http.sh   # no build: the binaries already in BIN
#
# Each server runs alone, pinned to core 0; wrk runs pinned to core 1, against 127.0.0.1 only,
# for a bounded time. Results (raw wrk output and the table, http.md) go to Benchmarks/results/,
# and with gnuplot installed the table as a chart (http.svg, chart.sh).
set -euo pipefail

cd "$(dirname "$0")"
COMMAND_LINE="$0${*:+ $*}"
for var in SERVERS DURATION CONNECTIONS WARMUP BIN; do
    if [[ -n ${!var+x} ]]; then COMMAND_LINE="$var='${!var}' $COMMAND_LINE"; fi
done
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-64}
WARMUP=${WARMUP:-3}
SERVERS=${SERVERS:-"star hb vapor"}
RESULTS=results
mkdir -p "$RESULTS"

if ! command -v wrk >/dev/null; then
    apt-get update
    apt-get install -y wrk
fi
for tool in taskset curl; do
    command -v "$tool" >/dev/null || { echo "run-http.sh: needs $tool" >&2; exit 1; }
done

# One Swift build at a time on this machine: every build goes through the shared lock. Only the
# servers measured are built (the package's other products need not build for this).
# BIN=DIR skips the build and runs DIR's binaries.
if [[ -z ${BIN:-} ]]; then
    for name in $SERVERS; do
        flock /tmp/swiftbuild.lock swift build -c release --product "$name-hello"
    done
    BIN=$(flock /tmp/swiftbuild.lock swift build -c release --show-bin-path)
fi

# Hold the same lock while measuring, so no build (ours or anyone's) competes for the cores.
exec 9>/tmp/swiftbuild.lock
echo "waiting for /tmp/swiftbuild.lock to measure..."
flock 9

# shellcheck source=http-common.sh
. ./http-common.sh  # server_command, stop_server (trapped on EXIT), requests_per_second, p99_ms

ROWS=()
PORT=18080
for name in $SERVERS; do
    PORT=$((PORT + 1))
    command=$(server_command "$name" "$PORT")
    echo "== $name: $command (core 0); load average: $(cut -d' ' -f1-3 /proc/loadavg)"
    taskset -c 0 $command >"$RESULTS/$name-server.log" 2>&1 &
    SERVER_PID=$!
    ready=
    for _ in $(seq 100); do
        if curl -sf "http://127.0.0.1:$PORT/plaintext" >/dev/null 2>&1; then ready=1; break; fi
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    if [[ -z $ready ]]; then
        echo "$name did not answer on port $PORT; its log:" >&2
        cat "$RESULTS/$name-server.log" >&2
        exit 1
    fi
    echo "   plaintext: $(curl -si "http://127.0.0.1:$PORT/plaintext" | tr -d '\r' | grep -i '^content-type') | $(curl -s "http://127.0.0.1:$PORT/plaintext")"
    echo "   json:      $(curl -si "http://127.0.0.1:$PORT/json" | tr -d '\r' | grep -i '^content-type') | $(curl -s "http://127.0.0.1:$PORT/json")"
    # Warm-up: both routes, not measured.
    taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d"$((WARMUP / 2 + WARMUP % 2))s" "http://127.0.0.1:$PORT/plaintext" >/dev/null
    taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d"$((WARMUP / 2))s" "http://127.0.0.1:$PORT/json" >/dev/null 2>&1 || true
    for route in plaintext json; do
        out="$RESULTS/$name-$route.wrk.txt"
        taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d"$DURATION" --latency "http://127.0.0.1:$PORT/$route" >"$out"
        errors=$(awk '/Non-2xx|Socket errors/ { $1 = $1; printf "%s; ", $0 }' "$out")
        echo "   $route: $(requests_per_second "$out") req/s, p99 $(p99_ms "$out") ms ${errors:+($errors)}"
        ROWS+=("| $name-hello | /$route | $(requests_per_second "$out") | $(p99_ms "$out") |")
    done
    stop_server
done

{
    echo "- Date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "- Machine: $(nproc) cores, $(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(uname -sr)"
    echo "- Command: \`$COMMAND_LINE\` (in Benchmarks/)"
    echo
    echo "Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg) (anything else running skews these numbers)."
    echo "wrk -t1 -c$CONNECTIONS -d$DURATION --latency, after ${WARMUP}s warm-up; server on core 0, wrk on core 1 ($(nproc) cores)."
    echo "Each server keeps its default threading: Star sizes its event-loop group by the CPUs it may use"
    echo "(1 under taskset -c 0) and runs handlers on the connection's event loop; Hummingbird and Vapor"
    echo "size theirs by the machine's $(nproc) cores, which then share core 0."
    echo
    echo "| server | route | req/s | p99 (ms) |"
    echo "| --- | --- | ---: | ---: |"
    printf '%s\n' "${ROWS[@]}"
} | tee "$RESULTS/http.md"
# The table as a chart; without gnuplot a one-line hint. Never fails the run.
./chart.sh --optional "$RESULTS/http.md" "$RESULTS/http.svg" || true
