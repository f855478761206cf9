#!/usr/bin/env bash
# Autobahn|Testsuite's client cases against Star's WebSocket client: starts `wstest -m
# fuzzingserver`, plays every case with Examples' autobahn-client (it echoes each message back as
# received), and judges the report with .ci/autobahn_summary.py.
#
# Usage:
#   .ci/autobahn-client.sh [CLIENT_BINARY] [CASES]
#
#   CLIENT_BINARY  the autobahn-client executable (default: Examples/.build/release/autobahn-client)
#   CASES          comma-separated wstest case patterns (default: 1.*,…,13.*, all 517 cases;
#                  the suite has no section 8)
# Environment: AUTOBAHN_AGENT (star), AUTOBAHN_REPORT_DIR (keep reports there), AUTOBAHN_TIMEOUT
# (1800 s for the whole run), STAR_CI_CACHE (where .ci/autobahn.sh keeps its Python 2.7 wstest).
#
# Exit status: 0 when every case's behavior and behaviorClose is OK, NON-STRICT or INFORMATIONAL;
# 1 on any other result or a case that did not run; 2 on a setup error.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
client=${1:-$root/Examples/.build/release/autobahn-client}
cases=${2:-1.*,2.*,3.*,4.*,5.*,6.*,7.*,9.*,10.*,12.*,13.*}
agent=${AUTOBAHN_AGENT:-star}
timeout_s=${AUTOBAHN_TIMEOUT:-1800}
venv=${STAR_CI_CACHE:-/tmp/star-ci}/autobahn-venv
[[ -x $client ]] || { echo "autobahn-client.sh: no client at $client (swift build --package-path Examples -c release --product autobahn-client)" >&2; exit 2; }

"$here/autobahn.sh" --setup-only >/dev/null   # the same Python 2.7 wstest as the server suite

if [[ -n ${AUTOBAHN_REPORT_DIR:-} ]]; then
  mkdir -p "$AUTOBAHN_REPORT_DIR"; work=$(cd "$AUTOBAHN_REPORT_DIR" && pwd); keep=1
else
  work=$(mktemp -d "${TMPDIR:-/tmp}/star-autobahn-client.XXXXXX"); keep=0
fi
rm -rf "$work/reports"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 - "$work/spec.json" "$port" "$cases" "$work/reports" <<'PY'
import json, sys
path, port, cases, outdir = sys.argv[1:]
json.dump({"url": "ws://127.0.0.1:%s" % port, "outdir": outdir,
           "cases": [c.strip() for c in cases.split(",") if c.strip()],
           "exclude-cases": [], "exclude-agent-cases": {}}, open(path, "w"), indent=2)
PY

(cd "$work" && exec "$venv/bin/wstest" -m fuzzingserver -s spec.json) >"$work/wstest.log" 2>&1 &
wstest=$!
trap 'kill "$wstest" 2>/dev/null || true' EXIT
deadline=$((SECONDS + 30))
until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
  kill -0 "$wstest" 2>/dev/null || { tail -n 20 "$work/wstest.log" >&2; echo "autobahn-client.sh: wstest exited" >&2; exit 2; }
  ((SECONDS < deadline)) || { echo "autobahn-client.sh: fuzzingserver not listening after 30s" >&2; exit 2; }
  sleep 0.2
done

echo "autobahn-client.sh: $client -> wstest fuzzingserver on port $port  cases=$cases"
start=$SECONDS
set +e
timeout -k 10 "$timeout_s" "$client" "ws://127.0.0.1:$port" --agent "$agent" | tee "$work/client.log"
client_rc=${PIPESTATUS[0]}
set -e
count=$(sed -n 's/^autobahn-client: \([0-9]*\) cases.*/\1/p' "$work/client.log")
index=$work/reports/index.json
if [[ $client_rc != 0 || ! -f $index ]]; then
  echo "autobahn-client.sh: the client exited $client_rc; report: $( [[ -f $index ]] && echo "$index" || echo none)" >&2
  echo "autobahn: 0 passed, 1 failed"
  exit 1
fi
echo
set +e
python3 "$here/autobahn_summary.py" "$index" --agent "$agent" ${count:+--expect "$count"}
rc=$?
set -e
echo "autobahn-client.sh: wall time $((SECONDS - start))s for ${count:-?} cases"
if ((rc == 0 && keep == 0)); then rm -rf "$work"; else echo "autobahn-client.sh: reports kept in $work/reports"; fi
exit "$rc"
