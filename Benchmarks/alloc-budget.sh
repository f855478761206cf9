#!/usr/bin/env bash
# Allocation budget: allocation calls per echoed WebSocket message in Star's release echo, counted
# by malloccount.so (LD_PRELOAD), against a budget kept below. Exits 1 when a figure is over its
# budget, 2 when it could not measure.
#
#   ./alloc-budget.sh                            # build Star's echo (release) under the lock, measure
#   STAR_ECHO=/path/to/echo ./alloc-budget.sh    # measure this binary instead
#   TEXT_SHORT=100000 TEXT_LONG=400000 BIN_SHORT=10000 BIN_LONG=40000 ./alloc-budget.sh
#
# Two workloads, on one server process pinned to core 0 (loadgen on core 1, 127.0.0.1):
#   - 32 B text messages over 64 connections, 1 in flight each;
#   - 64 KiB binary messages over 16 connections, 1 in flight each.
# Each is run three times with a fixed number of messages (loadgen echo --count): a warm-up, a
# short run and a long run. Allocations per echoed message = (allocations in the long run − in the
# short one) / (messages in the long run − in the short one): the handshakes and closes, the same in
# both runs, cancel out (the method of run-ws.sh's (e), whose code this shares via ws-common.sh).
set -euo pipefail

cd "$(dirname "$0")"
# shellcheck source=ws-common.sh
. ./ws-common.sh
COMMAND_LINE="$0${*:+ $*}"
for var in STAR_ECHO TEXT_WARM TEXT_SHORT TEXT_LONG BIN_WARM BIN_SHORT BIN_LONG QUIET_WAIT QUIET_MAX BASE_PORT; do
    if [[ -n ${!var+x} ]]; then COMMAND_LINE="$var='${!var}' $COMMAND_LINE"; fi
done

# ---- the budgets: allocation calls per echoed message
# Measured on 2026-11-25 (results/ws.md, run-ws.sh on the 2-core machine): 8.00 per 32 B text
# message (was 9.00: no continuation canary) and 9.50 per 64 KiB binary message (was 8.00: large
# reads now go into fresh buffers that are freed after use, so that an idle connection keeps no
# 64 KiB buffer; see WebSocketReceiveAllocator). The budgets are those figures plus ~10%. When Star
# allocates less, lower them to the new figure plus ~10%. 2026-12-07: 6.00 per text message (a
# masked text message is unmasked straight into its String, not into a ByteBuffer first).
BUDGET_TEXT32=4.4
BUDGET_BIN64K=8.3

TEXT_WARM=${TEXT_WARM:-50000}
TEXT_SHORT=${TEXT_SHORT:-100000}
TEXT_LONG=${TEXT_LONG:-400000}
BIN_WARM=${BIN_WARM:-5000}
BIN_SHORT=${BIN_SHORT:-10000}
BIN_LONG=${BIN_LONG:-40000}
RUN_LIMIT=60  # seconds: loadgen's --duration, the most one run may take

need_tools alloc-budget.sh taskset timeout flock make cc jq
for n in TEXT_WARM TEXT_SHORT TEXT_LONG BIN_WARM BIN_SHORT BIN_LONG; do
    [[ ${!n} =~ ^[1-9][0-9]{0,8}$ ]] || { echo "alloc-budget.sh: $n must be a positive number (at most 9 digits)" >&2; exit 2; }
done
((TEXT_LONG > TEXT_SHORT && BIN_LONG > BIN_SHORT)) || { echo "alloc-budget.sh: the long runs need more messages than the short ones" >&2; exit 2; }

build_c_tools
build_star_echo alloc-budget.sh 2
take_measure_lock alloc-budget.sh
wait_quiet star

prefix=$RESULTS/alloc-budget
counts=$BENCH_DIR/$prefix-malloccount.txt
rm -f "$counts"
echo "== allocation budget: $(server_command star PORT) (core 0), under malloccount.so"
start_server star "$prefix-server.log" LD_PRELOAD="$MALLOCCOUNT" MALLOCCOUNT_OUT="$counts"
[[ -n $SERVER_PID ]] || { echo "alloc-budget.sh: the server did not start; see $prefix-server.log" >&2; exit 2; }

ROWS=()
over=0
broken=0
for workload in text32 bin64k; do
    if [[ $workload == text32 ]]; then
        shape="--connections 64 --inflight 1 --size 32 --text" warm=$TEXT_WARM short=$TEXT_SHORT long=$TEXT_LONG
        budget=$BUDGET_TEXT32 label="32 B text, 64 connections"
    else
        shape="--connections 16 --inflight 1 --size 65536" warm=$BIN_WARM short=$BIN_SHORT long=$BIN_LONG
        budget=$BUDGET_BIN64K label="64 KiB binary, 16 connections"
    fi
    out="$prefix-$workload"
    alloc_per_message "$counts" "$out" "$shape" "--warmup 0 --duration $RUN_LIMIT --count $warm" \
        "--warmup 0 --duration $RUN_LIMIT --count $short" "--warmup 0 --duration $RUN_LIMIT --count $long"
    # Every run must have echoed exactly its count, without errors.
    problems=()
    for run in warm short long; do
        want=${!run}
        got=$(field "$out-$run.json" .messages)
        errs=$(field "$out-$run.json" .errors.total)
        [[ $got == "$want" ]] || problems+=("$run run echoed $got of $want messages")
        [[ $errs == 0 ]] || problems+=("$run run: errors $(jq -c '.errors // "no output"' "$out-$run.json" 2>/dev/null || echo "no output")")
    done
    per=${ALLOC_RESULT%%|*}
    if [[ $per == n/a ]] || ((${#problems[@]})); then
        verdict="NOT MEASURED"
        broken=1
        NOTES+=("$workload: ${problems[*]:-the allocation count could not be read}")
    elif awk -v p="$per" -v b="$budget" 'BEGIN { exit !(p <= b) }'; then
        verdict=PASS
    else
        verdict="FAIL (over budget)"
        over=1
    fi
    whole=$(cut -d'|' -f2 <<<"$ALLOC_RESULT|")
    echo "   $workload: $per allocations per echoed message (budget $budget): $verdict"
    ROWS+=("| $label | $per | $budget | $verdict | ${whole:-n/a} | $short / $long |")
done
stop_server

{
    echo "# Allocation budget"
    echo
    echo "- Date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "- Machine: $(nproc) cores, $(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(uname -sr)"
    echo "- Command: \`$COMMAND_LINE\` (in Benchmarks/)"
    echo "- Server: \`$(server_command star PORT)\` on core 0 under malloccount.so; loadgen on core 1."
    echo
    echo "| workload (1 in flight per connection) | allocs per echoed message | budget | result | whole long run ÷ its messages | messages short / long |"
    echo "| --- | ---: | ---: | --- | ---: | ---: |"
    printf '%s\n' "${ROWS[@]}"
    echo
    echo "Allocation calls: malloc, calloc, realloc, posix_memalign, aligned_alloc, memalign. Per echoed"
    echo "message = (allocations in the long run − in the short one) / (messages long − short), after a"
    echo "warm-up run ($TEXT_WARM text, $BIN_WARM binary messages); the whole-run column also carries the"
    echo "handshakes and closes."
    if ((${#NOTES[@]})); then
        echo
        echo "Problems seen:"
        echo
        for note in "${NOTES[@]}"; do echo "- $note"; done
    fi
} | tee "$RESULTS/alloc-budget.md"

if ((broken)); then exit 2; fi
if ((over)); then exit 1; fi
exit 0
