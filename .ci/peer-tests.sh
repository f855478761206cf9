#!/usr/bin/env bash
# Outside-peer tests: the pytest suite in Tests/Peers/ (Python `websockets` and raw
# sockets) against the real server binaries in Examples/.build/debug/ (pingpong,
# pingpong-standalone, echo, ws-test-server, demo, chat), which `.ci/run` builds first. The
# suite starts and stops each server itself, on free ports of 127.0.0.1.
# test_chat_broadcast.py (two `chat` processes) also needs PostgreSQL: $STAR_TEST_POSTGRES_URL,
# else it runs `.ci/postgres.sh start` itself. `.ci/run` runs it in a step of its own, and
# leaves it out here (--ignore=Tests/Peers/test_chat_broadcast.py).
#
# Usage: .ci/peer-tests.sh [PYTEST ARGS...]   e.g. .ci/peer-tests.sh -k echo
# Env:   STAR_BIN_DIR  where the binaries are (default: Examples/.build/debug)
#        CI=true       a missing binary or peer fails the tests instead of skipping them
# Exit:  pytest's status, except that "no tests collected" (5) is a failure too (1).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

py=$(.ci/python-peers.sh)   # the venv with the pinned websockets and pytest
# curl plays a real HTTP client in test_http_streaming.py (Debian's; on the image already, else installed).
command -v curl >/dev/null || { apt-get update -qq && apt-get install -y -qq curl >/dev/null; }
# nghttp and h2load (Debian's nghttp2-client) are HTTP/2 peers in test_http2.py.
command -v h2load >/dev/null || { apt-get update -qq && apt-get install -y -qq nghttp2-client >/dev/null; }

export PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
set +e
timeout -k 10 300 "$py" -m pytest -q -p no:cacheprovider -rfEs Tests/Peers "$@"
status=$?
set -e
case $status in
  0) ;;
  5) echo "peer-tests: pytest collected no tests: failing" >&2; status=1 ;;
  124|137) echo "peer-tests: the suite did not finish within 300 s" >&2 ;;
  *) echo "peer-tests: pytest failed (exit $status)" >&2 ;;
esac
exit "$status"
