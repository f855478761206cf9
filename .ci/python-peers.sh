#!/usr/bin/env bash
# Python 3 venv for the peer scripts in Tests/Peers/ (WebSocket clients that
# play games against a running Star server) and the pytest suite there
# (run by .ci/peer-tests.sh).
#
# Usage:
#   .ci/python-peers.sh                   # create/check the venv, print its python
#   .ci/python-peers.sh SCRIPT [ARGS...]  # same, then run SCRIPT with the venv's python
#   e.g. .ci/python-peers.sh Tests/Peers/pingpong_client.py ws://127.0.0.1:8000/some/path
#        PY=$(.ci/python-peers.sh) && "$PY" Tests/Peers/pingpong_client.py ws://...
#
# Venv: ${STAR_CI_CACHE:-/tmp/star-ci}/py-venv, made with pyenv's Python 3.11.7
# when present (override: PEERS_PYTHON3), else python3 from PATH, holding the
# pins below. Rerunning is cheap: the venv is rebuilt only when the pins or the
# interpreter change. Needs PyPI on the first run (about 5 s).
set -euo pipefail

# Exact pins (websockets 17.4 and pytest 9.2 need Python >= 3.10); pytest's own
# dependencies are pinned too, so that every run gets the same tree.
pins=(websockets==17.4 pytest==9.2.0 iniconfig==2.3.1 packaging==26.4 pluggy==1.7.0 Pygments==2.21.0
      h2==4.4.1 hpack==4.2.0 hyperframe==6.1.0 wsproto==1.3.2 h11==0.16.0)

cache=${STAR_CI_CACHE:-/tmp/star-ci}
venv=$cache/py-venv
if [[ -n ${PEERS_PYTHON3:-} ]]; then
  py3=$PEERS_PYTHON3
elif [[ -x /root/.pyenv/versions/3.11.7/bin/python ]]; then
  py3=/root/.pyenv/versions/3.11.7/bin/python
else
  py3=$(command -v python3) || { echo "python-peers.sh: no python3 found" >&2; exit 2; }
fi

export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1

mkdir -p "$cache"
locked=0
if command -v flock >/dev/null 2>&1; then
  exec 9>"$cache/py-venv.lock"
  flock 9
  locked=1
fi
want="${pins[*]} $py3"
if ! [[ -x $venv/bin/python && -f $venv/.star-pins && "$(cat "$venv/.star-pins")" == "$want" ]] ||
   ! "$venv/bin/python" -c 'import websockets, pytest' >/dev/null 2>&1; then
  echo "python-peers.sh: building $venv (${pins[*]})" >&2
  rm -rf "$venv"
  "$py3" -m venv "$venv"
  "$venv/bin/python" -m pip install -q "${pins[@]}"
  "$venv/bin/python" -c 'import websockets, pytest' ||
    { echo "python-peers.sh: venv at $venv is broken after install" >&2; exit 2; }
  echo "$want" >"$venv/.star-pins"
fi
if ((locked)); then exec 9>&-; fi   # release the lock before running a peer

if (($# == 0)); then
  echo "$venv/bin/python"
else
  exec "$venv/bin/python" "$@"
fi
