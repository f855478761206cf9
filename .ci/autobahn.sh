#!/usr/bin/env bash
# Autobahn|Testsuite conformance run against a running Star WebSocket server.
#
# Usage:
#   .ci/autobahn.sh [options] ws://127.0.0.1:PORT/echo [CASES]
#   .ci/autobahn.sh --setup-only          # only build/check the cached venv
#
#   CASES    comma-separated wstest case patterns
#            (default: 1.*,2.*,3.*,4.*,5.*,6.*,7.*,9.*,10.*; the suite has no
#            section 8, and 12.*/13.* are permessage-deflate, off by default)
# Options (each has an environment variable too):
#   --cases LIST       same as CASES                     AUTOBAHN_CASES
#   --exclude LIST     case patterns to skip              AUTOBAHN_EXCLUDE
#   --compression      also run 12.* and 13.* (permessage-deflate; naming
#                      them in CASES works too)           AUTOBAHN_COMPRESSION=1
#   --agent NAME       agent name in the report (star)    AUTOBAHN_AGENT
#   --report-dir DIR   keep reports here (default: temp dir, removed on success)
#                                                         AUTOBAHN_REPORT_DIR
#   --timeout SECS     kill wstest after SECS (1800)      AUTOBAHN_TIMEOUT
#   --wait SECS        wait up to SECS for the port (30)  AUTOBAHN_WAIT
#   --verbose          stream wstest output               AUTOBAHN_VERBOSE=1
#   --setup-only       create/check the venv and exit
#
# Cache: ${STAR_CI_CACHE:-/tmp/star-ci}/autobahn-venv, a Python 2.7 virtualenv
# (wstest is Python 2 only) made with /root/.pyenv/versions/2.7.18/bin/python
# (override: AUTOBAHN_PYTHON2) and virtualenv<20.22, holding the exact pins of
# .ci/autobahn-requirements.txt. It is rebuilt when that file changes; reruns
# reuse it. Needs PyPI and gcc (wsaccel 0.6.6 has no wheel: it builds from
# source); a first build takes about 30 s.
#
# Exit status: 0 when every case's behavior and behaviorClose is OK,
# NON-STRICT or INFORMATIONAL; 1 on any other result, a case that did not run,
# or no case at all; 2 on a usage or setup error. The per-section table comes
# from .ci/autobahn_summary.py; the last lines are the wall time and
# "autobahn: N passed, N failed".
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache=${STAR_CI_CACHE:-/tmp/star-ci}
venv=$cache/autobahn-venv
py2=${AUTOBAHN_PYTHON2:-/root/.pyenv/versions/2.7.18/bin/python}
reqs=$here/autobahn-requirements.txt
summary=$here/autobahn_summary.py
# virtualenv for Python 2.7 (20.15.1 is the newest that runs on 2.7) and the
# dependency versions that pip resolved for it, pinned for repeatability.
virtualenv_pins=(virtualenv==20.15.1 distlib==0.4.4 filelock==3.2.1 platformdirs==2.0.2
  importlib-metadata==2.1.3 importlib-resources==3.3.1 pathlib2==2.3.7.post1 zipp==1.2.0)

default_cases='1.*,2.*,3.*,4.*,5.*,6.*,7.*,9.*,10.*'
cases=${AUTOBAHN_CASES:-}
exclude=${AUTOBAHN_EXCLUDE:-}
compression=${AUTOBAHN_COMPRESSION:-0}
agent=${AUTOBAHN_AGENT:-star}
report_dir=${AUTOBAHN_REPORT_DIR:-}
timeout_s=${AUTOBAHN_TIMEOUT:-1800}
wait_s=${AUTOBAHN_WAIT:-30}
verbose=${AUTOBAHN_VERBOSE:-0}
setup_only=0
url=

export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_PYTHON_VERSION_WARNING=1 PIP_NO_INPUT=1

die() { echo "autobahn.sh: $*" >&2; exit 2; }
usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; }

