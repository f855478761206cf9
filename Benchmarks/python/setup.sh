#!/usr/bin/env bash
# Creates Benchmarks/.venv (git-ignored) with the pinned Python peers of run-ws.sh:
# Uvicorn + Starlette (websockets) and picows. Safe to run again: it reinstalls only what
# changed in requirements.txt.
#
#   python/setup.sh                  # uses $PYTHON, else pyenv's 3.11.7, else python3
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-}
if [[ -z $PYTHON ]]; then
    if [[ -x $HOME/.pyenv/versions/3.11.7/bin/python3 ]]; then
        PYTHON=$HOME/.pyenv/versions/3.11.7/bin/python3
    else
        PYTHON=python3
    fi
fi
if [[ ! -x .venv/bin/python ]]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r python/requirements.txt
.venv/bin/python -c 'import uvicorn, starlette, websockets, picows, uvloop
print("venv ready: python", __import__("sys").version.split()[0], "uvicorn", uvicorn.__version__,
      "starlette", starlette.__version__, "websockets", websockets.__version__, "picows", picows.__version__)'
