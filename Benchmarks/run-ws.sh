#!/usr/bin/env bash
# Side-by-side WebSocket echo suite: Star, Hummingbird, Vapor, raw SwiftNIO, Uvicorn + Starlette
# and picows, each under the same loadgen workloads.
#
#   ./run-ws.sh                            # build everything (release) and run all six servers
#   SERVERS="star hb" ./run-ws.sh          # a subset: star hb vapor nio uvicorn picows
#   DURATION=10 WARMUP=2 IDLE_CONNECTIONS=10000 ./run-ws.sh
#   ALLOC_SERVERS="star" ./run-ws.sh       # which servers get the malloc count (default: the
#                                          # Swift ones that run; "" skips it)
#   STAR_ECHO=/path/to/echo ./run-ws.sh    # use this Star echo binary instead of building one
#   QUIET_WAIT=180 QUIET_MAX=15 BASE_PORT=27100 ./run-ws.sh
#
# Every server runs alone, pinned to core 0 (taskset -c 0); loadgen runs pinned to core 1,
# against 127.0.0.1 only. Every phase is bounded in time (loadgen's own limits plus timeout).
# Raw JSON from loadgen, server logs and the table (ws.md) go to Benchmarks/results/.
set -euo pipefail

cd "$(dirname "$0")"
BENCH_DIR=$PWD
ROOT_DIR=$(cd .. && pwd)
COMMAND_LINE="$0${*:+ $*}"
for var in SERVERS DURATION WARMUP IDLE_CONNECTIONS IDLE_HOLD CONNECT_CONCURRENCY ALLOC_SERVERS ALLOC_SHORT ALLOC_LONG QUIET_WAIT QUIET_MAX BASE_PORT STAR_ECHO; do
    if [[ -n ${!var+x} ]]; then COMMAND_LINE="$var='${!var}' $COMMAND_LINE"; fi
done

SERVERS=${SERVERS:-"star hb vapor nio uvicorn picows"}
DURATION=${DURATION:-10}                  # seconds counted per workload
WARMUP=${WARMUP:-2}                       # seconds of warm-up before each counted run
IDLE_CONNECTIONS=${IDLE_CONNECTIONS:-10000}
IDLE_HOLD=${IDLE_HOLD:-5}
CONNECT_CONCURRENCY=${CONNECT_CONCURRENCY:-32}
QUIET_WAIT=${QUIET_WAIT:-180}             # seconds to wait for other work to calm down per server
QUIET_MAX=${QUIET_MAX:-15}                # "calm": the machine busy < this % of one core
ALLOC_SHORT=${ALLOC_SHORT:-2}             # seconds of the two malloc-count runs (their
ALLOC_LONG=${ALLOC_LONG:-6}               # difference cancels per-connection costs)
RESULTS=results
LOCK=/tmp/swiftbuild.lock
mkdir -p "$RESULTS"

for tool in taskset timeout flock make cc jq; do
    command -v "$tool" >/dev/null || { echo "run-ws.sh: needs $tool" >&2; exit 1; }
done
for name in $SERVERS; do
    case $name in star | hb | vapor | nio | uvicorn | picows) ;;
        *) echo "run-ws.sh: unknown server '$name' (star hb vapor nio uvicorn picows)" >&2; exit 2 ;;
    esac
done
wants() { [[ " $SERVERS " == *" $1 "* ]]; }
if [[ -z ${ALLOC_SERVERS+x} ]]; then
    ALLOC_SERVERS=
    for name in star hb vapor nio; do
        if wants "$name"; then ALLOC_SERVERS+="$name "; fi
    done
fi

# ---- build (release), one Swift build at a time on this machine

make -s -C loadgen
make -s -C malloccount
LOADGEN=$BENCH_DIR/loadgen/loadgen
MALLOCCOUNT=$BENCH_DIR/malloccount/malloccount.so

if wants star; then
    if [[ -z ${STAR_ECHO:-} ]]; then
        (cd "$ROOT_DIR" && timeout 3600 flock "$LOCK" swift build -c release --product echo)
        STAR_ECHO=$ROOT_DIR/.build/release/echo
    fi
    [[ -x $STAR_ECHO ]] || { echo "run-ws.sh: no Star echo binary at $STAR_ECHO" >&2; exit 1; }
fi
if wants hb || wants vapor || wants nio; then
    # One product per build call: swift build takes a single --product.
    for product in hb-ws-echo vapor-ws-echo nio-ws-echo; do
        if wants "${product%%-*}"; then
            timeout 3600 flock "$LOCK" swift build -c release --product "$product"
        fi
    done
