#!/usr/bin/env bash
# Soak: Star's release echo under CONNECTIONS WebSocket connections for DURATION seconds with churn,
# then every connection held idle, then all closed; checks errors, lost echoes, descriptor leaks,
# memory, and RSS per idle connection against the goals below. Writes results/soak.md.
#
#   ./soak.sh                                   # 10,000 connections, 5 minutes (about 6 minutes in all)
#   DURATION=30 CONNECTIONS=1000 ./soak.sh      # a short one
#   STAR_ECHO=/path/to/echo ./soak.sh           # this binary (otherwise built in release under the lock)
#   RATE=1000 CLOSE_RATE=50 KILL_RATE=24 MAX_SIZE=70000 HOLD=10 SETTLE=5 ./soak.sh
#
# The server runs pinned to core 0 (taskset -c 0), loadgen soak pinned to core 1, 127.0.0.1 only.
# loadgen keeps CONNECTIONS open; every second it closes CLOSE_RATE of them cleanly (it waits for
# their echoes, sends close 1000 and waits for the server's close) and drops KILL_RATE without a
# close frame (RST; FIN; a message then RST; a message then FIN; half a frame then FIN; RST then a
# reconnect that resets mid-upgrade), and each slot reconnects. Meanwhile RATE messages a second
# (text or binary, 0 to MAX_SIZE bytes) go to random open connections; every byte of every echo is
# checked. After DURATION it waits for the echoes and reconnects, holds all CONNECTIONS idle for
# HOLD s, and closes them all cleanly. The start reading comes after a 3 s warm-up of the same mix on
# 100 connections and a malloc_trim (WARMUP=0: before any traffic; both are reported). The server's
# RSS and open descriptors are read from /proc
# every second (results/soak-timeline.csv), and SETTLE s after the last close for the end figures.
#
# Exit status: 0 if every goal passed, 1 if one failed, 2 if the soak could not run.
set -euo pipefail

cd "$(dirname "$0")"
# shellcheck source=ws-common.sh
. ./ws-common.sh
COMMAND_LINE="$0${*:+ $*}"
for var in CONNECTIONS DURATION RATE CLOSE_RATE KILL_RATE MAX_SIZE HOLD SETTLE LEAK_WAIT DIAGNOSE WARMUP WARMUP_CONNECTIONS STAR_ECHO QUIET_WAIT QUIET_MAX BASE_PORT; do
    if [[ -n ${!var+x} ]]; then COMMAND_LINE="$var='${!var}' $COMMAND_LINE"; fi
done

CONNECTIONS=${CONNECTIONS:-10000}
DURATION=${DURATION:-300}   # seconds of churn and echoes (loadgen allows up to 3600)
RATE=${RATE:-1000}          # echo messages per second, over all connections
CLOSE_RATE=${CLOSE_RATE:-50}  # clean closes per second
KILL_RATE=${KILL_RATE:-24}    # abrupt drops per second (six kinds in turn)
MAX_SIZE=${MAX_SIZE:-70000}   # largest message; 60% are 0-125 B, 30% 126-4096 B, 10% 4097-MAX_SIZE
HOLD=${HOLD:-10}            # seconds all connections stay idle at the end, before closing
SETTLE=${SETTLE:-5}         # seconds after the last close before the end readings
LEAK_WAIT=${LEAK_WAIT:-30}  # if the fds are still above the start then, watch this much longer
DIAGNOSE=${DIAGNOSE:-1}     # 1: after the end readings, ask glibc (via gdb) what the heap holds
WARMUP=${WARMUP:-1}         # 1: take the start reading after a short warm-up (see below; needs gdb)
WARMUP_CONNECTIONS=${WARMUP_CONNECTIONS:-100}

# ---- goals
GOAL_KIB_PER_IDLE=16        # KiB of server RSS per idle connection, at most
GOAL_RSS_RETURN_PCT=10      # RSS at the end at most this % above the start

need_tools soak.sh taskset timeout flock make cc jq
for n in CONNECTIONS DURATION HOLD SETTLE LEAK_WAIT; do
    [[ ${!n} =~ ^[0-9]{1,5}$ ]] || { echo "soak.sh: $n must be a whole number" >&2; exit 2; }
