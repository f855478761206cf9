"""Fixtures for the outside-peer suite: real Star server binaries on free loopback ports.

Each server binary is started once per test module (a module-scoped fixture), on
127.0.0.1 and a free port, with `--port N --log-level warning --no-access-log`;
the fixture waits until the port accepts connections and kills the process at the
end. A server that died on its own during the module fails the module's teardown.

The function-scoped `start_server` fixture starts a binary with extra options or
STAR_* variables for one test (test_server_options.py) and stops it afterwards.

Binaries come from $STAR_BIN_DIR (default: <repo>/.build/debug). A missing binary
fails the tests when CI=true (and skips them otherwise, for a developer who built
only part of the package).

Every test is also bounded by a hard SIGALRM deadline (default 60 s, or the
`deadline(seconds)` marker) on top of the timeouts the tests use themselves.
"""

import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

PEERS_DIR = Path(__file__).resolve().parent
ROOT = PEERS_DIR.parent.parent
BIN_DIR = Path(os.environ.get("STAR_BIN_DIR") or ROOT / ".build" / "debug")
HOST = "127.0.0.1"
DEFAULT_DEADLINE = 60.0

sys.path.insert(0, str(PEERS_DIR))  # for `import pingpong_client`


def in_ci():
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def missing(what):
    """A required peer or binary is absent: a failure in CI, a skip elsewhere."""
    if in_ci():
        pytest.fail("%s (CI=true: a missing peer is a failure)" % what, pytrace=False)
    pytest.skip(what)


def raise_fd_limit(wanted=8192):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def pytest_configure(config):
    config.addinivalue_line("markers", "deadline(seconds): hard time limit of one test (default 60 s)")
    raise_fd_limit()


class _Deadline(Exception):
    pass


@pytest.fixture(autouse=True)
def _hard_deadline(request):
    """A last-resort bound on every test: SIGALRM raises in the test after its deadline."""
    marker = request.node.get_closest_marker("deadline")
    seconds = float(marker.args[0]) if marker else DEFAULT_DEADLINE

    def expired(signum, frame):
        raise _Deadline("test exceeded its hard deadline of %gs" % seconds)

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class StarServer:
    """One running server binary."""

    def __init__(self, name, proc, port, log_path, command=None, uds=None):
        self.name = name
        self.proc = proc
        self.port = port  # None when the server listens on a Unix domain socket (`uds`)
        self.host = HOST
        self.log_path = log_path
        self.command = command
        self.uds = uds

    def ws(self, path):
        return "ws://%s:%d%s" % (self.host, self.port, path)

    def log_tail(self, limit=4000):
        try:
            return Path(self.log_path).read_text(errors="replace")[-limit:]
        except OSError:
            return ""

    def alive(self):
        return self.proc.poll() is None


def _wait_for_port(proc, port, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def _wait_for_unix_socket(proc, path, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(0.5)
                s.connect(path)
                return True
        except OSError:
            time.sleep(0.05)
    return False


def binary_path(name):
    """The server binary `name`; a missing one fails (CI) or skips the test."""
    binary = BIN_DIR / name
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        missing("server binary %s is missing (build it with `swift build`)" % binary)
    return binary


def _start(name, attempts=3, timeout=20.0, env=None, args=(), quiet=True, port_via="arg", uds=None):
    """Starts `name` and waits until it accepts connections.

    The command line is `--host 127.0.0.1`, then `--port N` on a fresh free port (port_via="arg";
    with port_via="env" the port goes in STAR_PORT instead), then `--log-level warning
    --no-access-log` when `quiet`, then `args`. With `uds`, the server is given `--uds PATH`
    instead of a port, and readiness is a connection to that socket.
    """
    binary = binary_path(name)
    last = ""
    for _ in range(attempts):
        port = free_port()
        command = [str(binary), "--host", HOST]
        extra_env = dict(env or {})
        if uds is not None:
            command += ["--uds", uds]
        elif port_via == "arg":
            command += ["--port", str(port)]
        elif port_via == "env":
            extra_env["STAR_PORT"] = str(port)
        else:
            raise ValueError("port_via must be 'arg' or 'env', not %r" % (port_via,))
        if quiet:
            command += ["--log-level", "warning", "--no-access-log"]
        command += [str(a) for a in args]
        log = tempfile.NamedTemporaryFile(prefix="star-%s-" % name, suffix=".log", delete=False)
        proc = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=str(ROOT),
            env=dict(os.environ, **extra_env),
        )
        log.close()
        server = StarServer(name, proc, None if uds is not None else port, log.name, command=command, uds=uds)
        ready = (_wait_for_unix_socket(proc, uds, timeout) if uds is not None
                 else _wait_for_port(proc, port, timeout))
        if ready:
            return server
        _stop(server)
        last = "exit status %s; log:\n%s" % (proc.returncode, server.log_tail())
    pytest.fail("%s did not start listening (%d attempts, %s): %s" % (name, attempts, " ".join(command), last),
                pytrace=False)


def _stop(server):
    if server.proc.poll() is None:
        server.proc.terminate()
        try:
            server.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            server.proc.kill()
            server.proc.wait(timeout=5)


def _server_fixture(name, env=None):
    @pytest.fixture(scope="module")
    def fixture():
        server = _start(name, env=env)
        try:
            yield server
        finally:
            died = server.proc.poll()
            _stop(server)
            stopped = server.proc.returncode
            tail = server.log_tail()
            try:
                os.unlink(server.log_path)
            except OSError:
                pass
        if died is not None:
            pytest.fail("%s exited by itself during the tests (status %s); log:\n%s" % (name, died, tail),
                        pytrace=False)
        if stopped != 0:
            pytest.fail("%s did not shut down cleanly on SIGTERM (status %s); log:\n%s" % (name, stopped, tail),
                        pytrace=False)

    return fixture


pingpong_server = _server_fixture("pingpong")
pingpong_standalone_server = _server_fixture("pingpong-standalone")
echo_server = _server_fixture("echo")
ws_test_server = _server_fixture("ws-test-server")
# The same server without keepalive pings, for clients that deliberately never read.
ws_test_server_no_keepalive = _server_fixture("ws-test-server", env={"STAR_TEST_KEEPALIVE": "off"})


@pytest.fixture
def start_server():
    """A function-scoped starter: `start_server(name, args=[...], env={...}, quiet=True,
    port_via="arg"|"env", uds=None)` runs a binary with extra options (see `_start`) and
    returns its StarServer. Every server it started is stopped (SIGTERM, then SIGKILL) at the
    end of the test, and its log file removed; a test that stops a server itself may do so.
    """
    servers = []

    def start(name, **kwargs):
        server = _start(name, attempts=kwargs.pop("attempts", 3), **kwargs)
        servers.append(server)
        return server

    yield start
    for server in servers:
        _stop(server)
        try:
            os.unlink(server.log_path)
        except OSError:
            pass
