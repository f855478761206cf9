#!/usr/bin/env bash
# Scale: many concurrent WebSockets with keepalive on, one broadcast a second to all of them.
#
#   ./run-scale.sh                                  # 100,000 connections (see "file descriptors" below)
#   CONNECTIONS="5000 10000 19000" ./run-scale.sh   # several sizes, each on a freshly started server
#   DURATION=30 WARMUP=3 GRACE=10 INTERVAL=1 PING_INTERVAL=20 CONCURRENCY=200 ./run-scale.sh
#   SOURCES=127.0.0.2-127.0.0.9 STAR_FANOUT=/path/to/fanout QUIET_WAIT=180 BASE_PORT=27300 ./run-scale.sh
#   SHARDS=0 ./run-scale.sh                         # cap a size to what one process may hold (below)
#   PER_PROCESS=3000 CONNECTIONS=6000 OPEN_BUDGET=10 ./run-scale.sh   # the several-process path, small
#
# The server is Star's `fanout` example (Examples/Sources/Fanout): every client of /feed is
# subscribed to an in-memory Broadcast, and a task publishes "t=<CLOCK_REALTIME ns> seq=<n> ..."
# every INTERVAL (1) s; keepalive pings every PING_INTERVAL (20, Star's default) s. It runs pinned
# to core 0 (taskset -c 0); `loadgen fanout` runs on core 1, opens the connections from the
# SOURCES addresses (127.0.0.2-127.0.0.9: loopback has ~28k ephemeral ports per source address),
# answers pings, and for the broadcasts published in its DURATION-second window reports every
# delivery's latency (its CLOCK_REALTIME at the read − the publish time in the message: one
# machine, one clock), the deliveries per broadcast, and the fan-out time (publish → the last
# connection's delivery, as the client sees it). It reads the server's VmRSS from /proc: idle
# (before any connection), with all connections open, once a second in the window, at the end.
#
# Limits this needs, checked (and raised where this process may) before measuring:
# - file descriptors: one per connection in the server and in loadgen, so RLIMIT_NOFILE ≥
#   connections + 1024 (`ulimit -n`; raising the hard limit needs CAP_SYS_RESOURCE); fs.nr_open
#   and fs.file-max above that (sysctl).
# - ports: ip_local_port_range (default 32768-60999, ~28k) per source address: loadgen binds
#   each connection to one of SOURCES and a port of its own range, round-robin.
# - net.core.somaxconn ≥ the server's --backlog (2048) and CONCURRENCY handshakes at once.
# - net.netfilter.nf_conntrack_max ≥ connections (each loopback TCP connection is tracked when the
#   conntrack module is loaded; a full table drops SYNs).
# The script tries `sysctl -w` for the last two (root; a VM: nothing to restore) and records what
# it could not change.
#
# It takes the build lock (fd 9) while it measures, so no Swift build competes for the cores.
# Every phase is bounded: loadgen's own limits (opening ≤ 150 s, window ≤ 120 s, grace ≤ 60 s,
# closing ≤ 30 s) and `timeout 300`. Results: results/scale.md, loadgen's JSON and text and the
# server logs (one line per broadcast: how long `publish` took to hand it to every subscription)
# as results/scale-N-*.
set -euo pipefail

cd "$(dirname "$0")"
# shellcheck source=ws-common.sh
. ./ws-common.sh  # BENCH_DIR, LOADGEN, start_server, stop_server, loadgen, raise_nofile...
COMMAND_LINE="$0${*:+ $*}"
for var in CONNECTIONS SOURCES DURATION WARMUP GRACE INTERVAL PING_INTERVAL CONCURRENCY SHARDS OPEN_BUDGET PER_PROCESS QUIET_WAIT QUIET_MAX BASE_PORT STAR_FANOUT; do
    if [[ -n ${!var+x} ]]; then COMMAND_LINE="$var='${!var}' $COMMAND_LINE"; fi
done

