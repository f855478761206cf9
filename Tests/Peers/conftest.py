"""Fixtures for the outside-peer suite: real Star server binaries on free loopback ports.

Each server binary is started once per test module (a module-scoped fixture), on
127.0.0.1 and a free port, with `--port N --log-level warning --no-access-log`;
the fixture waits until the port accepts connections and kills the process at the
end. A server that died on its own during the module fails the module's teardown.

The function-scoped `start_server` fixture starts a binary with extra options or
STAR_* variables for one test (test_server_options.py) and stops it afterwards.

`postgres` (session-scoped) is the PostgreSQL that the chat tests share
(test_chat_broadcast.py): $STAR_TEST_POSTGRES_URL, else a throwaway cluster from
`.ci/postgres.sh start` (see Tests/support/star_processes.py, `Postgres`), which a test
may stop, start or restart. `chat_servers` (module-scoped) is a list of two `chat`
processes with `--broadcast-url <postgres>`: one room spans both.

Binaries come from $STAR_BIN_DIR (default: <repo>/Examples/.build/debug). A missing binary
(or PostgreSQL) fails the tests when CI=true (and skips them otherwise, for a
developer who built only part of the package).

Every test is also bounded by a hard SIGALRM deadline (default 60 s, or the
`deadline(seconds)` marker) on top of the timeouts the tests use themselves.

The process helpers are shared with Tests/Browser: Tests/support/star_processes.py.
"""

import resource
import sys
from pathlib import Path

import pytest

PEERS_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(PEERS_DIR))  # for `import pingpong_client`
sys.path.insert(0, str(PEERS_DIR.parent / "support"))  # for `import star_processes`

import star_processes  # noqa: E402
from star_processes import (  # noqa: E402,F401  (names the test modules import from conftest)
    BIN_DIR, HOST, ROOT, StarServer, binary_path, free_port, in_ci, missing,
)

DEFAULT_DEADLINE = 60.0


def raise_fd_limit(wanted=8192):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def pytest_configure(config):
    config.addinivalue_line("markers", star_processes.deadline_marker_help(DEFAULT_DEADLINE))
    raise_fd_limit()


_hard_deadline = star_processes.hard_deadline_fixture(DEFAULT_DEADLINE)

_start = star_processes.start_server
_stop = star_processes.stop_server
_server_fixture = star_processes.server_fixture

pingpong_server = _server_fixture("pingpong")
pingpong_standalone_server = _server_fixture("pingpong-standalone")
echo_server = _server_fixture("echo")
ws_test_server = _server_fixture("ws-test-server")
# The same server without keepalive pings, for clients that deliberately never read.
ws_test_server_no_keepalive = _server_fixture("ws-test-server", env={"STAR_TEST_KEEPALIVE": "off"})

postgres = star_processes.postgres_fixture()
chat_servers = star_processes.chat_servers_fixture()


@pytest.fixture
def start_server():
    """A function-scoped starter: `start_server(name, args=[...], env={...}, quiet=True,
    port_via="arg"|"env", uds=None)` runs a binary with extra options (see
    star_processes.start_server) and returns its StarServer. Every server it started is stopped
    (SIGTERM, then SIGKILL) at the end of the test, and its log file removed; a test that stops a
    server itself may do so.
    """
    servers = []

    def start(name, **kwargs):
        server = _start(name, attempts=kwargs.pop("attempts", 3), **kwargs)
        servers.append(server)
        return server

    yield start
    for server in servers:
        _stop(server)
        star_processes.remove_log(server)