done
((CONNECTIONS >= 1 && CONNECTIONS <= 19984)) || { echo "soak.sh: CONNECTIONS must be 1-19984" >&2; exit 2; }
((DURATION >= 1 && DURATION <= 3600)) || { echo "soak.sh: DURATION must be 1-3600" >&2; exit 2; }
((HOLD <= 120 && SETTLE <= 600 && LEAK_WAIT <= 600)) || { echo "soak.sh: HOLD ≤ 120, SETTLE and LEAK_WAIT ≤ 600" >&2; exit 2; }

build_c_tools
build_star_echo soak.sh 2
take_measure_lock soak.sh
raise_nofile soak.sh "$CONNECTIONS"
wait_quiet star

prefix=$RESULTS/soak
timeline=$prefix-timeline.csv
rm -f "$timeline" "$prefix.json" "$prefix.txt"

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || true; }
fd_count() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }
sample() {  # phase: one timeline line from here (loadgen writes its own while it runs)
    local rss fds
    rss=$(rss_kib "$SERVER_PID")
    fds=$(fd_count "$SERVER_PID")
    [[ -s $timeline ]] || echo "t_unix,phase,rss_kib,fds,open,handshaking,sent,echoed,lost,errors" >"$timeline"
    echo "$(date +%s.%3N),$1,${rss:-},${fds:-},,,,,," >>"$timeline"
    LAST_RSS=${rss:-n/a}
    LAST_FDS=${fds:-n/a}
}

# glibc's own account of the heap (malloc_stats, via gdb; it prints to the server's stderr, i.e.
# its log): "system-bytes in-use-bytes" over all arenas, or nothing. Stops the server for a moment.
heap_stats() {
    [[ $DIAGNOSE == 1 && -n $SERVER_PID ]] && command -v gdb >/dev/null || return 0
    local before
    before=$(wc -l <"$prefix-server.log")
    timeout 60 gdb -p "$SERVER_PID" -batch -iex 'set complaints 0' -ex 'call (void)malloc_stats()' >>"$prefix-gdb.txt" 2>&1 || true
    sleep 0.2
    tail -n +"$((before + 1))" "$prefix-server.log" | awk '/^Total \(incl. mmap\):/ { t = 1; next }
        t && /system bytes/ { sys = $NF } t && /in use bytes/ { use = $NF; t = 0 } END { if (use != "") print sys, use }'
}
rm -f "$prefix-gdb.txt"

echo "== soak: $CONNECTIONS connections, ${DURATION} s, $RATE echoes/s, $CLOSE_RATE clean closes/s, $KILL_RATE drops/s; load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "   server: $(server_command star PORT) (core 0)"
start_server star "$prefix-server.log"
[[ -n $SERVER_PID ]] || { echo "soak.sh: the server did not start; see $prefix-server.log" >&2; exit 2; }
sleep 1  # let start-up allocations settle before the start reading
sample cold
RSS_COLD=$LAST_RSS
# Warm-up: the same mix on WARMUP_CONNECTIONS connections for a few seconds, so that the start
# reading counts what serving anything at all costs once — code pages faulted in (0.8 MB of the
# binary and the Swift libraries), the runtime's metadata caches, the loops' first arenas — and the
# goal measures what the 10,000 connections leave behind. Then glibc gives back what it freed (as
# MemoryTrimmer does after the soak), so that the start is not padded with free memory.
WARM_NOTE="no warm-up (WARMUP=0): the start is the cold reading"
if [[ $WARMUP == 1 ]]; then
    if command -v gdb >/dev/null; then
        timeout 60 taskset -c 1 "$LOADGEN" soak --url "ws://127.0.0.1:$PORT/echo" --connections "$WARMUP_CONNECTIONS" \
            --duration 3 --rate 200 --close-rate 10 --kill-rate 6 --size "$MAX_SIZE" --hold 1 --json >/dev/null 2>&1 ||
            { echo "soak.sh: the warm-up failed" >&2; exit 2; }
        sleep 1
        timeout 60 gdb -p "$SERVER_PID" -batch -iex 'set complaints 0' -ex 'call (int)malloc_trim(0)' >>"$prefix-gdb.txt" 2>&1 || true
        sleep 1
        WARM_NOTE="warm-up: $WARMUP_CONNECTIONS connections, 3 s of the same mix, then malloc_trim(0) (gdb)"
    else
        WARM_NOTE="no warm-up (gdb missing, needed to trim after it): the start is the cold reading"
    fi
fi
sample start
RSS_START=$LAST_RSS
FDS_START=$LAST_FDS
echo "   start: VmRSS $RSS_START KiB, $FDS_START fds (cold: $RSS_COLD KiB; $WARM_NOTE)"
HEAP_START=$(heap_stats)