fi
BIN=$(timeout 600 flock "$LOCK" swift build -c release --show-bin-path)
if wants uvicorn || wants picows; then
    timeout 900 python/setup.sh
fi

# ---- hold the build lock while measuring, so no Swift build competes for the cores

exec 9>"$LOCK"
echo "waiting for $LOCK to measure..."
flock -w 3600 9 || { echo "run-ws.sh: could not take $LOCK within an hour" >&2; exit 1; }

# Enough descriptors for the idle test (loadgen raises its own limit; the server inherits ours).
need_fds=$((IDLE_CONNECTIONS + 1024))
if (($(ulimit -n) < need_fds)); then
    ulimit -n "$need_fds" 2>/dev/null || ulimit -n "$(ulimit -Hn)"
fi
if (($(ulimit -n) < IDLE_CONNECTIONS + 64)); then
    echo "run-ws.sh: ulimit -n is $(ulimit -n) (hard $(ulimit -Hn)), too low for $IDLE_CONNECTIONS connections" >&2
    exit 1
fi

server_command() {  # name port -> the server's command line (words)
    case $1 in
        star) echo "$STAR_ECHO --port $2 --ws-max-size 16777216 --no-access-log --log-level warning --ws-per-message-deflate false" ;;
        hb) echo "$BIN/hb-ws-echo --port $2" ;;
        vapor) echo "$BIN/vapor-ws-echo --port $2" ;;
        nio) echo "$BIN/nio-ws-echo --port $2" ;;
        uvicorn) echo "$BENCH_DIR/.venv/bin/uvicorn starlette_echo:app --app-dir $BENCH_DIR/python --host 127.0.0.1 --port $2 --ws websockets --ws-max-size 16777216 --ws-per-message-deflate false --loop uvloop --http httptools --no-access-log --log-level warning" ;;
        picows) echo "$BENCH_DIR/.venv/bin/python $BENCH_DIR/python/picows_echo.py --port $2" ;;
    esac
}

SERVER_PID=
stop_server() {
    if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$SERVER_PID" 2>/dev/null || true
    fi
    [[ -n $SERVER_PID ]] && wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=
}
trap stop_server EXIT
trap 'exit 130' INT TERM

PORT=${BASE_PORT:-27100}
start_server() {  # name log [env...] -> SERVER_PID, PORT; waits until it accepts TCP
    local name=$1 log=$2
    shift 2
    # A port nobody listens on (other benchmarks may run on this machine).
    for _ in $(seq 100); do
        PORT=$((PORT + 1))
        (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null || break
    done
    # shellcheck disable=SC2046
    env "$@" taskset -c 0 $(server_command "$name" "$PORT") >"$log" 2>&1 &
    SERVER_PID=$!
    CURRENT=$name
    CURRENT_LOG=$log
    for _ in $(seq 300); do
        kill -0 "$SERVER_PID" 2>/dev/null || break
        if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "$name did not listen on port $PORT within 30 s; its log:" >&2
    cat "$log" >&2
    NOTES+=("$name did not start (port $PORT); log: $(tail -c 400 "$log" | tr '\n' ' ')")
    stop_server
    return 0  # the phases of this server then report "server not running"
}

# Machine-wide CPU from /proc/stat: "busy total" jiffies, all cores. Busy is user + nice +
# system: irq and softirq time (much of it the loopback traffic of the run itself, charged to
# no process) and steal are left out.
cpu_sample() { awk '/^cpu / { busy = $2 + $3 + $4; print busy, busy + $5 + $6 + $7 + $8 + $9; exit }' /proc/stat; }
busy_percent() {  # "busy0 total0" "busy1 total1" -> the machine's busy time as % of one core
    awk -v a="$1" -v b="$2" -v n="$(nproc)" 'BEGIN { split(a, x, " "); split(b, y, " ")
        if (y[2] > x[2]) printf "%.0f", 100 * n * (y[1] - x[1]) / (y[2] - x[2]); else print "n/a" }'
}

# Before each server: wait (bounded) until nothing else keeps the machine busy.
wait_quiet() {
    local waited=0 s0 s1 busy
    while :; do
        s0=$(cpu_sample); sleep 1; s1=$(cpu_sample)
        busy=$(busy_percent "$s0" "$s1")
        if [[ $busy == n/a ]] || ((busy < QUIET_MAX)); then return 0; fi
        if ((waited >= QUIET_WAIT)); then
            NOTES+=("$1 started while the machine was busy ($busy% of a core) after waiting ${waited} s.")
            return 0
        fi
        ((waited % 15 == 0)) && echo "   machine busy ($busy% of one core): waiting for it to calm down (≤ ${QUIET_WAIT} s)"
        waited=$((waited + 1))
    done
}

