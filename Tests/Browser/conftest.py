"""Fixtures for the browser suite: headless Chromium (over CDP, cdp.py) against the
real Star server binaries.

  chromium      the browser executable ($CHROMIUM, else Debian's); missing: the test FAILS
                (never skips), with a pointer to .ci/browser.sh
  browser       one cdp.Browser for the whole session (throw-away profile, killed at the end)
  page          a fresh about:blank tab per test, closed afterwards
  new_page      a factory for more tabs in one test: new_page(url="about:blank"); each is
                closed at the end of the test (its console printed, like `page`'s)
  echo_server   Examples/.build/debug/echo on a free loopback port, once per module (route /echo)
  postgres      the PostgreSQL the chat tests share (session-scoped): $STAR_TEST_POSTGRES_URL,
                else `.ci/postgres.sh start` (Tests/support/star_processes.py, `Postgres`)
  chat_servers  two Examples/.build/debug/chat processes on free ports, both with
                --broadcast-url <postgres>, once per module (test_chat_browser.py)

For https (test_http2_browser.py, the TLS variant in test_chat_browser.py):

  tls_cert      a throw-away self-signed certificate for 127.0.0.1 and localhost, made with
                openssl (session-scoped): .cert, .key, .spki (base64 SHA-256 of its public key),
                .server_args (the --ssl-certfile/--ssl-keyfile options for a server)
  tls_browser   a second Chromium (session-scoped) that trusts that one certificate only:
                --ignore-certificate-errors-spki-list=<spki>, not --ignore-certificate-errors
  tls_page      a fresh about:blank tab of tls_browser per test (like `page`)
  tls_new_page  the `new_page` factory for tls_browser

Servers are never built here: a missing binary (or PostgreSQL) fails the tests. Binaries
come from $STAR_BIN_DIR (default: <repo>/Examples/.build/debug). Every test also has a hard SIGALRM
deadline (default 90 s, or the `deadline(seconds)` marker) on top of the timeouts of each
CDP call. The process helpers are shared with Tests/Peers: Tests/support/star_processes.py.
"""

import base64
import hashlib
import os
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest

BROWSER_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BROWSER_DIR))  # for `import cdp`
sys.path.insert(0, str(BROWSER_DIR.parent / "support"))  # for `import star_processes`

import cdp  # noqa: E402
import star_processes  # noqa: E402
from star_processes import BIN_DIR, HOST, ROOT, StarServer, free_port  # noqa: E402,F401

DEFAULT_DEADLINE = 90.0


def pytest_configure(config):
    config.addinivalue_line("markers", star_processes.deadline_marker_help(DEFAULT_DEADLINE))


_hard_deadline = star_processes.hard_deadline_fixture(DEFAULT_DEADLINE)


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


def _close_page(p, label=""):
    for line in p.console:
        print("console%s:" % label, line)
    p.close()


@pytest.fixture
def page(browser):
    """A fresh about:blank tab; its console is printed when the test fails (pytest shows
    captured output of failed tests)."""
    p = browser.new_page("about:blank")
    try:
        yield p
    finally:
        _close_page(p)


@pytest.fixture
def new_page(browser):
    """`new_page(url="about:blank")` opens another tab (and waits for its load event); all are
    closed at the end of the test, their consoles printed (labelled by opening order)."""
    pages = []

    def open_page(url="about:blank"):
        p = browser.new_page(url)
        pages.append(p)
        return p

    try:
        yield open_page
    finally:
        for i, p in enumerate(pages):
            _close_page(p, " [page %d]" % i)


# -- https: a certificate made at test time, and a browser that trusts it ---------------

@pytest.fixture(scope="session")
def tls_cert(tmp_path_factory):
    """A self-signed EC certificate for 127.0.0.1 and localhost (2 days), made now with openssl;
    `spki` is what Chromium's --ignore-certificate-errors-spki-list wants: the base64 SHA-256 of
    the certificate's SubjectPublicKeyInfo (DER)."""
    if shutil.which("openssl") is None:
        pytest.fail("openssl is needed to make the test certificate", pytrace=False)
    d = tmp_path_factory.mktemp("browser-tls")

    def openssl(*args, data=None):
        done = subprocess.run(["openssl", *args], cwd=d, input=data, capture_output=True, timeout=30)
        assert done.returncode == 0, "openssl %s failed:\n%s" % (" ".join(args), done.stderr.decode(errors="replace"))
        return done.stdout

    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", "server.key", "-out", "server.pem", "-days", "2", "-subj", "/CN=localhost",
            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-addext", "basicConstraints=critical,CA:FALSE",
            "-addext", "extendedKeyUsage=serverAuth")
    public_key = openssl("x509", "-in", "server.pem", "-pubkey", "-noout")
    der = openssl("pkey", "-pubin", "-outform", "DER", data=public_key)
    spki = base64.b64encode(hashlib.sha256(der).digest()).decode()
    cert, key = d / "server.pem", d / "server.key"
    return types.SimpleNamespace(cert=cert, key=key, spki=spki,
                                 server_args=["--ssl-certfile", str(cert), "--ssl-keyfile", str(key)])


@pytest.fixture(scope="session")
def tls_browser(chromium, tls_cert):
    """Chromium that accepts tls_cert (pinned by its public key) and no other invalid certificate."""
    try:
        b = cdp.Browser(chromium, extra_args=["--ignore-certificate-errors-spki-list=" + tls_cert.spki])
    except cdp.BrowserError as exc:
        pytest.fail("cannot start %s: %s" % (chromium, exc), pytrace=False)
    try:
        yield b
    finally:
        b.close()


@pytest.fixture
def tls_page(tls_browser):
    p = tls_browser.new_page("about:blank")
    try:
        yield p
    finally:
        _close_page(p)


@pytest.fixture
def tls_new_page(tls_browser):
    """`new_page` for tls_browser: tls_new_page(url="about:blank"), all closed at the end of the test."""
    pages = []

    def open_page(url="about:blank"):
        p = tls_browser.new_page(url)
        pages.append(p)
        return p

    try:
        yield open_page
    finally:
        for i, p in enumerate(pages):
            _close_page(p, " [page %d]" % i)


# -- the servers -------------------------------------------------------------------------

echo_server = star_processes.server_fixture("echo", always_fail=True)

postgres = star_processes.postgres_fixture()
chat_servers = star_processes.chat_servers_fixture(always_fail=True)