# ---- the soak itself (loadgen bounds every phase; timeout is the backstop)
limit=$((DURATION + HOLD + 2 * CONNECTIONS / 500 + 240))
s0=$(cpu_sample)
LG_PID=
trap '[[ -n $LG_PID ]] && kill "$LG_PID" 2>/dev/null; stop_server' EXIT
timeout "$limit" taskset -c 1 "$LOADGEN" soak --url "ws://127.0.0.1:$PORT/echo" --connections "$CONNECTIONS" \
    --duration "$DURATION" --rate "$RATE" --close-rate "$CLOSE_RATE" --kill-rate "$KILL_RATE" --size "$MAX_SIZE" \
    --hold "$HOLD" --server-pid "$SERVER_PID" --timeline "$timeline" --json >"$prefix.json" 2>"$prefix.txt" &
LG_PID=$!
# Two seconds into the idle hold, glibc's view of the heap (the diagnosis below).
HEAP_HOLD=
if [[ $DIAGNOSE == 1 ]] && ((HOLD >= 4)); then
    for _ in $(seq $((limit * 2))); do
        kill -0 "$LG_PID" 2>/dev/null || break
        if grep -q ',hold,' "$timeline" 2>/dev/null; then
            sleep 2
            kill -0 "$LG_PID" 2>/dev/null && HEAP_HOLD=$(heap_stats)
            break
        fi
        sleep 0.5
    done
fi
lg_status=0
wait "$LG_PID" || lg_status=$?
LG_PID=
s1=$(cpu_sample)
check_alive "the soak"
server_alive=yes
[[ -n $SERVER_PID ]] || server_alive=no

# ---- end readings: SETTLE s after the last close; if the fds are not back, watch a while longer
RSS_END=n/a FDS_END=n/a FDS_LATE=n/a LATE_AFTER=
if [[ $server_alive == yes ]]; then
    for _ in $(seq "$SETTLE"); do sleep 1; sample settle; done
    ((SETTLE > 0)) || sample settle
    RSS_END=$LAST_RSS
    FDS_END=$LAST_FDS
    if [[ $FDS_END != n/a && $FDS_START != n/a ]] && ((FDS_END > FDS_START)); then
        for i in $(seq "$LEAK_WAIT"); do
            sleep 1
            sample leak-wait
            if [[ $LAST_FDS != n/a ]] && ((LAST_FDS <= FDS_START)); then LATE_AFTER=$i; break; fi
        done
        FDS_LATE=$LAST_FDS
    fi
fi
# The server's own log lines (without the malloc_stats output of the diagnosis).
server_log() { grep -vE '^(Arena [0-9]+:|Total \(incl\. mmap\):|system bytes +=|in use bytes +=|max mmap (regions|bytes) +=)' "$prefix-server.log" || true; }
log_lines=$(server_log | grep -c . || true)
log_problems=$(server_log | grep -ciE 'error|critical|fatal|crash' || true)

# ---- diagnosis (after every graded reading): how much of the heap glibc still counts in use,
# and what RSS malloc_trim(0) gives back. Freed memory the allocator keeps is not a leak.
open_hold=$(field "$prefix.json" .open_at_hold)
DIAG=()
if [[ $DIAGNOSE == 1 && $server_alive == yes ]] && command -v gdb >/dev/null; then
    HEAP_END=$(heap_stats)
    timeout 60 gdb -p "$SERVER_PID" -batch -iex 'set complaints 0' -ex 'call (int)malloc_trim(0)' >>"$prefix-gdb.txt" 2>&1 || true
    sleep 1
    rss_trim=$(rss_kib "$SERVER_PID")
    kib() { [[ -n $1 ]] && echo "$(($1 / 1024))" || echo n/a; }
    read -r hs_sys hs_use <<<"${HEAP_START:-}"
    read -r hh_sys hh_use <<<"${HEAP_HOLD:-}"
    read -r he_sys he_use <<<"${HEAP_END:-}"
    DIAG+=("glibc heap (malloc_stats, all arenas), KiB in use / taken from the system: start $(kib "$hs_use") / $(kib "$hs_sys"), all idle $(kib "$hh_use") / $(kib "$hh_sys"), end $(kib "$he_use") / $(kib "$he_sys").")
    if [[ -n $hh_use && -n $hs_use && $open_hold != n/a && $open_hold -gt 0 ]]; then
        DIAG+=("Live heap per idle connection: (in use all idle − at start) / open = $(awk -v a="$hh_use" -v b="$hs_use" -v n="$open_hold" 'BEGIN { printf "%.1f", (a - b) / n / 1024 }') KiB; the rest of the RSS per connection is memory glibc keeps after free.")
    fi
    [[ -z $rss_trim ]] || DIAG+=("malloc_trim(0) at the end: VmRSS $RSS_END → $rss_trim KiB (memory glibc kept, not leaked, if it falls back near the start of $RSS_START KiB).")
