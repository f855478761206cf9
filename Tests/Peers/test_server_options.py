"""Outside-peer tests of the server's options (Sources/StarServer/CLI/ServerOptions.swift):
the real binaries started with command-line options or STAR_* variables, observed from
outside with raw sockets, `ssl`, `http.client` and the `websockets` client.

Servers (started per test with conftest's `start_server`, or the module-scoped
`ws_test_server` fixture for the default options):

  ws-test-server  Examples/Sources/WebSocketTestServer/main.swift: /info (JSON {client, scheme,
                  path, rootPath}), /ws-info (the same as a WebSocket message), /slow?ms=N,
                  /echo, /idle; its WebSocketComponent fixes a 1 MiB limit and 0.5 s pings
  demo            Examples/Sources/Demo/main.swift: /hello/{name}, /ws/{room} (welcome, then echoes
                  text prefixed with the room); its WebSocketComponent() has no overrides, so
                  --ws-max-size and --ws-ping-* from the command line take effect there

The raw-socket, RawWebSocket and `websockets` helpers are those of test_websocket_server.py.

Every test is bounded: socket and asyncio timeouts, plus the per-test SIGALRM deadline of
conftest.py. The longest is the slow-loris test (the header-read timeout is 10 s and has no
command-line option: ServerConfiguration.headerReadTimeout).

Run: .ci/peer-tests.sh -k server_options (or `$(.ci/python-peers.sh) -m pytest -q
Tests/Peers/test_server_options.py`).
"""

import asyncio
import http.client
import json
import os
import re
import select
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import warnings

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from conftest import HOST, ROOT, binary_path, free_port
from test_websocket_server import (
    OP_PING, OP_TEXT, RawWebSocket, client, close_code, expect_server_close, read_head, run,
)

OPTIONS_SOURCE = ROOT / "Sources" / "StarServer" / "CLI" / "ServerOptions.swift"


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------

class Exchange:
    """One raw HTTP request on a fresh TCP connection, with the client's own port."""

    def __init__(self, status, headers, body, local_port):
        self.status, self.headers, self.body, self.local_port = status, headers, body, local_port

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def __repr__(self):
        return "HTTP %d %r %.300r (from port %d)" % (self.status, self.headers, self.body, self.local_port)


def read_body(sock, headers, body):
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return body[:length]


