"""HTTP/2 and WebSockets over HTTP/2 (RFC 8441) against the real server, with outside peers:
curl (`--http2`, `--http2-prior-knowledge`), nghttp and h2load (Debian's nghttp2-client), and
a client on PyPI's `h2` + `wsproto` (h2_client.py) that opens WebSocket streams and plays the
known HTTP/2 attacks frame by frame.

Servers: ws-test-server (Examples/Sources/WebSocketTestServer/main.swift: /info and /ws-info say
which HTTP version a request came over, /echo, /guarded (401 without ?token=secret), /throw-after,
/watch?tag=, /events, /flood, /flood-count, /slow?ms=), over cleartext (prior knowledge) and TLS
(ALPN, with a certificate made here), and the demo (/upload). Every wait has a deadline.

Run: .ci/peer-tests.sh -k http2 (or `$(.ci/python-peers.sh) -m pytest -q Tests/Peers/test_http2.py`).
"""

import hashlib
import json
import os
import shutil
import signal
import subprocess
import time

import pytest
from hyperframe.frame import ContinuationFrame, HeadersFrame, PingFrame, SettingsFrame

from conftest import HOST, in_ci
from h2_client import H2Client

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
ENHANCE_YOUR_CALM = 0xB
COMPRESSION_ERROR = 0x9


@pytest.fixture(autouse=True)
def close_clients():
    """A failed test must not leave a connection open: it would hold the module's server at shutdown."""
    yield
    H2Client.close_all()


def tool(name):
    path = shutil.which(name)
    if path is None:
        message = "%s is needed (Debian: %s)" % (name, "curl" if name == "curl" else "nghttp2-client")
        if in_ci():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return path


def run(*command, timeout=60):
    return subprocess.run(list(command), capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    if shutil.which("openssl") is None:
        pytest.fail("openssl is needed to make the test certificate", pytrace=False)
    d = tmp_path_factory.mktemp("h2tls")
    done = run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
               "-keyout", str(d / "key.pem"), "-out", str(d / "cert.pem"), "-days", "2", "-subj", "/CN=localhost",
               "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1")
    assert done.returncode == 0, done.stderr
    return d / "cert.pem", d / "key.pem"


@pytest.fixture(scope="module")
def h2c(request):
    """ws-test-server on cleartext: HTTP/2 by prior knowledge."""
    from star_processes import start_server, finish_server
    server = start_server("ws-test-server")
    yield server
    finish_server(server)


@pytest.fixture(scope="module")
def h2tls(certificate):
    """ws-test-server over TLS: HTTP/2 by ALPN."""
    from star_processes import start_server, finish_server
    cert, key = certificate
    server = start_server("ws-test-server", args=["--ssl-certfile", cert, "--ssl-keyfile", key])
    yield server
    finish_server(server)


def events(client):
    status, _, body = client.get("/events")
    assert status == 200
    return json.loads(body)