fi
stop_server

# ---- figures
j=$prefix.json
f() { field "$j" "$1"; }
errors_total=$(f .errors.total)
error_kinds=$(jq -r '[.errors | to_entries[] | select(.key != "total" and .value != 0) | "\(.key) \(.value)"] | join(", ")' "$j" 2>/dev/null || echo "no loadgen output")
[[ -n $error_kinds ]] || error_kinds=none
sent=$(f .soak.sent)
echoed=$(f .soak.echoed)
lost_killed=$(f .soak.lost_killed)
lost_other=$(f .soak.lost_other)
in_flight=$(f .soak.in_flight_at_end)
unaccounted=$(f .soak.unaccounted)
open_hold=$(f .open_at_hold)
rss_hold=$(f .server.rss_hold_end_kib)
hwm=$(f .server.hwm_after_kib)
RSS_PEAK=$(awk -F, 'NR > 1 && $3 != "" && $3 + 0 > m { m = $3 + 0 } END { print m ? m : "n/a" }' "$timeline" 2>/dev/null || echo n/a)
kib_per_idle=$(awk -v h="$rss_hold" -v s="$RSS_START" -v n="$open_hold" 'BEGIN {
    if (h == "n/a" || s == "n/a" || n == "n/a" || n <= 0) print "n/a"; else printf "%.1f", (h - s) / n }')
percent_over() { awk -v e="$1" -v s="$2" 'BEGIN { if (e == "n/a" || s == "n/a" || s <= 0) print "n/a"; else printf "%.1f", 100 * (e - s) / s }'; }
rss_ratio=$(percent_over "$RSS_END" "$RSS_START")
rss_ratio_cold=$(percent_over "$RSS_END" "$RSS_COLD")
busy=$(busy_percent "$s0" "$s1")
other=$(awk -v m="$busy" -v s="$(f .server.cpu_percent)" -v c="$(f .client_cpu.percent_of_core)" \
    'BEGIN { if (m == "n/a" || s == "n/a" || c == "n/a") print "n/a"; else { o = m - s - c; printf "%.0f", o < 0 ? 0 : o } }')

# ---- goals
verdict() { if [[ $1 == n/a ]]; then echo "n/a"; elif (($2)); then echo PASS; else echo FAIL; fi; }
ok_errors=0
if [[ $errors_total == 0 && $lost_other == 0 && $unaccounted == 0 && $in_flight == 0 && $server_alive == yes &&
      $lg_status == 0 && $open_hold == "$CONNECTIONS" && $log_problems == 0 ]]; then ok_errors=1; fi
G_ERRORS=$( ((ok_errors)) && echo PASS || echo FAIL)
G_FDS=$(verdict "$FDS_END" "$([[ $FDS_END != n/a && $FDS_START != n/a ]] && ((FDS_END <= FDS_START)) && echo 1 || echo 0)")
G_RSS=$(verdict "$rss_ratio" "$(awk -v r="$rss_ratio" -v g="$GOAL_RSS_RETURN_PCT" 'BEGIN { print (r != "n/a" && r <= g) ? 1 : 0 }')")
G_IDLE=$(verdict "$kib_per_idle" "$(awk -v k="$kib_per_idle" -v g="$GOAL_KIB_PER_IDLE" 'BEGIN { print (k != "n/a" && k <= g) ? 1 : 0 }')")

fds_cell="$FDS_START → $FDS_END"
[[ $FDS_LATE == n/a ]] || fds_cell+=" (${FDS_LATE} after $((SETTLE + ${LATE_AFTER:-$LEAK_WAIT})) s)"
kills=$(jq -r '.soak.kills | to_entries | map("\(.value) \(.key)") | join(", ")' "$j" 2>/dev/null || echo n/a)

