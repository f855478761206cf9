"""What the Python suites (Tests/Peers, Tests/Browser) share: real Star server binaries on
free loopback ports, a hard per-test deadline, and the throwaway PostgreSQL of .ci/postgres.sh.

Each suite's conftest.py puts this directory on sys.path and imports it; nothing here is a
test. A missing binary or peer goes through `missing()`: a failure when CI=true, a skip
otherwise (Tests/Browser passes `always_fail=True`: it never skips).

  free_port(), wait_for_port(proc, port, timeout), wait_for_unix_socket(proc, path, timeout)
  StarServer                       one running binary: .ws(path), .http(path), .alive(), .log_tail(), .stop()
  binary_path(name)                $STAR_BIN_DIR/NAME (default <repo>/Examples/.build/debug/NAME)
  start_server(name, ...)          starts it on a free port and waits until it listens
  stop_server(server)              SIGTERM, then SIGKILL after 5 s
  finish_server(s), finish_servers(list)   stop, and fail when one died early or exited non-zero
  server_fixture(name, ...)        a module-scoped pytest fixture running one binary
  hard_deadline_fixture(default)   the autouse SIGALRM deadline (marker `deadline(seconds)`)
  Postgres, postgres_fixture()     a session-scoped PostgreSQL URL (see Postgres)
  chat_servers_fixture()           two module-scoped `chat` processes sharing that PostgreSQL
  post_note(server, text)          the demo's POST /notes: the new note (201 checked)
"""

import http.client
import json
import os
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
BIN_DIR = Path(os.environ.get("STAR_BIN_DIR") or ROOT / "Examples" / ".build" / "debug")
HOST = "127.0.0.1"
POSTGRES_SH = ROOT / ".ci" / "postgres.sh"


def in_ci():
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def missing(what, always_fail=False):
    """A required peer or binary is absent: a failure in CI (or with always_fail), a skip elsewhere."""
    if always_fail or in_ci():
        pytest.fail("%s (CI=true: a missing peer is a failure)" % what if in_ci() else what, pytrace=False)
    pytest.skip(what)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def wait_for_port(proc, port, timeout):
    """True once 127.0.0.1:port accepts a connection; False when `proc` exits or time runs out."""
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


def wait_for_unix_socket(proc, path, timeout):
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


# -- server binaries ------------------------------------------------------------------------

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

    def http(self, path="/"):
        return "http://%s:%d%s" % (self.host, self.port, path)

    def log_tail(self, limit=4000):
        try:
            return Path(self.log_path).read_text(errors="replace")[-limit:]
        except OSError:
            return ""

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        stop_server(self)


def binary_path(name, always_fail=False):
    """The server binary `name`; a missing one fails (CI, always_fail) or skips the test."""
    binary = BIN_DIR / name
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        missing("server binary %s is missing: build them first (`swift build --package-path Examples`); the tests do not build it"
                % binary, always_fail)
    return binary


def start_server(name, attempts=3, timeout=20.0, env=None, args=(), quiet=True, port_via="arg", uds=None,
                 always_fail=False):
    """Starts `name` and waits until it accepts connections; returns its StarServer.

    The command line is `--host 127.0.0.1`, then `--port N` on a fresh free port (port_via="arg";
    with port_via="env" the port goes in STAR_PORT instead), then `--log-level warning
    --no-access-log` when `quiet`, then `args`; `env` adds variables. With `uds`, the server is
    given `--uds PATH` instead of a port, and readiness is a connection to that socket. A few
    attempts, in case another process takes the port first; the test fails when all fail.
    """
    binary = binary_path(name, always_fail)
    last = ""
    command = []
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
        ready = (wait_for_unix_socket(proc, uds, timeout) if uds is not None
                 else wait_for_port(proc, port, timeout))
        if ready:
            return server
        stop_server(server)
        last = "exit status %s; log:\n%s" % (proc.returncode, server.log_tail())
        remove_log(server)
    pytest.fail("%s did not start listening (%d attempts, last: %s): %s" % (name, attempts, " ".join(command), last),
                pytrace=False)


def stop_server(server):
    """SIGTERM, then SIGKILL when it has not exited within 5 s. Idempotent."""
    if server.proc.poll() is None:
        server.proc.terminate()
        try:
            server.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            server.proc.kill()
            server.proc.wait(timeout=5)


def remove_log(server):
    try:
        os.unlink(server.log_path)
    except OSError:
        pass


def finish_server(server):
    """Stops a server that a module-scoped fixture ran, removes its log, and fails when it had
    died on its own during the module or did not exit with 0 on SIGTERM."""
    died = server.proc.poll()
    stop_server(server)
    stopped = server.proc.returncode
    tail = server.log_tail()
    remove_log(server)
    if died is not None:
        pytest.fail("%s exited by itself during the tests (status %s); log:\n%s" % (server.name, died, tail),
                    pytrace=False)
    if stopped != 0:
        pytest.fail("%s did not shut down cleanly on SIGTERM (status %s); log:\n%s" % (server.name, stopped, tail),
                    pytrace=False)


def finish_servers(servers):
    """finish_server for each (all are stopped even when one fails); one failure names them all."""
    failures = []
    for server in servers:
        try:
            finish_server(server)
        except pytest.fail.Exception as exc:
            failures.append(str(exc))
    if failures:
        pytest.fail("\n\n".join(failures), pytrace=False)


def server_fixture(name, env=None, args=(), always_fail=False):
    """A module-scoped fixture: `name` on a free port for the whole module (see start_server),
    stopped at the end; a server that died or did not shut down cleanly fails the teardown."""
    @pytest.fixture(scope="module")
    def fixture():
        server = start_server(name, env=env, args=args, always_fail=always_fail)
        try:
            yield server
        finally:
            finish_server(server)

    return fixture


