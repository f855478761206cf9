#!/usr/bin/env bash
# HTTP/2 over TLS: star-hello, hb-hello (HummingbirdHTTP2) and vapor-hello (supportVersions [.one, .two])
# under h2load, 64 streams over 8 connections.
#
#   ./run-h2.sh                 # build (release) and run all three servers
#   SERVERS="star hb" ./run-h2.sh
#   DURATION=10 CONNECTIONS=8 STREAMS=8 WARMUP=3 QUIET_WAIT=600 QUIET_LOAD=0.8 ./run-h2.sh
#
# The script makes a throwaway certificate (openssl, P-256, results/h2-tls/), starts each server with
# TLS (Star: --ssl-certfile/--ssl-keyfile through the Benchmarks package's TLS trait; Hummingbird and
# Vapor: STAR_BENCH_TLS=cert:key), checks that curl gets HTTP/2 on both routes, then for each route:
# waits for a quiet machine (load-common.sh), warms up, and runs
#   taskset -c 1 h2load -c 8 -m 8 -t 1 -D 10 --log-file FILE https://127.0.0.1:PORT/ROUTE
# Server on core 0, h2load on core 1, 127.0.0.1 only, bounded by -D and timeout. req/s is h2load's;
# p99 is computed from the per-request times of --log-file (h2load prints no percentiles).
set -euo pipefail

cd "$(dirname "$0")"
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-8}
STREAMS=${STREAMS:-8}
WARMUP=${WARMUP:-3}
SERVERS=${SERVERS:-"star hb vapor"}
RESULTS=results
mkdir -p "$RESULTS"

if ! command -v h2load >/dev/null; then
    apt-get install -y nghttp2-client
fi
for tool in taskset curl openssl; do
    command -v "$tool" >/dev/null || { echo "run-h2.sh: needs $tool" >&2; exit 1; }
done

# A throwaway certificate for 127.0.0.1 / localhost.
TLS_DIR=$RESULTS/h2-tls
mkdir -p "$TLS_DIR"
if [[ ! -s $TLS_DIR/cert.pem || ! -s $TLS_DIR/key.pem ]]; then
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
        -keyout "$TLS_DIR/key.pem" -out "$TLS_DIR/cert.pem" -subj /CN=localhost \
        -addext subjectAltName=DNS:localhost,IP:127.0.0.1 2>/dev/null
fi
CERT=$(cd "$TLS_DIR" && pwd)/cert.pem
KEY=$(cd "$TLS_DIR" && pwd)/key.pem

# One Swift build at a time on this machine: every build goes through the shared lock.
# Only the servers measured are built.
if [[ -z ${BIN:-} ]]; then
    for name in $SERVERS; do
        timeout 3600 flock /tmp/swiftbuild.lock swift build -c release --product "$name-hello"
    done
    BIN=$(flock /tmp/swiftbuild.lock swift build -c release --show-bin-path)
fi

# Hold the same lock while measuring, so no build (ours or anyone's) competes for the cores.
exec 9>/tmp/swiftbuild.lock
echo "waiting for /tmp/swiftbuild.lock to measure..."
flock -w 3600 9

# shellcheck source=http-common.sh
. ./http-common.sh  # stop_server (trapped on EXIT)
# shellcheck source=load-common.sh
. ./load-common.sh  # wait_load

h2_command() {  # name port -> the server's command line over TLS
    case $1 in
        star) echo "$BIN/star-hello --port $2 --no-access-log --ssl-certfile $CERT --ssl-keyfile $KEY" ;;
        hb) echo "$BIN/hb-hello --port $2" ;;
        vapor) echo "$BIN/vapor-hello --port $2" ;;
        *) echo "unknown server $1" >&2; return 1 ;;
    esac
}

# h2load's "finished in 10.00s, 31415.90 req/s, ..." and its request counts.
h2_rps() { awk '/^finished in/ { v = $4; sub(/,$/, "", v); printf "%.0f", v }' "$1"; }
h2_requests() { awk '/^requests:/ { $1 = ""; sub(/^ /, ""); print }' "$1"; }
# p99 (and p50) in ms from h2load's --log-file: start (µs since the epoch) TAB status TAB duration (µs).
log_percentile() {  # file percent
    cut -f3 "$1" | sort -n | awk -v p="$2" '{ v[NR] = $1 } END {
        if (NR == 0) { print "n/a"; exit }
        i = int(NR * p / 100 + 0.999999); if (i < 1) i = 1; if (i > NR) i = NR
        printf "%.2f", v[i] / 1000 }'
}
log_non200() { awk -F'\t' '$2 != 200 { n++ } END { print n + 0 }' "$1"; }