def request(port, path="/info", headers=(), timeout=5.0):
    """GET `path` with extra header lines on a new connection; returns an Exchange."""
    with socket.create_connection((HOST, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        lines = ["GET %s HTTP/1.1" % path, "Host: %s:%d" % (HOST, port)] + list(headers) + ["", ""]
        sock.sendall("\r\n".join(lines).encode("latin-1"))
        status, _, response_headers, rest = read_head(sock)
        return Exchange(status, response_headers, read_body(sock, response_headers, rest), sock.getsockname()[1])


def wait_closed(sock, timeout):
    """Reads until the peer closes (EOF or reset); returns (seconds waited, bytes read), or
    (None, bytes) when the connection is still open after `timeout`."""
    start = time.monotonic()
    data = b""
    sock.settimeout(timeout)
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return time.monotonic() - start, data
            data += chunk
    except (ConnectionResetError, BrokenPipeError):
        return time.monotonic() - start, data
    except socket.timeout:
        return None, data


def run_cli(name, args, env=None, timeout=10):
    """Runs a binary that is expected to exit by itself (a bad option, --help)."""
    return subprocess.run([str(binary_path(name))] + list(args), capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, cwd=str(ROOT), env=dict(os.environ, **(env or {})))


CRASH_MARKERS = ("Fatal error", "Backtrace", "Stack dump", "Crash", "Illegal instruction", "Segmentation",
                 "Trace/breakpoint")


def assert_no_crash(output):
    found = [marker for marker in CRASH_MARKERS if marker.lower() in output.lower()]
    assert not found, "crash markers %r in the output:\n%s" % (found, output)


def wait_for_log(server, pattern, timeout=3.0):
    """Polls the server's log until a line matches the regex `pattern`; returns that line."""
    deadline = time.monotonic() + timeout
    while True:
        lines = server.log_tail(limit=200000).splitlines()
        found = [line for line in lines if re.search(pattern, line)]
        if found:
            return found[-1]
        if time.monotonic() > deadline:
            pytest.fail("no log line matching %r within %gs; log:\n%s" % (pattern, timeout, "\n".join(lines[-30:])))
        time.sleep(0.05)


def wait_exit(proc, timeout):
    """Waits for the process to exit; returns (status, seconds) or fails."""
    start = time.monotonic()
    try:
        status = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail("the server was still running %gs after SIGTERM" % timeout)
    return status, time.monotonic() - start


# ---------------------------------------------------------------------------
# 1. The command line and STAR_* variables
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("args", [
    ["--port", "abc"],
    ["--log-level", "LOUD"],
    ["--ws-max-size", "0"],
    ["--ssl-certfile", "x"],
], ids=["port-abc", "log-level-LOUD", "ws-max-size-0", "certfile-without-keyfile"])
def test_bad_option_exits_2_with_one_error_line(args):
    done = run_cli("ws-test-server", args)
    output = "status %s\nstdout:\n%s\nstderr:\n%s" % (done.returncode, done.stdout, done.stderr)
    assert done.returncode == 2, output
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), output
    assert done.stdout == "", output
    assert_no_crash(done.stdout + done.stderr)
    print(lines[0])


def declared_options():
    """The options ServerOptions declares, as (long name, is a flag with a --no- form)."""
    lines = OPTIONS_SOURCE.read_text().splitlines()
    options = []
    pending = None
    for line in lines:
        text = line.strip()
        if text.startswith("@Option") or text.startswith("@Flag"):
            pending = text
            continue
        match = re.match(r"public var (\w+)\s*:", text)
        if pending is not None and match:
            name = re.sub(r"[A-Z]", lambda m: "-" + m.group(0).lower(), match.group(1))
            options.append((name, pending.startswith("@Flag") and "prefixedNo" in pending))
            pending = None
    return options


def test_help_exits_0_and_lists_every_option():
    options = declared_options()
    assert len(options) >= 20, "could not read the options from %s: %r" % (OPTIONS_SOURCE, options)
    done = run_cli("ws-test-server", ["--help"])
    assert done.returncode == 0, "status %s, stderr %r" % (done.returncode, done.stderr)
    assert_no_crash(done.stdout + done.stderr)
    absent = []
    for name, inverted in options:
        names = ["--" + name] + (["--no-" + name] if inverted else [])
        absent += [n for n in names if not re.search(re.escape(n) + r"(?![\w-])", done.stdout)]
    assert not absent, "--help does not list %r:\n%s" % (absent, done.stdout)
    assert "--help" in done.stdout, done.stdout


def assert_clean_start_up_failure(args):
    """Runs ws-test-server with options that parse but cannot be served: it must report the
    problem and exit by itself with a failure status, not crash (a signal, a backtrace)."""
    done = run_cli("ws-test-server", ["--host", HOST] + [str(a) for a in args], timeout=15)
    output = (done.stdout + done.stderr).strip()
    first = "\n".join(output.splitlines()[:3])
    summary = "exit status %s (negative: killed by that signal); first lines of the output:\n%s" % (
        done.returncode, first)
    print(summary)
    found = [marker for marker in CRASH_MARKERS if marker.lower() in output.lower()]
    assert not found and done.returncode > 0, "the server crashed instead of exiting cleanly: " + summary
    assert output, "the server exited with status %s without saying why" % done.returncode


def test_port_in_use_exits_cleanly():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind((HOST, 0))
        taken.listen()
        assert_clean_start_up_failure(["--port", taken.getsockname()[1]])


def test_star_port_variable_sets_the_port(start_server):
    server = start_server("ws-test-server", port_via="env", attempts=1, timeout=5)
    assert "--port" not in server.command, server.command
    response = request(server.port)
    assert response.status == 200, response


def test_command_line_port_beats_star_port(start_server):
    other = free_port()
    server = start_server("ws-test-server", env={"STAR_PORT": str(other)}, attempts=1, timeout=5)
    assert request(server.port).status == 200
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((HOST, other), timeout=2).close()


def test_uppercase_log_level(start_server):
    debug = start_server("ws-test-server", args=["--log-level", "DEBUG"], quiet=False)
    assert request(debug.port).status == 200
    wait_for_log(debug, r"Star serving on http://127\.0\.0\.1:%d" % debug.port)
    # And the level is applied: at ERROR the info line does not appear.
    quiet = start_server("ws-test-server", args=["--log-level", "ERROR"], quiet=False)
    assert request(quiet.port).status == 200
    time.sleep(0.3)
    assert "Star serving" not in quiet.log_tail(), quiet.log_tail()
    assert debug.alive() and quiet.alive()


# ---------------------------------------------------------------------------
# 2-4. Keep-alive and header-read timeouts, an oversized head
# ---------------------------------------------------------------------------

def test_keep_alive_timeout_closes_an_idle_connection(start_server):
    server = start_server("ws-test-server", args=["--timeout-keep-alive", "1"])
    with socket.create_connection((HOST, server.port), timeout=5) as sock:
        sock.settimeout(5)
        raw = ("GET /info HTTP/1.1\r\nHost: %s:%d\r\n\r\n" % (HOST, server.port)).encode()
        sock.sendall(raw)
        status, _, headers, rest = read_head(sock)
        assert status == 200 and read_body(sock, headers, rest), headers
        assert headers.get("connection", "").lower() != "close", headers
        # A second request 0.6 s later is still served on the same connection (the timer restarts).
        time.sleep(0.6)
        sock.sendall(raw)
        status, _, headers, rest = read_head(sock)
        assert status == 200 and read_body(sock, headers, rest), headers
        elapsed, data = wait_closed(sock, 5.0)
    assert elapsed is not None, "the idle keep-alive connection was still open 5 s after the response"
    assert data == b"", "bytes before the close: %r" % data
    assert 0.8 <= elapsed <= 3.0, "closed %.2fs after the response (--timeout-keep-alive 1)" % elapsed
    print("idle keep-alive connection closed after %.2fs" % elapsed)
    assert server.alive()


def test_keep_alive_timeout_does_not_cut_a_pipelined_request(start_server):
    """Two requests in one write: the second (1.5 s of work) waits behind the first (0.3 s).
    The keep-alive timer is for idle connections; it must not close one busy with a request."""
    server = start_server("ws-test-server", args=["--timeout-keep-alive", "1"])
    with socket.create_connection((HOST, server.port), timeout=5) as sock:
        sock.sendall(("GET /slow?ms=300 HTTP/1.1\r\nHost: %s:%d\r\n\r\n"
                      "GET /slow?ms=1500 HTTP/1.1\r\nHost: %s:%d\r\n\r\n" % (HOST, server.port, HOST, server.port)).encode())
        start = time.monotonic()
        elapsed, data = wait_closed(sock, 5.0)
    answers = data.count(b"slow done")
    print("pipelined /slow 300 ms + 1500 ms: %d of 2 answered, connection closed after %s s" % (
        answers, "%.2f" % elapsed if elapsed is not None else ">5"))
    assert answers == 2, "only %d of 2 pipelined requests answered before the server closed the connection " \
                         "%.2fs in (--timeout-keep-alive 1): %r" % (answers, time.monotonic() - start, data[-300:])


@pytest.mark.deadline(30)
def test_slow_loris_head_is_cut_off_by_the_header_read_timeout(ws_test_server):
    """One byte of a request head every 0.5 s: the server drops the connection when the
    header-read timeout (10 s, ServerConfiguration.headerReadTimeout) expires, and serves others."""
    head = ("GET /info HTTP/1.1\r\nHost: %s:%d\r\nX-Slow: " % (HOST, ws_test_server.port)).encode() + b"a" * 100
    served = []
    start = time.monotonic()
    sent = 0
    closed_at = None
    received = b""
    with socket.create_connection((HOST, ws_test_server.port), timeout=5) as sock:
        while time.monotonic() - start < 16:
            try:
                sock.sendall(head[sent:sent + 1])
                sent += 1
            except (BrokenPipeError, ConnectionResetError):
                closed_at = time.monotonic() - start
                break
            readable, _, _ = select.select([sock], [], [], 0.5)
            if readable:
                try:
                    chunk = sock.recv(65536)
                except ConnectionResetError:
                    chunk = b""
                if not chunk:
                    closed_at = time.monotonic() - start
                    break
                received += chunk
            if sent in (4, 12):  # meanwhile, another client is served at ~2 s and ~6 s
                response = request(ws_test_server.port)
                served.append((round(time.monotonic() - start, 2), response.status))
    print("slow client dropped after %s s (%d bytes sent, %r received); others served: %r" % (
        "%.2f" % closed_at if closed_at else None, sent, received[:200], served))
    assert closed_at is not None, "a slow-loris client sending a byte every 0.5 s was still connected after 16 s"
    assert 8.0 <= closed_at <= 14.0, "dropped after %.2fs; the header-read timeout is 10 s" % closed_at
    assert sent < len(head), "the whole head was sent"
    assert [status for _, status in served] == [200, 200], served


def test_huge_request_head_is_431_and_others_are_served(ws_test_server):
    huge = "X-Huge: " + "a" * (100 * 1024)
    with socket.create_connection((HOST, ws_test_server.port), timeout=5) as sock:
        sock.settimeout(5)
        raw = ("GET /info HTTP/1.1\r\nHost: %s:%d\r\n%s\r\n\r\n" % (HOST, ws_test_server.port, huge)).encode()
        try:
            sock.sendall(raw)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may answer and close before it has read everything
        status, reason, headers, rest = read_head(sock)
        body = read_body(sock, headers, rest)
        elapsed, _ = wait_closed(sock, 3.0)
    assert status == 431, "HTTP %d %s %r %r" % (status, reason, headers, body)
    assert elapsed is not None, "the connection stayed open after the 431"
    assert request(ws_test_server.port).status == 200
    assert ws_test_server.alive()


# ---------------------------------------------------------------------------
# 5. --limit-concurrency
# ---------------------------------------------------------------------------

async def handshake_status(url):
    """Opens a WebSocket; returns 101 on success or the refusal's status."""
    try:
        async with client(url):
            return 101
    except InvalidStatus as error:
        return error.response.status_code


def poll_until_served(port, timeout=3.0):
    """GET /info until a 200 (connections that just closed may still be counted for a moment)."""
    deadline = time.monotonic() + timeout
    statuses = []
    while True:
        statuses.append(request(port).status)
        if statuses[-1] == 200:
            return statuses
        if time.monotonic() > deadline:
            pytest.fail("no 200 within %gs after the held connections closed: %r" % (timeout, statuses))
        time.sleep(0.1)


def hold_keep_alive_connection(port, timeout=3.0):
    """A connection that got a 200 and stays open (idle keep-alive). Retries on 503: a connection
    closed just before (conftest's readiness probe) may still be counted for a moment."""
    deadline = time.monotonic() + timeout
    while True:
        sock = socket.create_connection((HOST, port), timeout=5)
        sock.sendall(("GET /info HTTP/1.1\r\nHost: %s:%d\r\n\r\n" % (HOST, port)).encode())
        status, _, headers, rest = read_head(sock)
        read_body(sock, headers, rest)
        if status == 200:
            return sock
        sock.close()
        if status != 503 or time.monotonic() > deadline:
            pytest.fail("could not open a connection to hold: HTTP %d %r" % (status, headers))
        time.sleep(0.1)


def test_limit_concurrency_with_idle_keep_alive_connections(start_server):
    server = start_server("ws-test-server", args=["--limit-concurrency", "2"])
    held = []
    try:
        for _ in range(2):
            held.append(hold_keep_alive_connection(server.port))
        third = request(server.port)
        assert third.status == 503, third
        assert third.headers.get("connection", "").lower() == "close", third
        assert run(handshake_status(server.ws("/echo")), 10) == 503
    finally:
        for sock in held:
            sock.close()
    statuses = poll_until_served(server.port)
    assert run(handshake_status(server.ws("/echo")), 10) == 101
    print("after the held connections closed: %r" % statuses)


def test_limit_concurrency_with_open_websockets(start_server):
    server = start_server("ws-test-server", args=["--limit-concurrency", "2"])

    async def hold():
        """An open WebSocket; retries on 503 as hold_keep_alive_connection does."""
        deadline = time.monotonic() + 3
        while True:
            try:
                return await client(server.ws("/idle"))
            except InvalidStatus as error:
                if error.response.status_code != 503 or time.monotonic() > deadline:
                    raise
            await asyncio.sleep(0.1)

    async def main():
        first = await hold()
        second = await hold()
        try:
            third = await asyncio.get_running_loop().run_in_executor(None, request, server.port)
            assert third.status == 503, third
            assert await handshake_status(server.ws("/echo")) == 503
        finally:
            await first.close()
            await second.close()
    run(main(), 20)
    poll_until_served(server.port)

    async def echo():
        async with client(server.ws("/echo")) as ws:
            await ws.send("again")
            assert await asyncio.wait_for(ws.recv(), 5) == "again"
    run(echo(), 10)


# ---------------------------------------------------------------------------
# 6-7. Proxy headers and the root path
# ---------------------------------------------------------------------------

async def ws_info(url, headers=None):
    async with client(url, additional_headers=headers) as ws:
        return json.loads(await asyncio.wait_for(ws.recv(), 5))


def test_x_forwarded_headers_from_a_trusted_proxy(ws_test_server):
    response = request(ws_test_server.port, headers=["X-Forwarded-For: 203.0.113.7", "X-Forwarded-Proto: https"])
    assert response.status == 200, response
    info = response.json()
    assert info["client"].startswith("203.0.113.7"), info
    assert info["scheme"] == "https", info


def test_forwarded_header_from_a_trusted_proxy(ws_test_server):
    response = request(ws_test_server.port, headers=["Forwarded: for=198.51.100.2;proto=https"])
    assert response.status == 200, response
    info = response.json()
    assert info["client"].startswith("198.51.100.2"), info
    assert info["scheme"] == "https", info


def test_websocket_scheme_follows_x_forwarded_proto(ws_test_server):
    behind_tls = run(ws_info(ws_test_server.ws("/ws-info"), {"X-Forwarded-Proto": "https",
                                                             "X-Forwarded-For": "203.0.113.7"}), 10)
    assert behind_tls["scheme"] == "wss", behind_tls
    assert behind_tls["client"].startswith("203.0.113.7"), behind_tls
    plain = run(ws_info(ws_test_server.ws("/ws-info")), 10)
    assert plain["scheme"] == "ws", plain
    assert plain["client"].startswith("127.0.0.1:"), plain


@pytest.mark.parametrize("args", [["--no-proxy-headers"], ["--forwarded-allow-ips", "10.0.0.1"]],
                         ids=["no-proxy-headers", "allow-10.0.0.1"])
def test_proxy_headers_ignored_when_not_trusted(start_server, args):
    server = start_server("ws-test-server", args=args)
    for headers in (["X-Forwarded-For: 203.0.113.7", "X-Forwarded-Proto: https"],
                    ["Forwarded: for=198.51.100.2;proto=https"]):
        response = request(server.port, headers=headers)
        assert response.status == 200, response
        info = response.json()
        assert info["client"] == "127.0.0.1:%d" % response.local_port, (headers, info)
        assert info["scheme"] == "http", (headers, info)
    info = run(ws_info(server.ws("/ws-info"), {"X-Forwarded-Proto": "https"}), 10)
    assert info["scheme"] == "ws", info
    assert info["client"].startswith("127.0.0.1:"), info


def test_root_path(start_server):
    server = start_server("ws-test-server", args=["--root-path", "/api"])
    response = request(server.port, "/api/info")
    assert response.status == 200, response
    info = response.json()
    assert info["path"] == "/info" and info["rootPath"] == "/api", info
    info = run(ws_info(server.ws("/api/ws-info")), 10)
    assert info["path"] == "/ws-info" and info["rootPath"] == "/api", info


# ---------------------------------------------------------------------------
# 8. --uds
# ---------------------------------------------------------------------------

def test_unix_domain_socket(start_server):
    directory = tempfile.mkdtemp(prefix="star-uds-", dir="/tmp")
    path = os.path.join(directory, "star.sock")
    try:
        server = start_server("ws-test-server", uds=path)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(5)
            sock.connect(path)
            sock.sendall(b"GET /info HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            status, reason, headers, rest = read_head(sock)
            body = read_body(sock, headers, rest)
        assert status == 200, (status, reason, headers, body)
        info = json.loads(body)
        assert info["path"] == "/info" and info["scheme"] == "http", info
        print("over %s: %r" % (path, info))
        assert server.alive()
    finally:
        shutil.rmtree(directory, ignore_errors=True)


# ---------------------------------------------------------------------------
# 9. TLS: https and wss
# ---------------------------------------------------------------------------

def openssl(*args, cwd):
    done = subprocess.run(["openssl"] + list(args), cwd=cwd, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, "openssl %s failed:\n%s" % (" ".join(args), done.stderr)


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    """A throwaway CA, a server certificate it signed for 127.0.0.1 and localhost, the server
    key in clear and encrypted (password "s3cret"), and a second CA that signed nothing."""
    if shutil.which("openssl") is None:
        pytest.fail("openssl is needed to make the test certificates", pytrace=False)
    d = tmp_path_factory.mktemp("tls")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=Star Test CA",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    openssl("req", "-x509", *ec, "-keyout", "other-ca.key", "-out", "other-ca.pem", "-days", "2",
            "-subj", "/CN=Other CA", cwd=d)
    openssl("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost", cwd=d)
    (d / "server.ext").write_text(
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
        "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid,issuer\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "server.pem", "-days", "2", "-extfile", "server.ext", cwd=d)
    openssl("pkey", "-in", "server.key", "-aes256", "-passout", "pass:s3cret", "-out", "server-encrypted.key", cwd=d)
    assert "ENCRYPTED" in (d / "server-encrypted.key").read_text()
    return d


def trusting(ca_file):
    """A client context that verifies the server against `ca_file` only."""
    return ssl.create_default_context(cafile=str(ca_file))


def https_info(port, context, path="/info"):
    # One CI run (after the long Autobahn 12/13 step) saw a single "connection reset" during the
    # TLS handshake that never reproduced in dozens of runs; retry once, and say so loudly, so a
    # real failure still fails and a flake leaves a trace to investigate.
    for attempt in (1, 2):
        connection = http.client.HTTPSConnection(HOST, port, context=context, timeout=5)
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            return response.status, response.read()
        except ConnectionResetError:
            if attempt == 2:
                raise
            warnings.warn("TLS handshake to 127.0.0.1:%d was reset once; retrying" % port)
            time.sleep(0.2)
        finally:
            connection.close()


def tls_server(start_server, tls_files, key="server.key", extra=()):
    return start_server("ws-test-server", args=["--ssl-certfile", tls_files / "server.pem",
                                                "--ssl-keyfile", tls_files / key] + list(extra))


def test_tls_https_get(start_server, tls_files):
    server = tls_server(start_server, tls_files)
    status, body = https_info(server.port, trusting(tls_files / "ca.pem"))
    assert status == 200, body
    info = json.loads(body)
    assert info["scheme"] == "https" and info["path"] == "/info", info
    assert info["client"].startswith("127.0.0.1:"), info


def test_tls_wss_echo_and_ws_info(start_server, tls_files):
    server = tls_server(start_server, tls_files)
    context = trusting(tls_files / "ca.pem")
    url = "wss://%s:%d" % (HOST, server.port)

    async def main():
        async with client(url + "/echo", ssl=context) as ws:
            await ws.send("over tls")
            assert await asyncio.wait_for(ws.recv(), 5) == "over tls"
            await ws.send(b"\x00\x01binary")
            assert await asyncio.wait_for(ws.recv(), 5) == b"\x00\x01binary"
        async with client("wss://localhost:%d/ws-info" % server.port, ssl=context) as ws:
            info = json.loads(await asyncio.wait_for(ws.recv(), 5))
        return info
    info = run(main(), 20)
    assert info["scheme"] == "wss" and info["path"] == "/ws-info", info


def test_tls_client_that_does_not_trust_the_ca_fails_verification(start_server, tls_files):
    server = tls_server(start_server, tls_files)
    with pytest.raises(ssl.SSLCertVerificationError):
        https_info(server.port, trusting(tls_files / "other-ca.pem"))
    with pytest.raises(ssl.SSLCertVerificationError):
        https_info(server.port, ssl.create_default_context())  # the system's CAs
    # The server is unharmed by the failed handshakes.
    status, _ = https_info(server.port, trusting(tls_files / "ca.pem"))
    assert status == 200


def test_tls_encrypted_key_with_password(start_server, tls_files):
    server = tls_server(start_server, tls_files, key="server-encrypted.key",
                        extra=["--ssl-keyfile-password", "s3cret"])
    status, body = https_info(server.port, trusting(tls_files / "ca.pem"))
    assert status == 200, body
    assert json.loads(body)["scheme"] == "https"


def test_tls_wrong_key_password_exits_cleanly(tls_files):
    assert_clean_start_up_failure(["--port", free_port(), "--ssl-certfile", tls_files / "server.pem",
                                   "--ssl-keyfile", tls_files / "server-encrypted.key",
                                   "--ssl-keyfile-password", "wrong"])


# ---------------------------------------------------------------------------
# 10. WebSocket options from the command line (demo's /ws/{room}: no component overrides)
# ---------------------------------------------------------------------------

def test_ws_max_size_from_the_command_line(start_server):
    server = start_server("demo", args=["--ws-max-size", "1000"])

    async def main():
        async with client(server.ws("/ws/lobby")) as ws:
            assert await asyncio.wait_for(ws.recv(), 5) == "welcome to lobby"
            await ws.send(b"x" * 1000)
            assert await asyncio.wait_for(ws.recv(), 5) == b"x" * 1000, "a message of exactly the limit"
            try:
                await ws.send(b"y" * 2000)
            except ConnectionClosed:
                pass
            await expect_server_close(ws, 1009)
    run(main(), 15)


def test_ws_max_size_default_allows_the_same_message(start_server):
    """The control of the test above: without the option, 2000 bytes are echoed."""
    server = start_server("demo")

    async def main():
        async with client(server.ws("/ws/lobby")) as ws:
            assert await asyncio.wait_for(ws.recv(), 5) == "welcome to lobby"
            await ws.send(b"y" * 2000)
            assert await asyncio.wait_for(ws.recv(), 5) == b"y" * 2000
    run(main(), 15)


def test_ws_ping_options_from_the_command_line(start_server):
    server = start_server("demo", args=["--ws-ping-interval", "0.3", "--ws-ping-timeout", "0.3"])
    with RawWebSocket(server.port, "/ws/lobby", timeout=3.0) as ws:
        start = time.monotonic()
        code, reason, before = ws.read_until_close()
        elapsed = time.monotonic() - start
        ws.expect_dropped(timeout=2.0)
    assert code == 1011, "close %d %r after %.2fs" % (code, reason, elapsed)
    assert elapsed < 1.5, "closed only after %.2fs (ping every 0.3 s, 0.3 s timeout)" % elapsed
    assert before and before[0] == (OP_TEXT, b"welcome to lobby"), before
    pings = [payload for opcode, payload in before if opcode == OP_PING]
    assert pings and len(pings) == len(before) - 1, "expected the welcome, then only pings: %r" % before
    print("closed 1011 %r after %.2fs, %d ping(s) first" % (reason, elapsed, len(pings)))


# ---------------------------------------------------------------------------
# 11. The access log
# ---------------------------------------------------------------------------

async def lobby_session(server):
    async with client(server.ws("/ws/lobby")) as ws:
        assert await asyncio.wait_for(ws.recv(), 5) == "welcome to lobby"
        await ws.send("hi")
        assert await asyncio.wait_for(ws.recv(), 5) == "lobby: hi"
        await ws.close(1000)
    assert ws.close_code == 1000, ws.protocol.close_rcvd


def test_access_log_lines(start_server):
    server = start_server("demo", quiet=False)
    response = request(server.port, "/hello/x")
    assert response.status == 200, response
    line = wait_for_log(server, re.escape('"GET /hello/x HTTP/1.1" 200'))
    print(line)
    run(lobby_session(server), 15)
    line = wait_for_log(server, "WEBSOCKET /ws/lobby")
    print(line)
    assert "closed 1000" in line, line
    counts = re.search(r"(\d+) messages? in, (\d+) out", line)
    assert counts, "no message counts in %r" % line
    assert (int(counts.group(1)), int(counts.group(2))) == (1, 2), line


def test_no_access_log(start_server):
    server = start_server("demo", quiet=False, args=["--no-access-log"])
    assert request(server.port, "/hello/x").status == 200
    run(lobby_session(server), 15)
    time.sleep(0.5)
    log = server.log_tail(limit=200000)
    assert "Star serving on" in log, log  # info lines are logged...
    assert "GET /hello/x" not in log and "WEBSOCKET" not in log, log  # ...but no access lines


# ---------------------------------------------------------------------------
# 12. Graceful shutdown
# ---------------------------------------------------------------------------

async def read_http_response(reader):
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return status, headers, body


def new_connection_after_shutdown(port):
    """What a new client sees once SIGTERM is handled: 'refused', 'closed' (EOF or reset without a
    response), or the status of a response it got."""
    try:
        sock = socket.create_connection((HOST, port), timeout=2)
    except ConnectionRefusedError:
        return "refused"
    with sock:
        sock.settimeout(2)
        try:
            sock.sendall(("GET /info HTTP/1.1\r\nHost: %s:%d\r\n\r\n" % (HOST, port)).encode())
            data = sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            return "closed"
        except socket.timeout:
            return "hung"
        return "closed" if not data else data.split(b"\r\n", 1)[0].decode("latin-1")


def test_graceful_shutdown_finishes_in_flight_work(start_server):
    server = start_server("ws-test-server")

    async def main():
        idle = await client(server.ws("/idle"))
        reader, writer = await asyncio.open_connection(HOST, server.port)
        writer.write(("GET /slow?ms=1500 HTTP/1.1\r\nHost: %s:%d\r\n\r\n" % (HOST, server.port)).encode())
        await writer.drain()
        slow = asyncio.ensure_future(read_http_response(reader))
        await asyncio.sleep(0.3)
        server.proc.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        await asyncio.sleep(0.2)
        newcomer = await asyncio.get_running_loop().run_in_executor(None, new_connection_after_shutdown, server.port)
        with pytest.raises(ConnectionClosed) as closed:
            message = await asyncio.wait_for(idle.recv(), 3)
            pytest.fail("/idle sent a message: %r" % message)
        idle_closed = time.monotonic() - signalled
        status, headers, body = await asyncio.wait_for(slow, 5)
        writer.close()
        return signalled, newcomer, closed.value, idle_closed, status, headers, body

    signalled, newcomer, closed, idle_closed, status, headers, body = run(main(), 15)
    exit_status, _ = wait_exit(server.proc, 5)
    exited = time.monotonic() - signalled
    print("after SIGTERM: new connection %s; /idle closed %r after %.2fs; slow request %d %r; exit %s after %.2fs" % (
        newcomer, closed.rcvd, idle_closed, status, body, exit_status, exited))
    assert status == 200 and body == b"slow done", (status, headers, body)
    assert newcomer in ("refused", "closed"), "a new connection after SIGTERM got %r" % newcomer
    assert close_code(closed) == 1001, "the open WebSocket saw %r (sent %r)" % (closed.rcvd, closed.sent)
    assert exit_status == 0, "exit status %s; log:\n%s" % (exit_status, server.log_tail())
    assert exited < 3.0, "exited %.2fs after SIGTERM" % exited
    assert_no_crash(server.log_tail())


def test_graceful_shutdown_timeout_cuts_a_long_request(start_server):
    server = start_server("ws-test-server", args=["--timeout-graceful-shutdown", "1"])
    with socket.create_connection((HOST, server.port), timeout=8) as sock:
        sock.sendall(("GET /slow?ms=10000 HTTP/1.1\r\nHost: %s:%d\r\n\r\n" % (HOST, server.port)).encode())
        time.sleep(0.3)
        server.proc.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        exit_status, seconds = wait_exit(server.proc, 6)
        _, data = wait_closed(sock, 1.0)
    print("exit %s %.2fs after SIGTERM; the 10 s request got %r; log:\n%s" % (
        exit_status, seconds, data[:200], server.log_tail()))
    assert seconds < 4.0, "exited %.2fs after SIGTERM with --timeout-graceful-shutdown 1" % seconds
    assert exit_status >= 0, "killed by signal %d; log:\n%s" % (-exit_status, server.log_tail())
    assert_no_crash(server.log_tail())
    assert exit_status == 0, "exit status %s; log:\n%s" % (exit_status, server.log_tail())