# If the server died, say so once (exit status and the end of its log).
check_alive() {  # phase
    [[ -n $SERVER_PID ]] || return 0
    kill -0 "$SERVER_PID" 2>/dev/null && return 0
    local status=0
    wait "$SERVER_PID" 2>/dev/null || status=$?
    NOTES+=("$CURRENT: the server exited (status $status) during $1; log: $(tail -c 600 "$CURRENT_LOG" | tr '\n' ' ')")
    echo "   the server exited (status $status) during $1" >&2
    SERVER_PID=
}

loadgen() {  # output-json args... : one bounded loadgen run on core 1; the JSON goes to $1
    local out=$1
    shift
    local status=0 s0 s1
    if [[ -z $SERVER_PID ]]; then
        echo '{"errors":{"total":"server not running"}}' >"$out"
        return 0
    fi
    s0=$(cpu_sample)
    timeout 300 taskset -c 1 "$LOADGEN" "$@" --url "ws://127.0.0.1:$PORT/echo" --json >"$out" 2>"${out%.json}.txt" || status=$?
    s1=$(cpu_sample)
    # The whole machine's CPU during the run; minus server and loadgen, that is other work.
    busy_percent "$s0" "$s1" >"${out%.json}.busy"
    check_alive "$(basename "$out" .json)"
    if ((status != 0)); then
        echo "   loadgen $* exited $status: $(jq -c '.errors // empty' "$out" 2>/dev/null || true)" >&2
    fi
    return 0
}
field() { jq -r "$2 // \"n/a\"" "$1" 2>/dev/null || echo n/a; }  # file jq-path
round() { awk -v v="$1" -v d="${2:-0}" 'BEGIN { if (v == "n/a" || v == "") print "n/a"; else printf "%.*f", d, v }'; }

malloc_total() {  # file pid -> waits for a fresh SIGUSR2 dump and prints its total
    local file=$1 pid=$2 before seq
    before=$(sed -n 's/^seq=\([0-9]*\).*/\1/p' "$file" 2>/dev/null || true)
    kill -USR2 "$pid" 2>/dev/null || { echo "n/a"; return 0; }
    for _ in $(seq 100); do
        seq=$(sed -n 's/^seq=\([0-9]*\).*/\1/p' "$file" 2>/dev/null || true)
        if [[ -n $seq && $seq != "${before:-}" ]]; then
            sed -n 's/.* total=\([0-9]*\).*/\1/p' "$file"
            return 0
        fi
        sleep 0.05
    done
    echo "n/a"
}

