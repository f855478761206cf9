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
# Raw JSON from loadgen, server logs and the table (ws.md) go to Benchmarks/results/, and with
# gnuplot installed the table as a chart (ws.svg, chart.sh).
set -euo pipefail

cd "$(dirname "$0")"
# shellcheck source=ws-common.sh
. ./ws-common.sh  # BENCH_DIR, LOADGEN, start_server, stop_server, loadgen, alloc_per_message...
COMMAND_LINE="$0${*:+ $*}"
for var in SERVERS DURATION WARMUP IDLE_CONNECTIONS IDLE_HOLD CONNECT_CONCURRENCY ALLOC_SERVERS ALLOC_SHORT ALLOC_LONG QUIET_WAIT QUIET_MAX BASE_PORT STAR_ECHO; do
    if [[ -n ${!var+x} ]]; then COMMAND_LINE="$var='${!var}' $COMMAND_LINE"; fi
done

SERVERS=${SERVERS:-"star hb vapor nio uvicorn picows"}
DURATION=${DURATION:-10}                  # seconds counted per workload
WARMUP=${WARMUP:-2}                       # seconds of warm-up before each counted run
IDLE_CONNECTIONS=${IDLE_CONNECTIONS:-10000}
IDLE_HOLD=${IDLE_HOLD:-5}
# (d2) holds at least 8 s: Star's memory trimmer samples every 5 s, so one sample falls in the hold.
PRIMED_HOLD=$(awk -v h="$IDLE_HOLD" 'BEGIN { print (h > 8 ? h : 8) }')
PRIMED_SIZE=70000
CONNECT_CONCURRENCY=${CONNECT_CONCURRENCY:-32}
QUIET_WAIT=${QUIET_WAIT:-180}             # seconds to wait for other work to calm down per server
QUIET_MAX=${QUIET_MAX:-15}                # "calm": the machine busy < this % of one core
ALLOC_SHORT=${ALLOC_SHORT:-2}             # seconds of the two malloc-count runs (their
ALLOC_LONG=${ALLOC_LONG:-6}               # difference cancels per-connection costs)

need_tools run-ws.sh taskset timeout flock make cc jq
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

build_c_tools
if wants star; then build_star_echo run-ws.sh; fi
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

take_measure_lock run-ws.sh
raise_nofile run-ws.sh "$IDLE_CONNECTIONS"  # for the idle test