while (($#)); do
  case $1 in
    --cases) cases=${2:?--cases needs a value}; shift 2 ;;
    --exclude) exclude=${2:?--exclude needs a value}; shift 2 ;;
    --compression|--all) compression=1; shift ;;
    --agent) agent=${2:?--agent needs a value}; shift 2 ;;
    --report-dir) report_dir=${2:?--report-dir needs a value}; shift 2 ;;
    --timeout) timeout_s=${2:?--timeout needs a value}; shift 2 ;;
    --wait) wait_s=${2:?--wait needs a value}; shift 2 ;;
    --verbose|-v) verbose=1; shift ;;
    --setup-only) setup_only=1; shift ;;
    -h|--help) usage; exit 0 ;;
    -*) die "unknown option $1 (see --help)" ;;
    *)
      if [[ -z $url ]]; then url=$1
      elif [[ -z $cases ]]; then cases=$1
      else die "unexpected argument $1"
      fi
      shift ;;
  esac
done

# --- the cached Python 2.7 venv with wstest ---------------------------------
ensure_venv() {
  mkdir -p "$cache"
  if command -v flock >/dev/null 2>&1; then
    exec 9>"$cache/autobahn-venv.lock"
    flock 9
  fi
  local want
  want="$(sha256sum "$reqs" | cut -d' ' -f1) $py2"
  if [[ -x $venv/bin/wstest && -f $venv/.star-pins && "$(cat "$venv/.star-pins")" == "$want" ]] &&
     "$venv/bin/python" -c 'import autobahntestsuite, wsaccel' >/dev/null 2>&1; then
    return 0
  fi
  [[ -x $py2 ]] || die "Python 2.7 not found at $py2 (set AUTOBAHN_PYTHON2)"
  echo "autobahn.sh: building $venv (Python 2.7, pins from .ci/autobahn-requirements.txt)" >&2
  if ! "$py2" -c 'import sys, virtualenv
v = tuple(int(x) for x in virtualenv.__version__.split(".")[:2])
sys.exit(0 if v < (20, 22) else 1)' >/dev/null 2>&1; then
    # pyenv's pip 19.2 prints a Python 2 deprecation notice on stderr: keep
    # its stderr in a log and show it only when the install fails.
    "$py2" -m pip install -q "${virtualenv_pins[@]}" 2>"$cache/pip-virtualenv.log" ||
      { cat "$cache/pip-virtualenv.log" >&2; die "cannot install virtualenv<20.22 into $py2"; }
  fi
  rm -rf "$venv"
  "$py2" -m virtualenv -q --no-periodic-update "$venv" >/dev/null
  "$venv/bin/pip" install -q -r "$reqs"
  "$venv/bin/python" -c 'import autobahntestsuite, autobahn, twisted, wsaccel' ||
    die "venv at $venv is broken after install"
  echo "$want" >"$venv/.star-pins"
}