echo "== WebSocket suite: servers: $SERVERS; ${DURATION}s runs after ${WARMUP}s warm-up; load average $(cut -d' ' -f1-3 /proc/loadavg)"
ROWS=()
DETAILS=()
ALLOC_ROWS=()
NOTES=()
for name in $SERVERS; do
    echo "== $name: $(server_command "$name" PORT) (core 0)"
    prefix="$RESULTS/ws-$name"
    wait_quiet "$name"

    # -- throughput and handshakes, on one server process
    start_server "$name" "$prefix-server.log"
    # Sanity: text comes back as text and binary as binary, every byte checked.
    loadgen "$prefix-check-text.json" echo --connections 2 --text --size 100 --verify-all --warmup 0 --duration 1
    loadgen "$prefix-check-binary.json" echo --connections 2 --size 70000 --verify-all --warmup 0 --duration 1
    label=$name
    for check in text binary; do
        errs=$(field "$prefix-check-$check.json" .errors.total)
        msgs=$(field "$prefix-check-$check.json" .messages)
        if [[ $errs != 0 || $msgs == 0 || $msgs == n/a ]]; then
            NOTES+=("$name: the $check echo check failed (messages $msgs, errors $errs; see $prefix-check-$check.txt): its figures are not valid.")
            echo "   $check check FAILED (messages $msgs, errors $errs)" >&2
            label="$name (echo check failed)"
        fi
    done

    # (a) 32 B text, 64 connections, 1 in flight: message rate, p99, both CPUs.
    a="$prefix-a-text32.json"
    loadgen "$a" echo --connections 64 --inflight 1 --size 32 --text --warmup "$WARMUP" --duration "$DURATION" --server-pid "$SERVER_PID"
    # (b) 64 KiB binary, 16 connections, 1 in flight: MB/s.
    b="$prefix-b-bin64k.json"
    loadgen "$b" echo --connections 16 --inflight 1 --size 65536 --warmup "$WARMUP" --duration "$DURATION" --server-pid "$SERVER_PID"
    # (c) handshakes/s: 32 concurrent connect-upgrade-close cycles.
    c="$prefix-c-connect.json"
    loadgen "$c" connect --concurrency "$CONNECT_CONCURRENCY" --warmup "$WARMUP" --duration "$DURATION" --server-pid "$SERVER_PID"
    stop_server

    # (d) RSS per idle connection, on a freshly started server.
    start_server "$name" "$prefix-idle-server.log"
    sleep 1  # let start-up allocations settle before the "before" RSS reading
    d="$prefix-d-idle.json"
    loadgen "$d" idle --connections "$IDLE_CONNECTIONS" --hold "$IDLE_HOLD" --server-pid "$SERVER_PID"
    stop_server

    other=()
    for f in "$a" "$b" "$c"; do
        # Other work on the machine during the run: all CPU minus server minus loadgen.
        o=$(awk -v m="$(cat "${f%.json}.busy" 2>/dev/null)" -v s="$(field "$f" .server.cpu_percent)" \
                -v c="$(field "$f" .client_cpu.percent_of_core)" \
                'BEGIN { if (m == "" || m == "n/a" || s == "n/a" || c == "n/a") print "n/a"; else { o = m - s - c; printf "%.0f", o < 0 ? 0 : o } }')
        other+=("$o")
        if [[ $o != n/a ]] && ((o > 20)); then
            NOTES+=("$name: $(basename "$f" .json): other processes used about $o% of a core during the run; the figures may be low.")
        fi
    done
    for f in "$a" "$b" "$c" "$d"; do
        errs=$(field "$f" .errors.total)
        [[ $errs == 0 ]] || NOTES+=("$name: $(basename "$f" .json): errors $(jq -c '.errors // "no output"' "$f" 2>/dev/null || echo 'no output')")
    done
    a_mps=$(round "$(field "$a" .messages_per_s)")
    a_p99=$(round "$(field "$a" .latency_us.p99)")
    a_srv=$(round "$(field "$a" .server.cpu_percent)")
    a_lg=$(round "$(field "$a" .client_cpu.percent_of_core)")
    b_mbs=$(round "$(field "$b" .mb_per_s)")
    c_hs=$(round "$(field "$c" .handshakes_per_s)")
    d_kib=$(round "$(field "$d" .server.kib_per_connection)" 1)
    d_open=$(field "$d" .open_at_end)
    [[ $d_open == "$IDLE_CONNECTIONS" ]] || NOTES+=("$name: only $d_open of $IDLE_CONNECTIONS idle connections were open at the end of the hold.")
    echo "   (a) $a_mps msg/s p99 ${a_p99} us (server ${a_srv}% / loadgen ${a_lg}%)  (b) $b_mbs MB/s  (c) $c_hs handshakes/s  (d) $d_kib KiB/conn"
    ROWS+=("| $label | $a_mps | $a_p99 | $a_srv | $a_lg | $b_mbs | $c_hs | $d_kib |")
    DETAILS+=("| $name | $(round "$(field "$a" .latency_us.p50)") | $(round "$(field "$b" .messages_per_s)") | $(round "$(field "$b" .latency_us.p99)") | $(round "$(field "$b" .server.cpu_percent)") / $(round "$(field "$b" .client_cpu.percent_of_core)") | $(round "$(field "$c" .cycle_latency_us.p99)") | $(round "$(field "$c" .server.cpu_percent)") / $(round "$(field "$c" .client_cpu.percent_of_core)") | $(field "$d" .server.rss_before_kib) → $(field "$d" .server.rss_after_kib) | ${other[0]} / ${other[1]} / ${other[2]} |")

    # (e) allocations per echoed message, Swift servers: LD_PRELOAD malloc counter, two runs of
    # different lengths; the difference in allocations over the difference in messages cancels
    # the per-connection costs (handshake, close).
    if [[ " $ALLOC_SERVERS " == *" $name "* ]]; then
        counts="$BENCH_DIR/$prefix-malloccount.txt"
        rm -f "$counts"
        start_server "$name" "$prefix-alloc-server.log" LD_PRELOAD="$MALLOCCOUNT" MALLOCCOUNT_OUT="$counts"
        alloc_cells=()
        for workload in text32 bin64k; do
            if [[ $workload == text32 ]]; then wl=(--connections 64 --size 32 --text); else wl=(--connections 16 --size 65536); fi
            loadgen "$prefix-e-$workload-warm.json" echo "${wl[@]}" --warmup 0 --duration "$WARMUP"
            m0=$(malloc_total "$counts" "$SERVER_PID")
            loadgen "$prefix-e-$workload-short.json" echo "${wl[@]}" --warmup 0 --duration "$ALLOC_SHORT"
            m1=$(malloc_total "$counts" "$SERVER_PID")
            loadgen "$prefix-e-$workload-long.json" echo "${wl[@]}" --warmup 0 --duration "$ALLOC_LONG"
            m2=$(malloc_total "$counts" "$SERVER_PID")
            n1=$(field "$prefix-e-$workload-short.json" .messages)
            n2=$(field "$prefix-e-$workload-long.json" .messages)
            per=$(awk -v m0="$m0" -v m1="$m1" -v m2="$m2" -v n1="$n1" -v n2="$n2" 'BEGIN {
                if (m0 == "n/a" || m1 == "n/a" || m2 == "n/a" || n2 - n1 <= 0 || n1 <= 0) { print "n/a"; exit }
                printf "%.2f|%.2f|%d|%d", ((m2 - m1) - (m1 - m0)) / (n2 - n1), (m2 - m1) / n2, n2, n1 }')
            alloc_cells+=("$per")
            echo "   (e) $workload: allocations per message (difference | whole long run | messages long | short): $per"
        done
        stop_server
        ALLOC_ROWS+=("| $name | ${alloc_cells[0]%%|*} | $(cut -d'|' -f2 <<<"${alloc_cells[0]}") | $(cut -d'|' -f3 <<<"${alloc_cells[0]}") | ${alloc_cells[1]%%|*} | $(cut -d'|' -f2 <<<"${alloc_cells[1]}") | $(cut -d'|' -f3 <<<"${alloc_cells[1]}") |")
    fi