{
    echo "# Soak: Star echo, $CONNECTIONS connections, ${DURATION} s with churn"
    echo
    echo "- Date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "- Machine: $(nproc) cores, $(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(uname -sr)"
    echo "- Command: \`$COMMAND_LINE\` (in Benchmarks/)"
    echo "- Server: \`$(server_command star PORT)\` on core 0; \`loadgen soak\` on core 1, 127.0.0.1."
    echo "- Load: $RATE echoes/s (text and binary, 0–$MAX_SIZE B, every byte checked), $CLOSE_RATE clean closes/s and $KILL_RATE drops/s, each followed by a reconnect; then all $CONNECTIONS idle for ${HOLD} s, then all closed (1000)."
    echo "- Start reading: $WARM_NOTE."
    echo "- Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg); other processes used about ${other}% of a core during the run."
    echo
    echo "| measure | value | goal | result |"
    echo "| --- | ---: | --- | --- |"
    echo "| loadgen errors | $errors_total ($error_kinds) | none | $G_ERRORS |"
    echo "| messages sent / echoed | $sent / $echoed | every one echoed or lost with a dropped connection | $( [[ $lost_other == 0 && $unaccounted == 0 && $in_flight == 0 ]] && echo PASS || echo FAIL) |"
    echo "| lost with a connection we dropped / lost otherwise / unaccounted | $lost_killed / $lost_other / $unaccounted | any / 0 / 0 | |"
    echo "| connections open at the hold | $open_hold of $CONNECTIONS | all | |"
    echo "| server still running; log lines (error-like) | $server_alive; $log_lines ($log_problems) | yes; 0 error-like | |"
    echo "| server fds: start → end (${SETTLE} s after the last close) | $fds_cell | no more than at the start | $G_FDS |"
    echo "| server VmRSS KiB: cold / start (after the warm-up) / peak (1 s samples) / VmHWM | $RSS_COLD / $RSS_START / $RSS_PEAK / $hwm | | |"
    echo "| server VmRSS KiB: all idle (end of hold) | $rss_hold | | |"
    echo "| server VmRSS KiB: end, vs start (vs cold) | $RSS_END (${rss_ratio}%; ${rss_ratio_cold}%) | within ${GOAL_RSS_RETURN_PCT}% of the start | $G_RSS |"
    echo "| RSS per idle connection: (hold − start) / open | ${kib_per_idle} KiB | ≤ ${GOAL_KIB_PER_IDLE} KiB | $G_IDLE |"
    echo
    echo "Details:"
    echo
    echo "- Connections: $(f .handshakes) handshakes in all, $(f .reconnect_attempts) connection attempts after the first $CONNECTIONS (opened in $(round "$(f .first_open_s)" 1) s); $(f .soak.clean_closes_started) clean closes started; $(f .soak.kills_total) drops: $kills."
    echo "- Messages: $sent sent ($(f .soak.text) text, $(f .soak.binary) binary; $(awk -v b="$(f .soak.sent_bytes)" 'BEGIN { if (b == "n/a") print b; else printf "%.1f", b / 1e6 }') MB), $echoed echoed byte for byte, $(f .soak.not_sent) not sent for want of a free connection. Round trip µs: p50 $(f .soak.latency_us.p50), p99 $(f .soak.latency_us.p99), max $(f .soak.latency_us.max)."
    echo "- CPU over the ${DURATION} s: server $(f .server.cpu_percent)% of core 0, loadgen $(f .client_cpu.percent_of_core)% of core 1."
    echo "- Goal \"no errors\" means: no loadgen error of any kind, no echo lost except with a connection loadgen dropped on purpose, every connection open for the hold, the server alive, and no error-like line in its log."
    echo "- Timeline (one line a second: RSS, fds, open connections, messages): \`$timeline\`; loadgen's report: \`$prefix.txt\`, \`$prefix.json\`; server log: \`$prefix-server.log\`."
    for d in "${DIAG[@]}"; do echo "- Diagnosis (gdb; after the graded readings, except the idle one taken 2 s into the hold): $d"; done
    [[ $lg_status == 0 ]] || echo "- loadgen exited with status $lg_status (1: it counted errors; 3 or 124: a time limit)."
    if ((${#NOTES[@]})); then
        for note in "${NOTES[@]}"; do echo "- $note"; done
    fi
} | tee "$RESULTS/soak.md"

[[ -s $prefix.json ]] || exit 2
for g in "$G_ERRORS" "$G_FDS" "$G_RSS" "$G_IDLE"; do [[ $g == PASS ]] || exit 1; done
exit 0