if ((!setup_only)); then
  [[ -n $url ]] || { usage >&2; die "missing server URL"; }
  [[ $url =~ ^wss?://([^/:]+|\[[^]]+\])(:([0-9]+))?(/.*)?$ ]] || die "not a ws:// URL: $url"
  host=${BASH_REMATCH[1]}
  port=${BASH_REMATCH[3]}
  host=${host#[}; host=${host%]}
  if [[ -z $port ]]; then
    if [[ $url == wss://* ]]; then port=443; else port=80; fi
  fi
fi

ensure_venv
exec 9>&-   # release the setup lock (if taken) before the long run
if ((setup_only)); then
  echo "autobahn.sh: venv ready: $venv ($("$venv/bin/pip" freeze 2>/dev/null | grep -i '^autobahntestsuite=='))"
  exit 0
fi

cases=${cases:-$default_cases}
if [[ $compression == 1 ]]; then
  [[ ,$cases, == *,12.\*,* ]] || cases+=',12.*'
  [[ ,$cases, == *,13.\*,* ]] || cases+=',13.*'
elif [[ ,$cases, != *,12.* && ,$cases, != *,13.* ]]; then
  # 12.* / 13.* need permessage-deflate: skipped unless asked for (by
  # --compression or by naming them in CASES), also when CASES is "*".
  [[ -z $exclude ]] || exclude+=,
  exclude+='12.*,13.*'
fi

# --- wait until the server accepts TCP connections --------------------------
deadline=$((SECONDS + wait_s))
until (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; do
  ((SECONDS < deadline)) || die "nothing listening on $host:$port after ${wait_s}s"
  sleep 0.2
done

# --- run wstest ----------------------------------------------------------------
if [[ -n $report_dir ]]; then
  mkdir -p "$report_dir"
  work=$(cd "$report_dir" && pwd)
  keep=1
else
  work=$(mktemp -d "${TMPDIR:-/tmp}/star-autobahn.XXXXXX")
  keep=0
fi
rm -rf "$work/reports"

python3 - "$work/spec.json" "$url" "$agent" "$cases" "$exclude" "$work/reports" <<'PY'
import json, sys
path, url, agent, cases, exclude, outdir = sys.argv[1:]
split = lambda s: [c.strip() for c in s.split(",") if c.strip()]
spec = {
    "outdir": outdir,
    "servers": [{"agent": agent, "url": url, "options": {"version": 18}}],
    "cases": split(cases),
    "exclude-cases": split(exclude),
    "exclude-agent-cases": {},
}
with open(path, "w") as f:
    json.dump(spec, f, indent=2)
PY

echo "autobahn.sh: wstest fuzzingclient -> $url  cases=$cases  exclude=${exclude:-none}"
start=$(date +%s.%N)
set +e
if [[ $verbose == 1 ]]; then
  (cd "$work" && timeout -k 10 "$timeout_s" "$venv/bin/wstest" -m fuzzingclient -s spec.json) 2>&1 | tee "$work/wstest.log"
  wstest_rc=${PIPESTATUS[0]}
else
  (cd "$work" && timeout -k 10 "$timeout_s" "$venv/bin/wstest" -m fuzzingclient -s spec.json) >"$work/wstest.log" 2>&1
  wstest_rc=$?
fi
set -e
end=$(date +%s.%N)
wall=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')

if [[ ! -f $work/reports/index.json ]]; then
  echo "autobahn.sh: wstest exited $wstest_rc after ${wall}s without writing reports/index.json" >&2
  [[ $wstest_rc == 124 || $wstest_rc == 137 ]] && echo "autobahn.sh: (timed out after ${timeout_s}s)" >&2
  echo "--- last lines of $work/wstest.log ---" >&2
  tail -n 20 "$work/wstest.log" >&2 || true
  echo "autobahn: 0 passed, 1 failed"
  exit 1
fi

echo
set +e
python3 "$summary" "$work/reports/index.json" --agent "$agent" --wstest-log "$work/wstest.log" >"$work/summary.txt" 2>&1
summary_rc=$?
set -e
closing=$(tail -n 1 "$work/summary.txt")
if [[ $closing =~ ^autobahn:\ [0-9]+\ passed ]]; then
  sed '$d' "$work/summary.txt"
else
  cat "$work/summary.txt"
  closing='autobahn: 0 passed, 1 failed'
  ((summary_rc != 0)) || summary_rc=1
fi
if ((wstest_rc != 0)); then
  echo "autobahn.sh: wstest exited with status $wstest_rc (see $work/wstest.log)"
  ((summary_rc != 0)) || summary_rc=1
fi
echo "autobahn.sh: wall time ${wall}s for $(grep -c '^Running test case' "$work/wstest.log" || true) cases"
if ((summary_rc == 0 && keep == 0)); then
  rm -rf "$work"
else
  echo "autobahn.sh: reports kept in $work/reports (index.html for the details)"
fi
echo "$closing"
exit "$summary_rc"