def wait_for_event(client, prefix, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [e for e in events(client) if e.startswith(prefix)]
        if found:
            return found
        time.sleep(0.05)
    pytest.fail("no event starting %r within %ss: %s" % (prefix, timeout, events(client)))


def rss_kib(server):
    with open("/proc/%d/status" % server.proc.pid) as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


# ---------------------------------------------------------------------------
# 1. Plain HTTP/2 with real clients
# ---------------------------------------------------------------------------

def test_curl_prior_knowledge_alpn_and_http1_on_one_port(h2c, h2tls):
    curl = tool("curl")
    done = run(curl, "-s", "--http2-prior-knowledge", "-w", "\n%{http_version}", h2c.http("/info"))
    body, version = done.stdout.rsplit("\n", 1)
    assert version == "2" and json.loads(body)["httpVersion"] == "HTTP/2", done.stdout
    done = run(curl, "-s", "-w", "\n%{http_version}", h2c.http("/info"))
    body, version = done.stdout.rsplit("\n", 1)
    assert version == "1.1" and json.loads(body)["httpVersion"] == "HTTP/1.1", done.stdout
    https = "https://%s:%d/info" % (HOST, h2tls.port)
    done = run(curl, "-sk", "--http2", "-w", "\n%{http_version}", https)
    body, version = done.stdout.rsplit("\n", 1)
    assert version == "2" and json.loads(body) == {
        "client": json.loads(body)["client"], "scheme": "https", "path": "/info", "rootPath": "",
        "httpVersion": "HTTP/2"}, done.stdout
    done = run(curl, "-sk", "--http1.1", "-w", "\n%{http_version}", https)
    assert done.stdout.rsplit("\n", 1)[1] == "1.1", done.stdout


def test_nghttp_and_h2load(h2c):
    nghttp, h2load = tool("nghttp"), tool("h2load")
    done = run(nghttp, "-nv", h2c.http("/info"))
    assert ":status: 200" in done.stdout and "END_STREAM" in done.stdout, done.stdout[-2000:]
    # Many streams at once on few connections: every request answered.
    done = run(h2load, "-n", "4000", "-c", "4", "-m", "32", h2c.http("/info"), timeout=60)
    assert "4000 succeeded, 0 failed, 0 errored" in done.stdout, done.stdout[-2000:]
    assert h2c.alive()


def test_settings_advertise_streams_window_and_rfc8441(h2c):
    client = H2Client(h2c.port)
    settings = dict(client.conn.remote_settings)
    assert settings[3] == 100 and settings[4] == 65535 and settings[6] == 16384, settings
    assert settings[8] == 1, "the app has WebSocket routes: SETTINGS_ENABLE_CONNECT_PROTOCOL = 1"
    client.close()


def test_request_body_uploads_under_flow_control(start_server):
    """A 4 MiB upload through a 64 KiB stream window: the server opens the window as the app reads."""
    server = start_server("demo")
    client = H2Client(server.port)
    data = os.urandom(4 << 20)
    stream = client.start("POST", "/upload", [("content-type", "application/octet-stream")], end=False)
    client.send_body(stream, data)
    status, _, body = client.response(stream, timeout=30)
    assert status == 200, body
    assert json.loads(body) == {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def test_no_http2_option_turns_it_off(start_server, certificate):
    curl = tool("curl")
    server = start_server("ws-test-server", args=["--no-http2"])
    done = run(curl, "-s", "--http2-prior-knowledge", "-o", "/dev/null", "-w", "%{http_code}", server.http("/info"))
    assert done.stdout != "200", "the HTTP/2 preface must not be served with --no-http2"
    cert, key = certificate
    tls = start_server("ws-test-server", args=["--no-http2", "--ssl-certfile", cert, "--ssl-keyfile", key])
    done = run(curl, "-sk", "--http2", "-o", "/dev/null", "-w", "%{http_version}", "https://%s:%d/info" % (HOST, tls.port))
    assert done.stdout == "1.1", "ALPN must not offer h2 with --no-http2: %r" % done.stdout


# ---------------------------------------------------------------------------
# 2. WebSockets over HTTP/2 (RFC 8441)
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("secure", [False, True], ids=["h2c", "h2-tls"])
def test_websocket_streams_share_a_connection_with_requests(h2c, h2tls, secure):
    server = h2tls if secure else h2c
    client = H2Client(server.port, tls=secure)
    if secure:
        assert client.alpn == "h2"
    sockets = [client.websocket("/echo") for _ in range(4)]
    for ws in sockets:
        assert ws.status == 200 and "sec-websocket-accept" not in ws.headers, ws.headers
    for round in range(3):
        for i, ws in enumerate(sockets):
            ws.send_text("text %d.%d" % (i, round))
            ws.send_bytes(bytes([i, round]) * 1000)
        # An ordinary request between the WebSocket streams' messages, on the same connection.
        status, _, body = client.get("/info")
        assert status == 200 and json.loads(body)["httpVersion"] == "HTTP/2"
        for i, ws in enumerate(sockets):
            assert ws.receive() == ("text", "text %d.%d" % (i, round))
            assert ws.receive() == ("bytes", bytes([i, round]) * 1000)
    info = client.websocket("/ws-info")
    kind, text = info.receive()
    assert kind == "text" and json.loads(text)["httpVersion"] == "HTTP/2", text
    assert json.loads(text)["scheme"] == ("wss" if secure else "ws"), text
    for ws in sockets:
        ws.close(1000)
        assert ws.close_code == 1000 and ws.ended and ws.reset is None, (ws.close_code, ws.ended, ws.reset)
    client.close()


def test_server_close_frame_is_followed_by_end_stream(h2c):
    client = H2Client(h2c.port)
    ws = client.websocket("/throw-after")
    assert ws.receive() == ("text", "about to fail")
    ended_right_after_close = ws.wait_for_close()
    assert ws.close_code == 1011, ws.close_code
    assert ended_right_after_close, "END_STREAM must follow the server's close frame at once (Chromium waits 2 s)"
    assert ws.reset is None
    client.close()


def test_permessage_deflate_over_http2(h2c):
    client = H2Client(h2c.port)
    ws = client.websocket("/echo", deflate=True)
    assert "permessage-deflate" in ws.headers.get("sec-websocket-extensions", ""), ws.headers
    ws.send_text("star " * 2000)
    received_before = len(ws.stream.data)
    assert ws.receive() == ("text", "star " * 2000)
    assert len(ws.stream.data) - received_before < 1000, "the echo came back compressed"
    ws.close()
    client.close()


def test_denial_is_an_http_response_on_the_stream(h2c):
    client = H2Client(h2c.port)
    ws = client.websocket("/guarded")
    status, headers, body = client.response(ws.stream)
    assert status == 401 and json.loads(body) == {"detail": "bad token"}, (status, body)
    accepted = client.websocket("/guarded?token=secret")
    assert accepted.status == 200
    client.close()


def test_reset_stream_is_1006_for_that_session_only(h2c):
    client = H2Client(h2c.port)
    doomed = client.websocket("/watch?tag=h2-reset")
    survivor = client.websocket("/watch?tag=h2-survivor")
    doomed.send_text("one")
    assert doomed.receive() == ("text", "got 1")
    client.reset(doomed.stream)
    found = wait_for_event(client, "watch h2-reset:")
    assert "WebSocketDisconnect(1006" in found[0], found
    survivor.send_text("still here")
    assert survivor.receive() == ("text", "got 1")
    assert not [e for e in events(client) if e.startswith("watch h2-survivor:")]
    survivor.close()
    client.close()


def test_end_stream_without_close_frame_is_1006(h2c):
    client = H2Client(h2c.port)
    ws = client.websocket("/watch?tag=h2-half")
    client.conn.end_stream(ws.stream.id)
    client.flush()
    found = wait_for_event(client, "watch h2-half:")
    assert "WebSocketDisconnect(1006" in found[0], found
    client.close()


def test_flow_control_is_send_backpressure(start_server):
    """A WebSocket stream whose window never opens: the handler's sends suspend (the count stops),
    and the server's memory does not grow with what it wanted to send."""
    server = start_server("ws-test-server", env={"STAR_TEST_KEEPALIVE": "off"})
    client = H2Client(server.port, settings={4: 0})  # SETTINGS_INITIAL_WINDOW_SIZE = 0
    client.pump(lambda: client.settings_acked)
    before = rss_kib(server)
    ws = client.websocket("/flood")
    assert ws.status == 200
    time.sleep(1.0)
    other = H2Client(server.port)
    first = json.loads(other.get("/flood-count")[2])["sent"]
    time.sleep(1.0)
    second = json.loads(other.get("/flood-count")[2])["sent"]
    assert second == first and second < 64, (first, second)
    assert rss_kib(server) - before < 32 * 1024, "a closed window must not pin memory"
    other.close()
    client.close()


# ---------------------------------------------------------------------------
# 3. The known HTTP/2 attacks: each ends that connection, and the server keeps serving
# ---------------------------------------------------------------------------

def still_serves(server):
    client = H2Client(server.port)
    status, _, body = client.get("/info")
    client.close()
    assert status == 200, body
    assert server.alive()


def test_rapid_reset_is_stopped(h2c):
    """CVE-2023-44487: streams opened and reset in a loop."""
    client = H2Client(h2c.port)
    try:
        for _ in range(1000):
            stream = client.start("GET", "/slow?ms=5000")
            client.reset(stream)
            client.read_once(0)
            if client.goaway or client.closed:
                break
        client.pump_until_closed()
    except (BrokenPipeError, ConnectionResetError):
        pass
    # NIO allows 200 resets in 30 s; the client sends faster than it reads the GOAWAY.
    assert client.goaway is not None and client.goaway[0] == ENHANCE_YOUR_CALM and client.closed, client.goaway
    client.close()
    still_serves(h2c)


def test_continuation_flood_is_stopped(h2c):
    """CVE-2024-27316: a header block that never ends, one CONTINUATION frame after another."""
    client = H2Client(h2c.port)
    block = client.conn.encoder.encode([(":method", "GET"), (":path", "/info"), (":scheme", "http"),
                                        (":authority", HOST)])
    client.send_raw(HeadersFrame(1, data=block).serialize())
    sent = 0
    try:
        for _ in range(10000):
            client.send_raw(ContinuationFrame(1, data=b"\x40\x01x\x01y").serialize())
            sent += 1
    except (BrokenPipeError, ConnectionResetError):
        pass
    client.pump_until_closed()
    assert client.goaway is not None and client.goaway[0] == ENHANCE_YOUR_CALM, client.goaway
    client.close()
    still_serves(h2c)


@pytest.mark.parametrize("frame", ["settings", "ping"])
def test_control_frame_flood_is_stopped(h2c, frame):
    client = H2Client(h2c.port)
    payload = (SettingsFrame(0, settings={4: 65535}) if frame == "settings" else PingFrame(0, opaque_data=b"12345678"))
    data = payload.serialize() * 100
    try:
        for _ in range(100):
            client.send_raw(data)
    except (BrokenPipeError, ConnectionResetError):
        pass
    client.pump_until_closed()
    assert client.goaway is not None and client.goaway[0] == ENHANCE_YOUR_CALM, client.goaway
    client.close()
    still_serves(h2c)


def test_hpack_bomb_is_refused(h2c):
    """One 4 KiB header indexed once and repeated: a few bytes on the wire, 400 KiB decoded,
    far past SETTINGS_MAX_HEADER_LIST_SIZE (16 KiB)."""
    client = H2Client(h2c.port)
    stream = client.start("GET", "/info", [("x-bomb", "b" * 4000)] * 100)
    try:
        client.pump(lambda: stream.status is not None or stream.reset is not None or client.goaway is not None
                    or client.closed)
    except ConnectionError:
        pass
    assert stream.status is None, "a header list past the limit must not reach the app"
    assert client.goaway is not None and client.goaway[0] == COMPRESSION_ERROR, client.goaway
    client.close()
    still_serves(h2c)


# ---------------------------------------------------------------------------
# 4. Graceful shutdown: GOAWAY, streams in flight finish, WebSockets close with 1001
# ---------------------------------------------------------------------------

def test_graceful_shutdown_sends_goaway_and_finishes_streams(start_server):
    server = start_server("ws-test-server")
    client = H2Client(server.port)
    ws = client.websocket("/echo")
    slow = client.start("GET", "/slow?ms=1500")
    time.sleep(0.2)
    server.proc.send_signal(signal.SIGTERM)
    client.pump(lambda: client.goaway is not None)
    ended_right_after_close = ws.wait_for_close()
    assert ws.close_code == 1001 and ended_right_after_close, (ws.close_code, ended_right_after_close)
    status, _, body = client.response(slow)
    assert status == 200 and body == b"slow done", (status, body)
    client.pump_until_closed()
    assert server.proc.wait(timeout=10) == 0


def test_open_streams_keep_a_connection_that_then_idles_out(start_server):
    """`--timeout-keep-alive 1`: a connection with a WebSocket stream open stays past it; once the
    stream ends, the idle connection gets GOAWAY (NO_ERROR, naming the last stream) and closes."""
    server = start_server("ws-test-server", args=["--timeout-keep-alive", "1"], env={"STAR_TEST_KEEPALIVE": "off"})
    client = H2Client(server.port)
    ws = client.websocket("/echo")
    time.sleep(2.0)
    ws.send_text("after 2 s")
    assert ws.receive() == ("text", "after 2 s")
    ws.close()
    started = time.monotonic()
    client.pump_until_closed(timeout=5)
    assert client.goaway == (0, ws.stream.id), client.goaway
    assert time.monotonic() - started < 3.0