echo "== WebSocket suite: servers: $SERVERS; ${DURATION}s runs after ${WARMUP}s warm-up; load average $(cut -d' ' -f1-3 /proc/loadavg)"
ROWS=()
DETAILS=()
ALLOC_ROWS=()
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
    # (a8) the same with 8 in flight per connection: what a server does with messages that arrive
    # together (Star answers a batch in one write).
    a8="$prefix-a8-text32-inflight8.json"
    loadgen "$a8" echo --connections 64 --inflight 8 --size 32 --text --warmup "$WARMUP" --duration "$DURATION" --server-pid "$SERVER_PID"
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

    # (d2) The same after one 70 kB message per connection (--prime: each sends one binary
    # message and waits for its echo before the hold), on another fresh server: what a
    # connection keeps, or the allocator fails to give back, once its buffers have grown.
    start_server "$name" "$prefix-idle-primed-server.log"
    sleep 1
    d2="$prefix-d2-idle-primed.json"
    loadgen "$d2" idle --connections "$IDLE_CONNECTIONS" --prime --size "$PRIMED_SIZE" --hold "$PRIMED_HOLD" --server-pid "$SERVER_PID"
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
    for f in "$a" "$a8" "$b" "$c" "$d" "$d2"; do
        errs=$(field "$f" .errors.total)
        [[ $errs == 0 ]] || NOTES+=("$name: $(basename "$f" .json): errors $(jq -c '.errors // "no output"' "$f" 2>/dev/null || echo 'no output')")
    done
    a_mps=$(round "$(field "$a" .messages_per_s)")
    a_p99=$(round "$(field "$a" .latency_us.p99)")
    a_srv=$(round "$(field "$a" .server.cpu_percent)")
    a_lg=$(round "$(field "$a" .client_cpu.percent_of_core)")
    a8_mps=$(round "$(field "$a8" .messages_per_s)")
    b_mbs=$(round "$(field "$b" .mb_per_s)")
    c_hs=$(round "$(field "$c" .handshakes_per_s)")
    d_kib=$(round "$(field "$d" .server.kib_per_connection)" 1)
    d_open=$(field "$d" .open_at_end)
    [[ $d_open == "$IDLE_CONNECTIONS" ]] || NOTES+=("$name: only $d_open of $IDLE_CONNECTIONS idle connections were open at the end of the hold.")
    d2_kib=$(round "$(field "$d2" .server.kib_per_connection)" 1)
    d2_open=$(field "$d2" .open_at_end)
    d2_echoed=$(field "$d2" .prime.echoed)
    [[ $d2_open == "$IDLE_CONNECTIONS" ]] || NOTES+=("$name: (d2) only $d2_open of $IDLE_CONNECTIONS primed connections were open at the end of the hold.")
    [[ $d2_echoed == "$IDLE_CONNECTIONS" ]] || NOTES+=("$name: (d2) only $d2_echoed of $IDLE_CONNECTIONS connections got the echo of their $PRIMED_SIZE B message before the hold.")
    echo "   (a) $a_mps msg/s p99 ${a_p99} us (server ${a_srv}% / loadgen ${a_lg}%)  (a8) $a8_mps msg/s  (b) $b_mbs MB/s  (c) $c_hs handshakes/s  (d) $d_kib KiB/conn  (d2) $d2_kib KiB/conn"
    ROWS+=("| $label | $a_mps | $a_p99 | $a_srv | $a_lg | $a8_mps | $b_mbs | $c_hs | $d_kib | $d2_kib |")
    DETAILS+=("| $name | $(round "$(field "$a" .latency_us.p50)") | $(round "$(field "$b" .messages_per_s)") | $(round "$(field "$b" .latency_us.p99)") | $(round "$(field "$b" .server.cpu_percent)") / $(round "$(field "$b" .client_cpu.percent_of_core)") | $(round "$(field "$c" .cycle_latency_us.p99)") | $(round "$(field "$c" .server.cpu_percent)") / $(round "$(field "$c" .client_cpu.percent_of_core)") | $(field "$d" .server.rss_before_kib) → $(field "$d" .server.rss_after_kib) | $(field "$d2" .server.rss_before_kib) → $(field "$d2" .server.rss_after_kib) | ${other[0]} / ${other[1]} / ${other[2]} |")

    # (e) allocations per echoed message, Swift servers: LD_PRELOAD malloc counter, two runs of
    # different lengths; the difference in allocations over the difference in messages cancels
    # the per-connection costs (handshake, close).
    if [[ " $ALLOC_SERVERS " == *" $name "* ]]; then
        counts="$BENCH_DIR/$prefix-malloccount.txt"
        rm -f "$counts"
        start_server "$name" "$prefix-alloc-server.log" LD_PRELOAD="$MALLOCCOUNT" MALLOCCOUNT_OUT="$counts"
        alloc_cells=()
        for workload in text32 bin64k; do
            if [[ $workload == text32 ]]; then shape="--connections 64 --size 32 --text"; else shape="--connections 16 --size 65536"; fi
            alloc_per_message "$counts" "$prefix-e-$workload" "$shape" "--warmup 0 --duration $WARMUP" \
                "--warmup 0 --duration $ALLOC_SHORT" "--warmup 0 --duration $ALLOC_LONG"
            alloc_cells+=("$ALLOC_RESULT")
            echo "   (e) $workload: allocations per message (difference | whole long run | messages long | short): $ALLOC_RESULT"
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
    echo "| server | (a) msg/s | (a) p99 µs | (a) server CPU % | (a) loadgen CPU % | (a8) msg/s | (b) MB/s | (c) handshakes/s | (d) KiB/idle conn | (d2) KiB/idle conn after 70 kB |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    printf '%s\n' "${ROWS[@]}"
    echo
    echo "- (a) 32 B text messages, 64 connections, 1 in flight each: echoes/s, round-trip p99, and the CPU"
    echo "  each side used in the window (% of one core)."
    echo "- (a8) as (a) with 8 messages in flight on each connection."
    echo "- (b) 64 KiB binary messages, 16 connections, 1 in flight each: payload echoed, 10^6 B/s."
    echo "- (c) $CONNECT_CONCURRENCY concurrent loops of connect, upgrade, close(1000), wait for the server's close."
    echo "- (d) (VmRSS after − before) / connections, $IDLE_CONNECTIONS idle connections held ${IDLE_HOLD} s, fresh server."
    echo "- (d2) as (d), on another fresh server, but each connection first sends one $PRIMED_SIZE B binary message and"
    echo "  waits for its echo; then all are held idle ${PRIMED_HOLD} s (at least 8 s: Star's memory trimmer samples every 5 s)."
    echo
    echo "Details (server CPU % / loadgen CPU %, of one core). \"Other\" is the whole machine's user + system"
    echo "CPU during the run (/proc/stat, warm-up included) minus the server's and the loadgen's: anything"
    echo "else running."
    echo
    echo "| server | (a) p50 µs | (b) msg/s | (b) p99 µs | (b) CPU srv / lg | (c) cycle p99 µs | (c) CPU srv / lg | (d) RSS KiB before → after | (d2) RSS KiB before → after | other CPU % (a) / (b) / (c) |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
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
# The table as a chart; without gnuplot a one-line hint. Never fails the run.
./chart.sh --optional "$RESULTS/ws.md" "$RESULTS/ws.svg" || true
