# shellcheck shell=bash
# Shared by run-http.sh and run-files.sh: the HTTP hello servers' command lines (Benchmarks package,
# release: set BIN), stopping the server that runs, and reading wrk's output. Source it from
# Benchmarks/ after `set -euo pipefail`:
#
#   cd "$(dirname "$0")" && . ./http-common.sh
#
# It traps EXIT to stop the server started last (its pid in SERVER_PID).

server_command() {  # name port -> command line
    case $1 in
        star) echo "$BIN/star-hello --port $2 --no-access-log" ;;
        hb) echo "$BIN/hb-hello --port $2" ;;
        vapor) echo "$BIN/vapor-hello --port $2" ;;
        *) echo "unknown server $1" >&2; return 1 ;;
    esac
}

SERVER_PID=
stop_server() {
    if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    SERVER_PID=
}
trap stop_server EXIT

# wrk's "Requests/sec:" line, and its 99% latency converted to ms.
requests_per_second() { awk '/^Requests\/sec:/ { printf "%.0f", $2 }' "$1"; }
p99_ms() {
    awk '$1 == "99%" {
        v = $2; unit = v; sub(/^[0-9.]+/, "", unit); sub(/[a-z]+$/, "", v)
        if (unit == "us") v /= 1000; else if (unit == "s") v *= 1000; else if (unit == "m") v *= 60000
        printf "%.2f", v
    }' "$1"
}