CONNECTIONS=${CONNECTIONS:-100000}       # one or more sizes
SOURCES=${SOURCES:-127.0.0.2-127.0.0.9}  # loadgen's source addresses
DURATION=${DURATION:-30}                 # seconds of broadcasts counted
WARMUP=${WARMUP:-3}                      # seconds after the last connection opened, before counting
GRACE=${GRACE:-10}                       # at most this long after the window for its deliveries
INTERVAL=${INTERVAL:-1}                  # seconds between broadcasts
PING_INTERVAL=${PING_INTERVAL:-20}       # the server's keepalive ping (Star's default: 20 s)
CONCURRENCY=${CONCURRENCY:-200}          # handshakes in progress at once while opening
export INTERVAL PING_INTERVAL             # for server_command
LOADGEN_PATH=/feed

need_tools run-scale.sh taskset timeout flock make cc jq sysctl
largest=0
for n in $CONNECTIONS; do
    if ! [[ $n =~ ^[0-9]+$ ]] || ((n < 1 || n > 200000)); then
        echo "run-scale.sh: bad size '$n' (1-200000)" >&2
        exit 2
    fi
    ((n > largest)) && largest=$n
done

# ---- build: loadgen, and the fanout example in release (one Swift build at a time)

build_c_tools
if [[ -z ${STAR_FANOUT:-} ]]; then
    timeout 3600 flock "$LOCK" swift build --package-path ../Examples -c release --product fanout
    STAR_FANOUT=$ROOT_DIR/Examples/.build/release/fanout
fi
[[ -x $STAR_FANOUT ]] || { echo "run-scale.sh: no fanout binary at $STAR_FANOUT" >&2; exit 1; }

# ---- hold the build lock while measuring

take_measure_lock run-scale.sh

# Kernel and process limits. A size this process cannot serve is recorded and capped, not faked.
sysctl_at_least() {  # key value : raise a sysctl to at least value; note it if that fails
    local cur
    cur=$(sysctl -n "$1" 2>/dev/null) || return 0  # not present (e.g. no conntrack module)
    if ((cur < $2)); then
        if ! sysctl -q -w "$1=$2" 2>/dev/null; then
            NOTES+=("sysctl $1 is $cur and could not be raised to $2.")
        fi
    fi
}
sysctl_at_least net.core.somaxconn 4096
sysctl_at_least net.netfilter.nf_conntrack_max $((largest * 2 + 65536))
need_fds=$((largest + 1024))
for key in fs.nr_open fs.file-max; do
    if (($(sysctl -n "$key") < need_fds)); then
        NOTES+=("sysctl $key is $(sysctl -n $key), below the $need_fds descriptors $largest connections need.")
    fi
done
if (($(ulimit -n) < need_fds)); then
    ulimit -n "$need_fds" 2>/dev/null || ulimit -n "$(ulimit -Hn)"
