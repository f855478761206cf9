# shellcheck shell=bash disable=SC2034  # (variables used by the scripts that source this file)
# Shared by run-ws.sh, alloc-budget.sh, soak.sh and run-scale.sh: build helpers, the servers'
# command lines, starting and stopping a server pinned to core 0, bounded loadgen runs on core 1,
# and the malloc count of allocations per echoed message. Source it from Benchmarks/ after
# `set -euo pipefail`:
#
#   cd "$(dirname "$0")" && . ./ws-common.sh
#
# It sets BENCH_DIR, ROOT_DIR, RESULTS, LOCK, LOADGEN, MALLOCCOUNT, NOTES=(), and traps EXIT (stop
# the server) and INT/TERM. Callers set STAR_ECHO (or call build_star_echo), and BIN when they run
# the Benchmarks package's own servers.

BENCH_DIR=$PWD
ROOT_DIR=$(cd .. && pwd)
RESULTS=results
LOCK=/tmp/swiftbuild.lock
LOADGEN=$BENCH_DIR/loadgen/loadgen
MALLOCCOUNT=$BENCH_DIR/malloccount/malloccount.so
NOTES=()
mkdir -p "$RESULTS"

need_tools() {  # script-name tool... : exit 1 if one is missing
    local script=$1 tool
    shift
    for tool in "$@"; do
        command -v "$tool" >/dev/null || { echo "$script: needs $tool" >&2; exit 1; }
    done
}

build_c_tools() {  # loadgen and malloccount.so (make: only when the source changed)
    make -s -C "$BENCH_DIR/loadgen"
    make -s -C "$BENCH_DIR/malloccount"
}

# Star's echo example in release, one Swift build at a time on this machine; STAR_ECHO, if set,
# is used as it is. Without a binary, exit with EXIT-STATUS (default 1).
build_star_echo() {  # script-name [exit-status]
    if [[ -z ${STAR_ECHO:-} ]]; then
        (cd "$ROOT_DIR/Examples" && timeout 3600 flock "$LOCK" swift build -c release --product echo)
        STAR_ECHO=$ROOT_DIR/Examples/.build/release/echo
    fi
    [[ -x $STAR_ECHO ]] || { echo "$1: no Star echo binary at $STAR_ECHO" >&2; exit "${2:-1}"; }
}

# Hold the build lock (fd 9) while measuring, so no Swift build competes for the cores.
take_measure_lock() {  # script-name
    exec 9>"$LOCK"
    echo "waiting for $LOCK to measure..."
    flock -w 3600 9 || { echo "$1: could not take $LOCK within an hour" >&2; exit 1; }
}

# Enough descriptors for N connections (loadgen raises its own limit; the server inherits ours).
raise_nofile() {  # script-name connections
    local need=$(($2 + 1024))
    if (($(ulimit -n) < need)); then
        ulimit -n "$need" 2>/dev/null || ulimit -n "$(ulimit -Hn)"
    fi
    if (($(ulimit -n) < $2 + 64)); then
        echo "$1: ulimit -n is $(ulimit -n) (hard $(ulimit -Hn)), too low for $2 connections" >&2
        exit 1
    fi
}

server_command() {  # name port -> the server's command line (words)
    case $1 in
        fanout) echo "$STAR_FANOUT --port $2 --no-access-log --log-level warning --ws-per-message-deflate false --ws-ping-interval ${PING_INTERVAL:-20} --interval ${INTERVAL:-1}" ;;
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

# Before a server: wait (at most QUIET_WAIT s, 180) until nothing else keeps the machine busy
# (QUIET_MAX, 15% of one core).
wait_quiet() {  # name
    local waited=0 s0 s1 busy
    while :; do
        s0=$(cpu_sample); sleep 1; s1=$(cpu_sample)
        busy=$(busy_percent "$s0" "$s1")
        if [[ $busy == n/a ]] || ((busy < ${QUIET_MAX:-15})); then return 0; fi
        if ((waited >= ${QUIET_WAIT:-180})); then
            NOTES+=("$1 started while the machine was busy ($busy% of a core) after waiting ${waited} s.")
            return 0
        fi
        ((waited % 15 == 0)) && echo "   machine busy ($busy% of one core): waiting for it to calm down (≤ ${QUIET_WAIT:-180} s)"
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

# One bounded loadgen run on core 1, against ws://127.0.0.1:PORT$LOADGEN_PATH (/echo by default).
loadgen() {  # output-json args... : the JSON goes to $1
    local out=$1
    shift
    local status=0 s0 s1
    if [[ -z $SERVER_PID ]]; then
        echo '{"errors":{"total":"server not running"}}' >"$out"
        return 0
    fi
    s0=$(cpu_sample)
    timeout 300 taskset -c 1 "$LOADGEN" "$@" --url "ws://127.0.0.1:$PORT${LOADGEN_PATH:-/echo}" --json >"$out" 2>"${out%.json}.txt" || status=$?
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

# Allocations per echoed message of one workload, on a server started with
# LD_PRELOAD=malloccount.so MALLOCCOUNT_OUT=COUNTS: a warm-up run, then a short and a long run,
# reading the allocation count before and after each. (allocations in the long run − in the short
# one) / (messages in the long run − in the short one) cancels what both runs pay alike
# (handshakes, closes). Each ARGS is one string of loadgen words.
#
#   alloc_per_message COUNTS OUT-PREFIX "WORKLOAD ARGS" "WARM-UP ARGS" "SHORT ARGS" "LONG ARGS"
#
# Sets ALLOC_RESULT to "per-message|whole long run per message|messages long|messages short", or
# "n/a" if a count or a run failed. The runs' JSON goes to OUT-PREFIX-{warm,short,long}.json.
alloc_per_message() {
    local counts=$1 out=$2 m0 m1 m2 n1 n2
    local -a args_wl args_warm args_short args_long
    read -ra args_wl <<<"$3"
    read -ra args_warm <<<"$4"
    read -ra args_short <<<"$5"
    read -ra args_long <<<"$6"
    loadgen "$out-warm.json" echo "${args_wl[@]}" "${args_warm[@]}"
    m0=$(malloc_total "$counts" "$SERVER_PID")
    loadgen "$out-short.json" echo "${args_wl[@]}" "${args_short[@]}"
    m1=$(malloc_total "$counts" "$SERVER_PID")
    loadgen "$out-long.json" echo "${args_wl[@]}" "${args_long[@]}"
    m2=$(malloc_total "$counts" "$SERVER_PID")
    n1=$(field "$out-short.json" .messages)
    n2=$(field "$out-long.json" .messages)
    ALLOC_RESULT=$(awk -v m0="$m0" -v m1="$m1" -v m2="$m2" -v n1="$n1" -v n2="$n2" 'BEGIN {
        if (m0 == "n/a" || m1 == "n/a" || m2 == "n/a" || m0 == "" || m1 == "" || m2 == "" ||
            n1 == "n/a" || n2 == "n/a" || n2 - n1 <= 0 || n1 <= 0) { print "n/a"; exit }
        printf "%.2f|%.2f|%d|%d", ((m2 - m1) - (m1 - m0)) / (n2 - n1), (m2 - m1) / n2, n2, n1 }')
}