ROWS=()
DETAILS=()
NOTES=()
PORT=18180
for name in $SERVERS; do
    PORT=$((PORT + 1))
    command=$(h2_command "$name" "$PORT")
    echo "== $name: $command (core 0)"
    STAR_BENCH_TLS="$CERT:$KEY" taskset -c 0 $command >"$RESULTS/h2-$name-server.log" 2>&1 &
    SERVER_PID=$!
    ready=
    for _ in $(seq 150); do
        if curl -skf --http2 "https://127.0.0.1:$PORT/plaintext" >/dev/null 2>&1; then ready=1; break; fi
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    if [[ -z $ready ]]; then
        echo "$name did not answer https on port $PORT; its log:" >&2
        cat "$RESULTS/h2-$name-server.log" >&2
        exit 1
    fi
    for route in plaintext json; do
        got=$(curl -sk --http2 -o /dev/null -w '%{http_version} %{http_code} %{content_type}' "https://127.0.0.1:$PORT/$route")
        echo "   $route: $got | $(curl -sk --http2 "https://127.0.0.1:$PORT/$route")"
        [[ $got == "2 200 "* ]] || NOTES+=("$name /$route: curl --http2 got '$got', not HTTP/2 200")
    done
    for route in plaintext json; do
        url="https://127.0.0.1:$PORT/$route"
        wait_load "$name /$route"
        load=$LOAD_AT_START
        echo "   $route: load average $load; warm-up ${WARMUP}s"
        timeout $((WARMUP + 30)) taskset -c 1 h2load -c "$CONNECTIONS" -m "$STREAMS" -t 1 -D "$WARMUP" "$url" >/dev/null 2>&1 || true
        out="$RESULTS/h2-$name-$route.h2load.txt"
        log="$RESULTS/h2-$name-$route.h2load.log"
        rm -f "$log"
        status=0
        timeout $((DURATION + 60)) taskset -c 1 h2load -c "$CONNECTIONS" -m "$STREAMS" -t 1 -D "$DURATION" \
            --log-file "$log" "$url" >"$out" 2>&1 || status=$?
        kill -0 "$SERVER_PID" 2>/dev/null || NOTES+=("$name died during /$route; log: $(tail -c 400 "$RESULTS/h2-$name-server.log" | tr '\n' ' ')")
        protocol=$(awk -F': ' '/^Application protocol/ { print $2 }' "$out")
        [[ $protocol == h2 ]] || NOTES+=("$name /$route: h2load negotiated '${protocol:-nothing}', not h2")
        ((status == 0)) || NOTES+=("$name /$route: h2load exited $status")
        rps=$(h2_rps "$out")
        p50=$(log_percentile "$log" 50)
        p99=$(log_percentile "$log" 99)
        requests=$(h2_requests "$out")
        non200=$(log_non200 "$log")
        case $requests in *" 0 failed, 0 errored, 0 timeout"*) ;; *) NOTES+=("$name /$route: requests: $requests") ;; esac
        ((non200 == 0)) || NOTES+=("$name /$route: $non200 responses were not 200")
        echo "   $route: $rps req/s, p50 $p50 ms, p99 $p99 ms (requests: $requests; load at start $load, at end $(cut -d' ' -f1-3 /proc/loadavg))"
        ROWS+=("| $name-hello | /$route | $rps | $p99 | $load |")
        DETAILS+=("| $name-hello | /$route | $p50 | $requests | $(cut -d' ' -f1-3 /proc/loadavg) |")
    done
    stop_server
done

{
    echo
    echo "run-h2.sh, $(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) cores ($(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)), $(uname -sr); commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- ../Sources 2>/dev/null || echo ' with uncommitted changes to Sources/')."
    echo "TLS 1.3 (throwaway P-256 certificate), ALPN h2; h2load $(h2load --version | awk '{ print $2 }'):"
    echo "taskset -c 1 h2load -c $CONNECTIONS -m $STREAMS -t 1 -D $DURATION --log-file FILE https://127.0.0.1:PORT/ROUTE,"
    echo "after ${WARMUP}s of warm-up; server on core 0, h2load on core 1. p50/p99 from the per-request times of --log-file."
    echo "Star sizes its event-loop group by the CPUs it may use (1 under taskset -c 0); Hummingbird and Vapor by the"
    echo "machine's $(nproc) cores, which then share core 0."
    echo
    echo "| server | route | req/s | p99 (ms) | load average at start |"
    echo "| --- | --- | ---: | ---: | --- |"
    printf '%s\n' "${ROWS[@]}"
    echo
    echo "| server | route | p50 (ms) | h2load requests | load average at end |"
    echo "| --- | --- | ---: | --- | --- |"
    printf '%s\n' "${DETAILS[@]}"
    if ((${#NOTES[@]} + ${#LOAD_NOTES[@]} > 0)); then
        echo
        echo "Problems seen:"
        for n in "${NOTES[@]}" "${LOAD_NOTES[@]}"; do echo "- $n"; done
    fi
} | tee "$RESULTS/h2.md"