# -- the per-test deadline ------------------------------------------------------------------

class Deadline(Exception):
    pass


def hard_deadline_fixture(default_seconds):
    """The autouse fixture of a suite: SIGALRM raises Deadline in the test after its deadline
    (`default_seconds`, or the `deadline(seconds)` marker): a last resort on top of the
    timeouts the tests use themselves. Register the marker with `deadline_marker_help()`."""
    @pytest.fixture(autouse=True)
    def _hard_deadline(request):
        marker = request.node.get_closest_marker("deadline")
        seconds = float(marker.args[0]) if marker else default_seconds

        def expired(signum, frame):
            raise Deadline("test exceeded its hard deadline of %gs" % seconds)

        previous = signal.signal(signal.SIGALRM, expired)
        signal.setitimer(signal.ITIMER_REAL, seconds)
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)

    return _hard_deadline


def deadline_marker_help(default_seconds):
    return "deadline(seconds): hard time limit of one test (default %g s)" % default_seconds


# -- PostgreSQL -----------------------------------------------------------------------------

class Postgres:
    """The PostgreSQL that tests share: `url` (postgres://user:password@127.0.0.1:port/db).

    From $STAR_TEST_POSTGRES_URL when set (as .ci/run sets it), else from `.ci/postgres.sh
    start` (which installs and creates a throwaway cluster; it is stopped again at the end of
    the session when it was not running before). `managed` is True when the URL is the cluster
    of .ci/postgres.sh, which `stop()`, `start()` and `restart()` drive (the outage tests need
    that; with another server they fail in CI and skip elsewhere).
    """

    def __init__(self, url, managed, started_here):
        self.url = url
        self.managed = managed
        self.started_here = started_here

    @staticmethod
    def script(*args, timeout=120):
        """Runs .ci/postgres.sh ARGS; returns the CompletedProcess (stdout, stderr as text)."""
        return subprocess.run(["bash", str(POSTGRES_SH), *args], stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, timeout=timeout)

    def _control(self, command, timeout=60):
        if not self.managed:
            missing("%s is not the cluster of .ci/postgres.sh, so the test cannot %s it" % (self.url, command))
        result = self.script(command, timeout=timeout)
        if result.returncode != 0:
            pytest.fail(".ci/postgres.sh %s failed (exit %d):\n%s" % (command, result.returncode, result.stderr),
                        pytrace=False)
        if command in ("start", "restart") and result.stdout.strip() != self.url:
            pytest.fail(".ci/postgres.sh %s printed %r, not the URL the tests use (%r)"
                        % (command, result.stdout.strip(), self.url), pytrace=False)
        return result

    def stop(self):
        self._control("stop")

    def start(self):
        self._control("start")

    def restart(self):
        self._control("restart")

    def running(self):
        """Whether the cluster answers .ci/postgres.sh status (managed clusters only)."""
        return self.managed and self.script("status", timeout=30).returncode == 0

    def port(self):
        return int(self.url.rsplit(":", 1)[1].split("/", 1)[0])


def postgres_fixture():
    """A session-scoped fixture yielding a Postgres (see there). No PostgreSQL: the test fails
    when CI=true, and skips otherwise. A managed cluster that a test left stopped is started
    again for the next test."""
    @pytest.fixture(scope="session")
    def postgres():
        url = os.environ.get("STAR_TEST_POSTGRES_URL", "").strip()
        started_here = False
        if url:
            known = Postgres.script("url", timeout=30)
            managed = known.returncode == 0 and known.stdout.strip() == url
        else:
            was_running = Postgres.script("status", timeout=30).returncode == 0
            try:
                result = Postgres.script("start", timeout=600)  # may apt-get install PostgreSQL first
            except subprocess.TimeoutExpired:
                missing("PostgreSQL: `.ci/postgres.sh start` did not finish within 600 s")
            if result.returncode != 0 or not result.stdout.strip().startswith("postgres://"):
                missing("PostgreSQL: `.ci/postgres.sh start` failed (exit %d): %s"
                        % (result.returncode, result.stderr.strip()[-2000:]))
            url, managed, started_here = result.stdout.strip(), True, not was_running
        pg = Postgres(url, managed, started_here)
        try:
            with socket.create_connection((HOST, pg.port()), timeout=5):
                pass
        except (OSError, ValueError, IndexError) as exc:
            if not (managed and Postgres.script("start", timeout=120).returncode == 0):
                missing("PostgreSQL at %s does not accept connections: %s" % (url, exc))
        try:
            yield pg
        finally:
            if started_here:
                Postgres.script("stop", timeout=60)

    return postgres


def chat_servers_fixture(always_fail=False):
    """A module-scoped fixture: two `chat` processes with `--broadcast-url <postgres>` (it uses
    the suite's `postgres` fixture), so that one room spans both; a server that died or did not
    shut down cleanly fails the teardown (finish_servers)."""
    @pytest.fixture(scope="module")
    def chat_servers(postgres):
        servers = []
        try:
            for _ in range(2):
                servers.append(start_server("chat", args=["--broadcast-url", postgres.url], always_fail=always_fail))
            yield servers
        finally:
            finish_servers(servers)

    return chat_servers


def post_note(server, text, timeout=5):
    """Adds a note to a running `demo` (POST /notes, JSON) and returns it; fails unless 201."""
    conn = http.client.HTTPConnection(HOST, server.port, timeout=timeout)
    try:
        conn.request("POST", "/notes", body=json.dumps({"text": text}), headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        body = response.read()
        assert response.status == 201, "POST /notes: %d %r" % (response.status, body)
        note = json.loads(body)
        assert note["text"] == text and isinstance(note["id"], int), note
        return note
    finally:
        conn.close()

