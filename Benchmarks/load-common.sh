# shellcheck shell=bash
# Shared by run-h2.sh and run-h2ws.sh: wait until the machine is quiet before a measurement.
#
#   wait_load LABEL   -> waits (at most QUIET_WAIT s, 600, polling every 15 s) until the 1-minute load
#                        average is under QUIET_LOAD (0.8) and no swift-frontend/swift-build runs; sets
#                        LOAD_AT_START (the three load averages when it returned) and appends to
#                        LOAD_NOTES when it gave up waiting.
LOAD_NOTES=()
LOAD_AT_START=
wait_load() {
    local label=$1 waited=0 one
    while :; do
        one=$(cut -d' ' -f1 /proc/loadavg)
        if awk -v l="$one" -v m="${QUIET_LOAD:-0.8}" 'BEGIN { exit !(l < m) }' &&
            ! pgrep -f 'swift-frontend|swift-build' >/dev/null; then
            break
        fi
        if ((waited >= ${QUIET_WAIT:-600})); then
            LOAD_NOTES+=("$label: measured under load (1-min load average $one after waiting ${waited} s; swift compiler running: $(pgrep -fc 'swift-frontend|swift-build' || true))")
            echo "   $label: still busy after ${waited} s (load $one): measuring anyway, marked" >&2
            break
        fi
        echo "   $label: waiting for a quiet machine (load $one, $(pgrep -fc 'swift-frontend|swift-build' || true) swift compiler processes; ${waited}/${QUIET_WAIT:-600} s)"
        sleep 15
        waited=$((waited + 15))
    done
    LOAD_AT_START=$(cut -d' ' -f1-3 /proc/loadavg)
}
