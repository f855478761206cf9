#!/usr/bin/env bash
# WebSocket *client* echo throughput: Star's client (StarWebSocketClient), Python `websockets`'
# asyncio client and Hummingbird's client (HummingbirdWSClient), each against the same Star echo
# server (the Examples package's `echo`, release, permessage-deflate off), 64 connections, binary
# messages of 32 B and 64 KiB, each connection sending one message and waiting for its echo.
# loadgen stays the reference for server figures (run-ws.sh); this compares clients.
#
#   ./run-ws-client.sh                          # build (release) and run all three clients
#   CLIENTS="star hb" DURATION=5 ./run-ws-client.sh
#   STAR_ECHO=/path/to/echo ./run-ws-client.sh  # use this Star echo binary instead of building one
#   PYTHON_CLIENT=/path/to/python ./run-ws-client.sh  # a Python with websockets 17.4 (default:
#                                                     # Benchmarks/.venv, made by python/setup.sh)
#
# The server runs pinned to core 0, the client to core 1, on 127.0.0.1 only; every run is bounded
# by its DURATION (and at most 50 million messages) and by `timeout`. The table goes to
# results/ws-client.md.
set -euo pipefail

cd "$(dirname "$0")"
# shellcheck source=ws-common.sh
. ./ws-common.sh
CLIENTS=${CLIENTS:-"star python hb"}
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-64}
SIZES=${SIZES:-"32 65536"}
need_tools run-ws-client.sh taskset timeout flock jq
raise_nofile run-ws-client.sh "$CONNECTIONS"

build_star_echo run-ws-client.sh
BIN=$BENCH_DIR/.build/release
for product in star-ws-client-bench hb-ws-client-bench; do
    case $product in
        star-ws-client-bench) [[ " $CLIENTS " == *" star "* ]] || continue ;;
        hb-ws-client-bench) [[ " $CLIENTS " == *" hb "* ]] || continue ;;
    esac
    timeout 3600 flock "$LOCK" swift build -c release --product "$product" 2>&1 | grep -E "error|warning: unre" || true
done
PYTHON_CLIENT=${PYTHON_CLIENT:-$BENCH_DIR/.venv/bin/python}
if [[ " $CLIENTS " == *" python "* && ! -x $PYTHON_CLIENT ]]; then python/setup.sh; fi

client_command() {  # name url size -> the client's command line (words)
    case $1 in
        star) echo "$BIN/star-ws-client-bench $2 $CONNECTIONS $3 $DURATION" ;;
        hb) echo "$BIN/hb-ws-client-bench $2 $CONNECTIONS $3 $DURATION" ;;
        python) echo "$PYTHON_CLIENT $BENCH_DIR/python/websockets_client_bench.py $2 $CONNECTIONS $3 $DURATION" ;;
    esac
}

take_measure_lock run-ws-client.sh
table=$RESULTS/ws-client.md
{
    echo "| client | size | connections | messages/s | MB/s (each way) |"
    echo "|---|---:|---:|---:|---:|"
} >"$table"
for size in $SIZES; do
    for client in $CLIENTS; do
        start_server star "$RESULTS/ws-client-server-$client-$size.log"
        out=$RESULTS/ws-client-$client-$size.json
        # shellcheck disable=SC2046
        if timeout -k 5 $((DURATION * 3 + 30)) taskset -c 1 $(client_command "$client" "ws://127.0.0.1:$PORT/echo" "$size") >"$out" 2>"$out.err"; then
            rate=$(jq -r '.messages / .seconds' "$out")
            echo "| $client | $size | $CONNECTIONS | $(round "$rate") | $(awk -v r="$rate" -v s="$size" 'BEGIN { printf "%.1f", r * s / 1e6 }') |" >>"$table"
        else
            echo "| $client | $size | $CONNECTIONS | failed: $(tail -c 200 "$out.err" | tr '\n' ' ') | |" >>"$table"
        fi
        stop_server
    done
done
echo "command: $0${*:+ $*} (DURATION=$DURATION CONNECTIONS=$CONNECTIONS CLIENTS=\"$CLIENTS\")" >>"$table"
cat "$table"
