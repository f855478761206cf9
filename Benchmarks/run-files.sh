#!/usr/bin/env bash
# Static files and streaming: star-hello's StaticFiles against Hummingbird's and Vapor's
# FileMiddleware, and Star's Server-Sent Events fan-out.
#
#   ./run-files.sh                    # build (release) and run all three servers
#   SERVERS="star hb" DURATION=10s CONNECTIONS=64 ./run-files.sh
#
# Each server runs alone, pinned to core 0, serving the same folder (made here, under results/);
# the load runs on core 1, against 127.0.0.1 only, for a bounded time:
#   - wrk on a 1 KiB and a 1 MiB file (requests/s, p99);
#   - curl downloading a 100 MiB file three times (MB/s, the median);
#   - Star only: sse/ssefan, 1,000 clients on one feed of one event per 10 ms (deliveries/s, p99
#     latency from publish to client). Hummingbird and Vapor have no Server-Sent Events of their own.
# Results go to Benchmarks/results/files.md.
set -euo pipefail

cd "$(dirname "$0")"
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-64}
SERVERS=${SERVERS:-"star hb vapor"}
SSE_CLIENTS=${SSE_CLIENTS:-1000}
RESULTS=results
mkdir -p "$RESULTS"

if ! command -v wrk >/dev/null; then
    apt-get update
    apt-get install -y wrk
fi
for tool in taskset curl cc; do
    command -v "$tool" >/dev/null || { echo "run-files.sh: needs $tool" >&2; exit 1; }
done
cc -O2 -Wall -o sse/ssefan sse/ssefan.c

# One Swift build at a time on this machine: every build goes through the shared lock.
for product in star-hello hb-hello vapor-hello; do
    flock /tmp/swiftbuild.lock swift build -c release --product "$product"
done
BIN=$(flock /tmp/swiftbuild.lock swift build -c release --show-bin-path)

PUBLIC=$PWD/$RESULTS/public
mkdir -p "$PUBLIC/static"
head -c 1024 /dev/urandom >"$PUBLIC/static/1k.bin"
head -c $((1 << 20)) /dev/urandom >"$PUBLIC/static/1m.bin"
head -c $((100 << 20)) /dev/urandom >"$PUBLIC/static/100m.bin"

# Hold the same lock while measuring, so no build (ours or anyone's) competes for the cores.
exec 9>/tmp/swiftbuild.lock
echo "waiting for /tmp/swiftbuild.lock to measure..."
flock 9

# shellcheck source=http-common.sh
. ./http-common.sh  # server_command, stop_server (trapped on EXIT), requests_per_second, p99_ms

ROWS=()
SSE_ROW=
PORT=18180
for name in $SERVERS; do
    PORT=$((PORT + 1))
    command=$(server_command "$name" "$PORT")
    echo "== $name: $command (core 0); load average: $(cut -d' ' -f1-3 /proc/loadavg)"
    STAR_BENCH_PUBLIC=$PUBLIC taskset -c 0 $command >"$RESULTS/$name-files-server.log" 2>&1 &
    SERVER_PID=$!
    ready=
    for _ in $(seq 100); do
        if curl -sf "http://127.0.0.1:$PORT/static/1k.bin" -o /dev/null 2>&1; then ready=1; break; fi
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    if [[ -z $ready ]]; then
        echo "$name did not serve /static/1k.bin on port $PORT; its log:" >&2
        cat "$RESULTS/$name-files-server.log" >&2
        exit 1
    fi
    for file in 1k.bin 1m.bin 100m.bin; do  # every server sends the bytes on disk
        cmp -s <(curl -s "http://127.0.0.1:$PORT/static/$file") "$PUBLIC/static/$file" \
            || { echo "$name sent a different $file" >&2; exit 1; }
    done
    cells=()
    for file in 1k.bin 1m.bin; do
        taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d2s "http://127.0.0.1:$PORT/static/$file" >/dev/null  # warm-up
        out="$RESULTS/$name-$file.wrk.txt"
        taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d"$DURATION" --latency "http://127.0.0.1:$PORT/static/$file" >"$out"
        errors=$(awk '/Non-2xx|Socket errors/ { $1 = $1; printf "%s; ", $0 }' "$out")
        echo "   $file: $(requests_per_second "$out") req/s, p99 $(p99_ms "$out") ms ${errors:+($errors)}"
        cells+=("$(requests_per_second "$out") | $(p99_ms "$out")")
    done
    speeds=()
    for _ in 1 2 3; do
        speeds+=("$(taskset -c 1 curl -s -o /dev/null -w '%{speed_download}' "http://127.0.0.1:$PORT/static/100m.bin")")
    done
    median=$(printf '%s\n' "${speeds[@]}" | sort -n | sed -n 2p)
    mbps=$(awk -v b="$median" 'BEGIN { printf "%.0f", b / 1e6 }')
    echo "   100 MiB download: ${mbps} MB/s (median of ${speeds[*]} B/s)"
    ROWS+=("| $name | ${cells[0]} | ${cells[1]} | $mbps |")
    if [[ $name == star ]]; then
        out="$RESULTS/star-sse.txt"
        taskset -c 1 sse/ssefan --port "$PORT" --clients "$SSE_CLIENTS" --warmup 2 --duration "${DURATION%s}" | tee "$out"
        SSE_ROW="| star | $SSE_CLIENTS | $(awk '/^deliveries/ { print $2 }' "$out") | $(awk '/^latency/ { print $4 }' "$out") | $(awk '/^latency/ { print $6 }' "$out") |"
    fi
    stop_server
done

{
    echo
    echo "Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg) (anything else running skews these numbers)."
    echo "wrk -t1 -c$CONNECTIONS -d$DURATION --latency after 2 s of warm-up; server on core 0, load on core 1 ($(nproc) cores)."
    echo
    echo "| server | 1 KiB req/s | p99 (ms) | 1 MiB req/s | p99 (ms) | 100 MiB download MB/s |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: |"
    printf '%s\n' "${ROWS[@]}"
    if [[ -n $SSE_ROW ]]; then
        echo
        echo "| server | SSE clients | deliveries/s (one event per 10 ms each) | p50 (ms) | p99 (ms) |"
        echo "| --- | ---: | ---: | ---: | ---: |"
        echo "$SSE_ROW"
    fi
} | tee "$RESULTS/files.md"