fi
fd_cap=$(($(ulimit -n) - 512))  # the server's own descriptors (epoll, eventfds, logs, ...) and loadgen's
if ((fd_cap < largest)); then
    caps=$(grep CapEff /proc/self/status | awk '{print $2}')
    has_sys_resource=no
    (((16#$caps >> 24) & 1)) && has_sys_resource=yes
    NOTES+=("RLIMIT_NOFILE: soft $(ulimit -n), hard $(ulimit -Hn), and this process cannot raise it (CAP_SYS_RESOURCE in CapEff=$caps: $has_sys_resource): one process holds at most ~$fd_cap connections here. A size above that runs as several server processes, each with its own loadgen (run-scale.sh's SHARDS), or with SHARDS=0 is capped to $fd_cap.")
fi
if [[ -n ${PER_PROCESS:-} ]] && ((PER_PROCESS < fd_cap)); then  # to try the several-process path small
    fd_cap=$PER_PROCESS
    NOTES+=("PER_PROCESS=$PER_PROCESS: at most that many connections per server process.")
fi
port_range=$(sysctl -n net.ipv4.ip_local_port_range | tr '\t' ' ')

# A size one process cannot hold (SHARDS=auto, the default): K = ceil(size / the per-process
# limit) fanout servers, each on its own port, all pinned to core 0 and publishing on the same
# wall-clock second (the example publishes on the second), and K loadgens on core 1 with size/K
# connections each from their own source addresses (127.0.i.1-127.0.i.4), whose windows start at
# the same second (--window-at, OPEN_BUDGET s after they start, default 100). Not one Broadcast
# reaching every socket, then, but the same sockets, pings and messages on one core.
SHARDS=${SHARDS:-auto}
OPEN_BUDGET=${OPEN_BUDGET:-100}
SHARD_PIDS=()
LOADGEN_PIDS=()
stop_shards() {
    local p
    for p in "${LOADGEN_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done  # their timeout wrappers: loadgen too
    LOADGEN_PIDS=()
    for p in "${SHARD_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${SHARD_PIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    SHARD_PIDS=()
}
trap 'stop_shards; stop_server' EXIT

plan=()
for n in $CONNECTIONS; do
    if ((n > fd_cap)) && [[ $SHARDS == 0 ]]; then n=$fd_cap; fi
    plan+=("$n")
done

per_conn() { awk -v a="$1" -v b="$2" -v n="$3" 'BEGIN { if (a == "n/a" || b == "n/a" || n + 0 <= 0) print "n/a"; else printf "%.1f", (b - a) / n }'; }
mb() { awk -v k="$1" 'BEGIN { if (k == "n/a" || k == "" || k < 0) print "n/a"; else printf "%.0f MB", k * 1024 / 1e6 }'; }
median_max_ms() { sort -n | awk '{ x[NR] = $1 } END { if (NR) printf "%.1f / %.1f ms", x[int((NR + 1) / 2)] / 1000, x[NR] / 1000; else print "n/a" }'; }

# One size in one process: the server, then loadgen; a row for each table.
run_one() {  # connections
    local n=$1 tag=scale-$1 j first last publish open idle rss_open peak missing failed
    start_server fanout "$RESULTS/$tag-server.log"
    if [[ -z $SERVER_PID ]]; then return 0; fi
    sleep "$(awk -v i="$INTERVAL" 'BEGIN { print i + 1 }')"  # a broadcast or two with no subscriber: publishing works
    echo "-- $n connections (server pid $SERVER_PID, port $PORT)"
    loadgen "$RESULTS/$tag.json" fanout --connections "$n" --source-addresses "$SOURCES" --concurrency "$CONCURRENCY" \
        --warmup "$WARMUP" --duration "$DURATION" --grace "$GRACE" --close-wait 30 --server-pid "$SERVER_PID"
    stop_server
    j=$RESULTS/$tag.json
    sed -n '1,20p' "${j%.json}.txt" | sed 's/^/   /'
    # The server's own view: how long publish took to hand each broadcast of the window to every subscription.
    first=$(field "$j" .first_seq) last=$(field "$j" .last_seq)
    publish=$(awk -v a="$first" -v b="$last" '/^fanout seq=/ {
            for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
            if (v["seq"] + 0 >= a + 0 && v["seq"] + 0 <= b + 0) print v["publish_us"] }' "$RESULTS/$tag-server.log" | median_max_ms)
    open=$(field "$j" .open_at_measure)
    idle=$(field "$j" .server_rss.idle_kib) rss_open=$(field "$j" .server_rss.open_kib)
    peak=$(field "$j" .server_rss.window_peak_kib)
    missing=$(awk -v e="$(field "$j" .deliveries_expected)" -v d="$(field "$j" .deliveries)" 'BEGIN { if (e == "n/a") print "n/a"; else print e - d }')
    failed=$(awk -v n="$n" -v o="$open" 'BEGIN { if (o == "n/a") print "n/a"; else print n - o }')
    ROWS+=("| $n | $open | $(mb "$idle") → $(mb "$rss_open") / $(mb "$peak") | $(per_conn "$idle" "$rss_open" "$open") / $(per_conn "$idle" "$peak" "$open") KiB | $(field "$j" .broadcasts) | $(field "$j" .per_broadcast_min) / $(field "$j" .per_broadcast_median) | $missing | $(round "$(field "$j" .fanout_ms.median)") / $(round "$(field "$j" .fanout_ms.max)") ms | $(round "$(field "$j" .latency_ms.p50)" 1) / $(round "$(field "$j" .latency_ms.p99)") / $(round "$(field "$j" .latency_ms.max)") ms | $(round "$(field "$j" .server.cpu_percent)") % | $failed |")
    DETAILS+=("| $n | $(round "$(field "$j" .open_s)" 1) s | $publish | $(round "$(field "$j" .fanout_ms.first_delivery_median)" 1) ms | $(field "$j" .pings) / $(field "$j" .pongs_sent) | $(field "$j" .server_rss.fds_open) | $(mb "$(field "$j" .server_rss.hwm_kib)") | $(round "$(field "$j" .client_cpu.percent_of_core)") % | $(cat "${j%.json}.busy" 2>/dev/null || echo n/a) % | $(field "$j" .clean_closes) | $(jq -c '.errors | with_entries(select(.value != 0))' "$j" 2>/dev/null || echo n/a) |")
    if [[ $(field "$j" .errors.total) != 0 ]]; then
        NOTES+=("$n connections: loadgen counted errors: $(jq -c '.errors | with_entries(select(.value != 0))' "$j" 2>/dev/null); close frames the server started, by code: $(jq -c '.server_close_codes // {}' "$j")")
    fi
}

# One size over K processes (see SHARDS above). RSS is the sum of the K servers' VmRSS, sampled by
# this script once a second (results/scale-N-rss.txt): idle before any connection, at the window's
# start, and the largest sample in the window. Latency and fan-out are per process: the table gives
# the worst process's figures (and the best one's p50).
run_sharded() {  # connections processes
    local n=$1 k=$2 tag=scale-$1 per i port=$PORT sampler window_at s0 s1 j0
    local -a ports=() lgs=()
    per=$(((n + k - 1) / k))
    for ((i = 0; i < k; i++)); do
        for _ in $(seq 100); do
            port=$((port + 1))
            (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || break
        done
        # shellcheck disable=SC2046
        taskset -c 0 $(server_command fanout "$port") >"$RESULTS/$tag-server$i.log" 2>&1 &
        SHARD_PIDS+=($!)
        ports+=("$port")
    done
    PORT=$port
    for ((i = 0; i < k; i++)); do
        for _ in $(seq 300); do
            if (exec 3<>"/dev/tcp/127.0.0.1/${ports[i]}") 2>/dev/null; then break; fi
            sleep 0.1
        done
    done
    sleep "$(awk -v i="$INTERVAL" 'BEGIN { print i + 1 }')"
    echo "-- $n connections as $k processes × $per (server pids ${SHARD_PIDS[*]}, ports ${ports[*]})"
    (
        end=$(($(date +%s) + 290))
        while (($(date +%s) < end)); do
            total=0
            for p in "${SHARD_PIDS[@]}"; do
                r=$(awk '/^VmRSS/ { print $2 }' "/proc/$p/status" 2>/dev/null || echo 0)
                total=$((total + ${r:-0}))
            done
            echo "$(date +%s.%N) $total"
            sleep 1
        done
    ) >"$RESULTS/$tag-rss.txt" &
    sampler=$!
    sleep 1.2  # the idle sample
    window_at=$(($(date +%s) + OPEN_BUDGET))
    s0=$(cpu_sample)
    for ((i = 0; i < k; i++)); do
        timeout 300 taskset -c 1 "$LOADGEN" fanout --connections "$per" --source-addresses "127.0.$((i + 1)).1-127.0.$((i + 1)).4" \
            --concurrency $((CONCURRENCY / k + 1)) --warmup "$WARMUP" --duration "$DURATION" --grace "$GRACE" --close-wait 30 \
            --window-at "$window_at" --server-pid "${SHARD_PIDS[i]}" --url "ws://127.0.0.1:${ports[i]}/feed" --json \
            >"$RESULTS/$tag-$i.json" 2>"$RESULTS/$tag-$i.txt" &
        lgs+=($!)
        LOADGEN_PIDS+=($!)
    done
    for p in "${lgs[@]}"; do wait "$p" || true; done
    LOADGEN_PIDS=()
    s1=$(cpu_sample)
    kill "$sampler" 2>/dev/null || true
    wait "$sampler" 2>/dev/null || true
    for ((i = 0; i < k; i++)); do
        if ! kill -0 "${SHARD_PIDS[i]}" 2>/dev/null; then NOTES+=("$n connections: server process $i exited during the run."); fi
    done
    stop_shards
    for ((i = 0; i < k; i++)); do sed -n '1,6p' "$RESULTS/$tag-$i.txt" | sed "s/^/   [$i] /"; done
    jq -s '.' "$RESULTS/$tag"-[0-9]*.json >"$RESULTS/$tag.json" 2>/dev/null || echo '[]' >"$RESULTS/$tag.json"
    j0=$RESULTS/$tag.json
    local open idle at_start peak missing failed publish agg agg2
    open=$(jq '[.[].open_at_measure // 0] | add // 0' "$j0")
    read -r idle at_start peak < <(awk -v a="$window_at" -v d="$DURATION" 'NR == 1 { idle = $2 }
        $1 >= a && start == "" { start = $2 } $1 >= a && $1 < a + d && $2 > peak { peak = $2 }
        END { print (idle == "" ? "n/a" : idle), (start == "" ? "n/a" : start), (peak == "" ? "n/a" : peak) }' "$RESULTS/$tag-rss.txt")
    missing=$(jq '[.[] | (.deliveries_expected // 0) - (.deliveries // 0)] | add // 0' "$j0")
    failed=$((n - open))
    publish=$(cat "$RESULTS/$tag"-server[0-9]*.log | awk -v a="$window_at" -v d="$DURATION" '/^fanout seq=/ {
            for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
            if (v["t"] / 1e9 >= a && v["t"] / 1e9 < a + d) print v["publish_us"] }' | median_max_ms)
    agg=$(jq -r '"\([.[].broadcasts // 0] | min) | \([.[].per_broadcast_min // 0] | add) / \([.[].per_broadcast_median // 0] | add)"' "$j0")
    agg2=$(jq -r '"\([.[].fanout_ms.median // 0] | max | round) / \([.[].fanout_ms.max // 0] | max | round) ms | \([.[].latency_ms.p50 // 0] | min | round)–\([.[].latency_ms.p50 // 0] | max | round) / \([.[].latency_ms.p99 // 0] | max | round) / \([.[].latency_ms.max // 0] | max | round) ms | \([.[].server.cpu_percent // 0] | add | round) %"' "$j0")
    ROWS+=("| $n ($k processes × $per) | $open | $(mb "$idle") → $(mb "$at_start") / $(mb "$peak") | $(per_conn "$idle" "$at_start" "$open") / $(per_conn "$idle" "$peak" "$open") KiB | $agg | $missing | $agg2 | $failed |")
    DETAILS+=("| $n ($k processes) | $(jq '[.[].open_s // 0] | max | . * 10 | round / 10' "$j0") s | $publish | $(jq '[.[].fanout_ms.first_delivery_median // 0] | max | . * 10 | round / 10' "$j0") ms | $(jq '[.[].pings // 0] | add' "$j0") / $(jq '[.[].pongs_sent // 0] | add' "$j0") | $(jq '[.[].server_rss.fds_open // 0] | add' "$j0") | $(mb "$(jq '[.[].server_rss.hwm_kib // 0] | add' "$j0")") | $(jq '[.[].client_cpu.percent_of_core // 0] | add | round' "$j0") % | $(busy_percent "$s0" "$s1") % | $(jq '[.[].clean_closes // 0] | add' "$j0") | $(jq -c '[.[].errors // {}] | reduce .[] as $e ({}; reduce ($e | to_entries[]) as $x (.; .[$x.key] += $x.value)) | with_entries(select(.value != 0))' "$j0") |")
    if [[ $(jq '[.[].errors.total // 0] | add' "$j0") != 0 ]]; then
        NOTES+=("$n connections: loadgens counted errors (see results/$tag-*.txt); close frames the servers started, by code: $(jq -c '[.[].server_close_codes // {}] | reduce .[] as $e ({}; reduce ($e | to_entries[]) as $x (.; .[$x.key] += $x.value))' "$j0"); the reasons: $(cat "$RESULTS/$tag"-[0-9]*.txt | grep -o "the server closed a connection: [^;]*" | sort -u | head -3 | paste -sd';' || true)")
    fi
}

echo "== scale: sizes ${plan[*]} (asked: $CONNECTIONS); ${DURATION}s of broadcasts every ${INTERVAL}s, pings every ${PING_INTERVAL}s; load average $(cut -d' ' -f1-3 /proc/loadavg)"
ROWS=()
DETAILS=()
for n in "${plan[@]}"; do
    wait_quiet "fanout $n"
    if ((n > fd_cap)); then
        run_sharded "$n" $(((n + fd_cap - 1) / fd_cap))
    else
        run_one "$n"
    fi
done

# ---- report

out=$RESULTS/scale.md
{
    echo "# Scale: WebSockets with keepalive, one broadcast a second to all"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); commit $(git -C "$ROOT_DIR" rev-parse --short HEAD 2>/dev/null || echo n/a)$(git -C "$ROOT_DIR" diff --quiet 2>/dev/null || echo ' (with uncommitted changes)')"
    echo "- machine: $(nproc) cores, $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo), $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), kernel $(uname -r)"
    echo "- command: \`$COMMAND_LINE\`"
    echo "- server: \`$(server_command fanout PORT)\` on core 0; loadgen fanout on core 1 from $SOURCES"
    echo "- limits: ulimit -n $(ulimit -n) (hard $(ulimit -Hn)); fs.nr_open $(sysctl -n fs.nr_open); ip_local_port_range $port_range; somaxconn $(sysctl -n net.core.somaxconn); nf_conntrack_max $(sysctl -n net.netfilter.nf_conntrack_max 2>/dev/null || echo n/a)"
    echo "- load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo
    echo "| connections asked | open in the window | server RSS idle → all open / window peak | per connection (open / peak) | broadcasts | deliveries per broadcast (min / median) | missing | fan-out (median / max) | latency (p50 / p99 / max) | server CPU | failed to open |"
    echo "| ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    printf '%s\n' "${ROWS[@]}"
    echo
    echo "Fan-out is measured by the client: the last delivery's CLOCK_REALTIME − the publish time the server put in the message (the same clock). Latency is that for every delivery. Per connection = (RSS − idle RSS) / connections open."
    echo
    echo "| connections | time to open all | server's publish (median / max) | first delivery (median) | pings / pongs | server fds | server VmHWM | loadgen CPU | machine busy (% of a core) | clean closes | errors |"
    echo "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
    printf '%s\n' "${DETAILS[@]}"
    echo
    echo "The server's publish: how long \`broadcast.publish\` took to hand the event to every subscription (from the server's log), not the sends."
    if ((${#NOTES[@]})); then
        echo
        echo "## Problems seen"
        echo
        printf -- '- %s\n' "${NOTES[@]}"
    fi
} >"$out"
echo
cat "$out"