done

{
    echo "# WebSocket echo suite"
    echo
    echo "- Date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "- Machine: $(nproc) cores, $(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(uname -sr)"
    echo "- Command: \`$COMMAND_LINE\` (in Benchmarks/)"
    echo "- Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg) (anything else running skews these numbers)"
    echo "- Server on core 0 (\`taskset -c 0\`), loadgen on core 1, 127.0.0.1; every run ${DURATION} s after ${WARMUP} s warm-up."
    echo
    echo "| server | (a) msg/s | (a) p99 µs | (a) server CPU % | (a) loadgen CPU % | (b) MB/s | (c) handshakes/s | (d) KiB/idle conn |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    printf '%s\n' "${ROWS[@]}"
    echo
    echo "- (a) 32 B text messages, 64 connections, 1 in flight each: echoes/s, round-trip p99, and the CPU"
    echo "  each side used in the window (% of one core)."
    echo "- (b) 64 KiB binary messages, 16 connections, 1 in flight each: payload echoed, 10^6 B/s."
    echo "- (c) $CONNECT_CONCURRENCY concurrent loops of connect, upgrade, close(1000), wait for the server's close."
    echo "- (d) (VmRSS after − before) / connections, $IDLE_CONNECTIONS idle connections held ${IDLE_HOLD} s, fresh server."
    echo
    echo "Details (server CPU % / loadgen CPU %, of one core). \"Other\" is the whole machine's user + system"
    echo "CPU during the run (/proc/stat, warm-up included) minus the server's and the loadgen's: anything"
    echo "else running."
    echo
    echo "| server | (a) p50 µs | (b) msg/s | (b) p99 µs | (b) CPU srv / lg | (c) cycle p99 µs | (c) CPU srv / lg | (d) RSS KiB before → after | other CPU % (a) / (b) / (c) |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    printf '%s\n' "${DETAILS[@]}"
    if ((${#ALLOC_ROWS[@]})); then
        echo
        echo "(e) Allocation calls (malloc, calloc, realloc, posix_memalign, aligned_alloc, memalign) per echoed"
        echo "message, counted in the server by malloccount.so (LD_PRELOAD). After a ${WARMUP} s warm-up, two runs"
        echo "of ${ALLOC_SHORT} s and ${ALLOC_LONG} s: allocs/msg = (allocations in the long run − in the short one) /"
        echo "(messages in the long run − in the short one), which cancels handshakes and closes; \"whole run\""
        echo "divides the long run's allocations by its messages."
        echo
        echo "| server | 32 B text ×64: allocs/msg | whole run | messages | 64 KiB binary ×16: allocs/msg | whole run | messages |"
        echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
        printf '%s\n' "${ALLOC_ROWS[@]}"
    fi
    if ((${#NOTES[@]})); then
        echo
        echo "Problems seen:"
        echo
        for note in "${NOTES[@]}"; do echo "- $note"; done
    fi
} | tee "$RESULTS/ws.md"
