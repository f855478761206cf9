"""Fixtures for the browser suite: headless Chromium (over CDP, cdp.py) against the
real Star server binaries.

  chromium      the browser executable ($CHROMIUM, else Debian's); missing: the test FAILS
                (never skips), with a pointer to .ci/browser.sh
  browser       one cdp.Browser for the whole session (throw-away profile, killed at the end)
  page          a fresh about:blank tab per test, closed afterwards
  echo_server   .build/debug/echo on a free loopback port, once per module (route /echo);
                never built here: a missing binary fails the tests

Binaries come from $STAR_BIN_DIR (default: <repo>/.build/debug). Every test also has a
hard SIGALRM deadline (default 90 s, or the `deadline(seconds)` marker) on top of the
timeouts of each CDP call.
"""

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

BROWSER_DIR = Path(__file__).resolve().parent
ROOT = BROWSER_DIR.parent.parent
BIN_DIR = Path(os.environ.get("STAR_BIN_DIR") or ROOT / ".build" / "debug")
HOST = "127.0.0.1"
DEFAULT_DEADLINE = 90.0

sys.path.insert(0, str(BROWSER_DIR))  # for `import cdp`

import cdp  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line("markers", "deadline(seconds): hard time limit of one test (default 90 s)")


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


# -- the browser -------------------------------------------------------------------------

@pytest.fixture(scope="session")
def chromium():
    binary = cdp.find_chromium()
    if not binary:
        why = ("$CHROMIUM=%s is not an executable" % os.environ["CHROMIUM"] if os.environ.get("CHROMIUM")
               else "Chromium is not installed")
        pytest.fail("%s: run .ci/browser.sh (browser tests fail, never skip, without a browser)" % why,
                    pytrace=False)
    return binary


@pytest.fixture(scope="session")
def browser(chromium):
    try:
        b = cdp.Browser(chromium)
    except cdp.BrowserError as exc:
        pytest.fail("cannot start %s: %s" % (chromium, exc), pytrace=False)
    try:
        yield b
    finally:
        b.close()


@pytest.fixture
def page(browser):
    """A fresh about:blank tab; its console is printed when the test fails (pytest shows
    captured output of failed tests)."""
    p = browser.new_page("about:blank")
    try:
        yield p
    finally:
        for line in p.console:
            print("console:", line)
        p.close()


# -- the server --------------------------------------------------------------------------

def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class StarServer:
    def __init__(self, name, proc, port, log_path, command):
        self.name, self.proc, self.port, self.log_path, self.command = name, proc, port, log_path, command

    def ws(self, path):
        return "ws://%s:%d%s" % (HOST, self.port, path)

    def alive(self):
        return self.proc.poll() is None

    def log_tail(self, limit=4000):
        try:
            return Path(self.log_path).read_text(errors="replace")[-limit:]
        except OSError:
            return ""

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


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


def start_server(name, args=(), attempts=3, timeout=20.0):
    """Starts .build/debug/NAME --host 127.0.0.1 --port N --log-level warning --no-access-log
    on a free port (a few attempts, in case another process takes the port first)."""
    binary = BIN_DIR / name
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        pytest.fail("server binary %s is missing: build it first (`swift build`); the browser "
                    "tests do not build it" % binary, pytrace=False)
    last = ""
    for _ in range(attempts):
        port = free_port()
        command = [str(binary), "--host", HOST, "--port", str(port), "--log-level", "warning",
                   "--no-access-log", *map(str, args)]
        log = tempfile.NamedTemporaryFile(prefix="star-%s-" % name, suffix=".log", delete=False)
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                cwd=str(ROOT))
        log.close()
        server = StarServer(name, proc, port, log.name, command)
        if _wait_for_port(proc, port, timeout):
            return server
        server.stop()
        last = "exit status %s; log:\n%s" % (proc.returncode, server.log_tail())
        os.unlink(log.name)
    pytest.fail("%s did not start listening (%d attempts, last: %s): %s"
                % (name, attempts, " ".join(command), last), pytrace=False)


@pytest.fixture(scope="module")
def echo_server():
    server = start_server("echo")
    try:
        yield server
    finally:
        died = server.proc.poll()
        server.stop()
        stopped = server.proc.returncode
        tail = server.log_tail()
        try:
            os.unlink(server.log_path)
        except OSError:
            pass
    if died is not None:
        pytest.fail("echo exited by itself during the tests (status %s); log:\n%s" % (died, tail), pytrace=False)
    if stopped != 0:
        pytest.fail("echo did not shut down cleanly on SIGTERM (status %s); log:\n%s" % (stopped, tail),
                    pytrace=False)
