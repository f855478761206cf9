"""Chromium over HTTP/2: the demo page over h2, and its WebSocket on that same connection (RFC 8441).

Headless Chromium (cdp.py; conftest's `tls_browser`, which trusts only the certificate made at
test time, by its SPKI pin) loads the demo page `https://127.0.0.1:PORT/static/` from a `demo`
process with TLS; app.js opens `new WebSocket("wss://<same origin>/ws/lobby")` and an EventSource.
Chromium has no flag for RFC 8441: it opens a WebSocket as an extended CONNECT stream
(`:protocol: websocket`) when the origin already has an h2 connection whose SETTINGS carry
ENABLE_CONNECT_PROTOCOL=1; otherwise over HTTP/1.1 (101). What each test asserts:

- test_page_and_its_websocket_share_one_h2_connection, over DevTools: the page's main response
  has `protocol == "h2"`, and its assets and the EventSource have that protocol and the same
  `connectionId`; the socket's `Network.webSocketHandshakeResponseReceived` has status 200 (101
  would be HTTP/1.1), no `Sec-WebSocket-Accept` in the answer and no `Sec-WebSocket-Key` in the
  request (DevTools shows a made-up `GET ... Upgrade` request for such sockets, and no
  connection id: these are the real signs). From the page: a text and a 100 KiB binary
  message (more than the 65535-byte initial HTTP/2 window, so flow control runs both ways)
  echo through the demo's `room` handler; the page's own close (1000) completes cleanly within
  a second (a server that does not end the stream after its close frame costs 2 s in Chromium).
  On the server: in the access log, the `GET /static/ HTTP/2` line, the assets, the EventSource
  and the `"WEBSOCKET /ws/lobby" closed 1000` line all have one client port; and of the server's
  established TCP connections while everything is open (`ss -tin`: bytes received per client
  port), that one took in the 100 KiB message and any other no more than a TLS handshake
  (Chromium sometimes opens a spare connection and never uses it; without `ss`, /proc/net/tcp
  gives only the count, at most 2).
- test_control_websocket_over_http1 (the control, proving the checks above can fail): the same
  page over plain http, and over https with `--no-http2` (ALPN http/1.1): `protocol ==
  "http/1.1"`, status 101 with `Sec-WebSocket-Accept`, the socket on a TCP connection of its own
  (another client port in the log than the page's, two or more connections, the socket's took
  in the 100 KiB).
- test_handler_sees_http2_and_server_close_is_prompt: `ws-test-server` over TLS: `/ws-info`
  (the handler's `Request`) says `HTTP/2`, `wss`, and the client address of the page's own
  `GET /info`; `/hello` (the server sends one message and closes) reaches the page as a clean
  1000 promptly.
- test_tab_close_reaches_the_handler_with_the_close_code: closing the tab ends the handler's
  session at once: 1001 over HTTP/1.1 (Chromium's close frame), 1006 over h2, where Chromium resets
  the stream (RST_STREAM CANCEL) before its queued close frame is sent (Chromium's netlog logs a
  SEND_DATA for it, but the server's frame-by-frame trace shows the RST_STREAM as the stream's
  last frame: no close frame arrives, so RFC 6455's code is 1006).
- test_shutdown_with_an_idle_tls_connection, test_idle_h2_connection_closes_after_keep_alive_timeout
  (raw TLS sockets, no browser): Chromium often opens a second TLS connection to a new origin and
  leaves it idle and unread (ALPN h2, no preface), and does not read its idle HTTP/1.1 keep-alive
  connections either. With such a connection open, SIGTERM ends the server within 2 s, and an idle
  h2 connection closes after --timeout-keep-alive, as an HTTP/1.1 one does. (Found by this suite:
  NIO's HTTP/2 connection manager never started its idle timer on a connection that chose h2 after
  it was active, and waited at shutdown for a PING ack an unread connection never sends; NIOSSL
  waited 5 s for close_notify. Fixed by HTTP2ConnectionLifecycleHandler and a 1 s TLS shutdown wait.)

Servers: `demo` with TLS (access log on), `demo` on plain http and with TLS plus `--no-http2`
for the control, `ws-test-server` with TLS and without; certificate from conftest's `tls_cert`.
Run: PY=$(.ci/python-peers.sh) && .ci/browser.sh && $PY -m pytest -q -p no:cacheprovider Tests/Browser/test_http2_browser.py
"""

import json
import re
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.request

import pytest

import star_processes
from star_processes import HOST

# One access-log line: `127.0.0.1:PORT - "GET /static/ HTTP/2" 200 OK ...` or
# `127.0.0.1:PORT - "WEBSOCKET /ws/lobby" closed 1000 after ...`.
ACCESS_LINE = re.compile(r'(?P<host>[\d.]+):(?P<port>\d+) - "(?P<method>[A-Z]+) (?P<target>\S+)(?: (?P<version>HTTP/[\d.]+))?"'
                         r'(?: closed (?P<code>\d+|-))?')
BIG = 100 * 1024  # bytes of the binary message: more than HTTP/2's initial 65535-byte window


# -- servers --------------------------------------------------------------------------------

def finish(server):
    """finish_server, and when it fails, the server's connections at that moment (a TLS server
    with an idle browser connection can miss the 5 s: see test_shutdown_with_an_idle_tls_connection)."""
    connections = server_connections(server.port)
    failure = None
    try:
        star_processes.finish_server(server)
    except pytest.fail.Exception as exc:
        failure = str(exc)
    if failure:
        pytest.fail("%s\nestablished connections at SIGTERM {client port: bytes received}: %s (Chromium leaves "
                    "idle TLS connections that it does not read; see test_shutdown_with_an_idle_tls_connection)"
                    % (failure, connections), pytrace=False)


def _module_server(name, args_of):
    @pytest.fixture(scope="module")
    def fixture(tls_cert):
        server = star_processes.start_server(name, quiet=False, args=args_of(tls_cert), always_fail=True)
        try:
            yield server
        finally:
            finish(server)
    return fixture


demo_h2 = _module_server("demo", lambda cert: cert.server_args)
demo_plain = _module_server("demo", lambda cert: [])
demo_tls_h1 = _module_server("demo", lambda cert: cert.server_args + ["--no-http2"])
ws_test_h2 = _module_server("ws-test-server", lambda cert: cert.server_args)
ws_test_plain = _module_server("ws-test-server", lambda cert: [])


def origin(server, scheme):
    return "%s://%s:%d" % (scheme, HOST, server.port)


# -- observing the server -------------------------------------------------------------------

def server_connections(port):
    """The server's established TCP connections on `port` (its side: local port == port), as
    {client_port: bytes_received}, from `ss -tin` (iproute2); None for the bytes when `ss` is
    missing (then only /proc/net/tcp{,6} is read, and the counts are all we know)."""
    if shutil.which("ss"):
        out = subprocess.run(["ss", "-Htin", "state", "established", "( sport = :%d )" % port],
                             capture_output=True, text=True, timeout=10).stdout
        found, current = {}, None
        for line in out.splitlines():
            if not line[:1].isspace():  # "Recv-Q Send-Q local:port peer:port"
                current = int(line.split()[3].rsplit(":", 1)[1])
                found[current] = 0
            elif current is not None:
                m = re.search(r"\bbytes_received:(\d+)", line)
                found[current] = int(m.group(1)) if m else 0
        return found
    found = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    if fields[3] == "01" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                        found[int(fields[2].rsplit(":", 1)[1], 16)] = None
        except FileNotFoundError:
            continue
    return found


def log_offset(server):
    return len(server.log_tail(limit=10 ** 9))


def access_lines(server, offset):
    """The access-log lines written since `offset` (log_offset), parsed with ACCESS_LINE."""
    text = server.log_tail(limit=10 ** 9)[offset:]
    return [m.groupdict() for m in map(ACCESS_LINE.search, text.splitlines()) if m]


def wait_for_line(server, offset, predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while True:
        found = [line for line in access_lines(server, offset) if predicate(line)]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


# -- the page -------------------------------------------------------------------------------

# Run in the demo page (app.js's top-level `socket` is a global binding): waits until the lobby
# socket is open and has said "welcome to lobby" and the EventSource has shown note #1, then
# exchanges a text and a BIG binary message and closes the socket with 1000, timing the close.
EXCHANGE = r"""
(async () => {
  const stamp = %s, size = %d;
  const until = async (what, predicate, ms = 10000) => {
    const started = performance.now();
    while (!predicate()) {
      if (performance.now() - started > ms) throw new Error(what + ": not within " + ms + " ms");
      await new Promise(resolve => setTimeout(resolve, 25));
    }
  };
  await until("the socket open", () => socket.readyState === WebSocket.OPEN);
  await until("'welcome to lobby' in #chat", () => [...document.querySelectorAll("#chat li")].some(li => li.textContent === "welcome to lobby"));
  await until("note #1 in #notes (the EventSource)", () => document.querySelector('#notes li[data-id="1"]'));
  const received = [];
  socket.binaryType = "arraybuffer";
  socket.addEventListener("message", event => received.push(event.data));
  socket.send("over h2? " + stamp);
  await until("the text echo", () => received.some(m => typeof m === "string" && m.endsWith(stamp)));
  const big = new Uint8Array(size);  // random: permessage-deflate cannot shrink it below the h2 window
  for (let i = 0; i < size; i += 65536) crypto.getRandomValues(big.subarray(i, Math.min(size, i + 65536)));
  socket.send(big);
  await until("the binary echo", () => received.some(m => m instanceof ArrayBuffer));
  const echo = new Uint8Array(received.find(m => m instanceof ArrayBuffer));
  let same = echo.length === big.length;
  for (let i = 0; same && i < size; i++) same = echo[i] === big[i];
  // The moment of the question: page, EventSource and socket are all open.
  window.__connections = await new Promise(resolve => { window.__askConnections = resolve; });
  const closing = performance.now();
  const closed = await new Promise(resolve => {
    socket.addEventListener("close", e => resolve({code: e.code, clean: e.wasClean, ms: performance.now() - closing}));
    socket.close(1000, "done");
  });
  return JSON.stringify({
    text: received.filter(m => typeof m === "string"), binaryLength: echo.length, binarySame: same,
    extensions: socket.extensions, closed,
    navigationProtocol: performance.getEntriesByType("navigation")[0].nextHopProtocol,
  });
})()
"""


def run_demo_page(page, server, scheme):
    """Loads the demo page from `server` over `scheme` with Network events on, runs EXCHANGE,
    counts the server's TCP connections while everything is open; returns the facts seen by
    DevTools, the page and the server."""
    page.enable_network()
    offset = log_offset(server)
    url = origin(server, scheme) + "/static/"
    ws_url = origin(server, "wss" if scheme == "https" else "ws") + "/ws/lobby"
    page.navigate(url, timeout=15)
    stamp = "%d" % time.time_ns()
    # EXCHANGE runs in the page while Python counts connections at its pause.
    page.evaluate("window.__result = null; window.__error = null; (%s).then(r => window.__result = r, "
                  "e => window.__error = String(e)); 1" % (EXCHANGE.strip() % (json.dumps(stamp), BIG)),
                  await_promise=False, timeout=5)
    deadline = time.monotonic() + 20
    while not page.evaluate("typeof window.__askConnections === 'function' || window.__error !== null"):
        assert time.monotonic() < deadline, "the page never got to the open-socket moment; console: %s" % page.console
        time.sleep(0.05)
    error = page.evaluate("window.__error")
    assert error is None, "in the page: %s; console: %s" % (error, [str(m) for m in page.console])
    connections = server_connections(server.port)
    page.evaluate("window.__askConnections(%d); 1" % len(connections))
    while True:
        result, error = page.evaluate("window.__result"), page.evaluate("window.__error")
        if result or error:
            break
        assert time.monotonic() < deadline, "the page's exchange did not finish; console: %s" % page.console
        time.sleep(0.05)
    assert error is None, "in the page: %s; console: %s" % (error, [str(m) for m in page.console])
    result = json.loads(result)

    main = page.wait_event("Network.responseReceived", lambda p: p["type"] == "Document" and p["response"]["url"] == url,
                           timeout=5)["response"]
    responses = [e["params"] for e in page.events("Network.responseReceived")
                 if e["params"]["response"]["url"].startswith(origin(server, scheme) + "/")]
    created = page.wait_event("Network.webSocketCreated", lambda p: p["url"] == ws_url, timeout=5)
    handshake = page.wait_event("Network.webSocketHandshakeResponseReceived",
                                lambda p: p["requestId"] == created["requestId"], timeout=5)["response"]
    frames = [(e["method"], e["params"]["response"]) for e in page.events()
              if e["method"] in ("Network.webSocketFrameSent", "Network.webSocketFrameReceived")
              and e["params"]["requestId"] == created["requestId"]]
    closed_line = wait_for_line(server, offset, lambda l: l["method"] == "WEBSOCKET" and l["target"] == "/ws/lobby"
                                and l["code"] is not None)
    return {
        "page": result, "connections": connections, "main": main, "handshake": handshake, "frames": frames,
        "responses": [{"url": r["response"]["url"], "type": r["type"], "protocol": r["response"].get("protocol"),
                       "connectionId": r["response"].get("connectionId")} for r in responses],
        "log": access_lines(server, offset), "ws_line": closed_line[-1] if closed_line else None, "stamp": stamp,
    }


def assert_one_busy_connection(facts, port, detail):
    """Of the server's connections while everything was open, the one from client `port` took in
    the 100 KiB message and every other one no more than a TLS handshake: Chromium sometimes
    opens a second connection to a new origin and leaves it unused (with `ss` missing, only the
    count is known)."""
    connections = facts["connections"]
    assert port in connections, "the page's connection was not open: " + detail
    if any(received is None for received in connections.values()):
        print("no `ss` (iproute2): bytes per connection unknown, only the count is checked")
        assert len(connections) <= 2, detail
        return
    assert connections[port] > BIG, detail
    others = {p: received for p, received in connections.items() if p != port}
    assert all(received < 8192 for received in others.values()), \
        "another connection carried requests or messages: %s\n%s" % (others, detail)


def lower_keys(headers):
    return {k.lower(): v for k, v in (headers or {}).items()}


def assert_echoes(facts):
    page, stamp = facts["page"], facts["stamp"]
    detail = json.dumps({k: facts[k] for k in ("page", "ws_line")})
    assert page["text"] == ["lobby: over h2? " + stamp], detail
    assert page["binaryLength"] == BIG and page["binarySame"], "the %d-byte binary message did not echo intact: %s" % (BIG, detail)
    assert page["closed"]["code"] == 1000 and page["closed"]["clean"], detail
    sent = [f for m, f in facts["frames"] if m == "Network.webSocketFrameSent"]
    assert any(f["opcode"] == 1 and f["payloadData"].endswith(stamp) for f in sent), facts["frames"]
    assert any(f["opcode"] == 2 for f in sent), facts["frames"]
    received = [f for m, f in facts["frames"] if m == "Network.webSocketFrameReceived"]
    assert received and received[0]["opcode"] == 1 and received[0]["payloadData"] == "welcome to lobby", facts["frames"]
    assert facts["ws_line"] is not None and facts["ws_line"]["code"] == "1000", (
        "no 'WEBSOCKET /ws/lobby closed 1000' in the access log: %s" % facts["log"])


# -- what Chromium's idle connections meet on the server --------------------------------------
# Chromium sometimes opens two TLS connections to a new origin, uses one and leaves the other in
# its pool, idle and unread: ALPN h2 chosen, no connection preface sent (seen in its net log in
# about half the runs of this suite). These tests play that connection with a raw socket.

def tls_socket(server, alpn):
    context = ssl._create_unverified_context()
    context.set_alpn_protocols([alpn])
    raw = socket.create_connection((HOST, server.port), timeout=5)
    tls = context.wrap_socket(raw, server_hostname="localhost")
    assert tls.selected_alpn_protocol() == alpn
    return tls


@pytest.mark.parametrize("alpn", ["h2", "http/1.1"])
def test_shutdown_with_an_idle_tls_connection(alpn, tls_cert):
    """SIGTERM with one idle, never-read TLS connection open: the server exits 0 within 2 s and
    does not claim that handlers ignored cancellation (there are none)."""
    server = star_processes.start_server("ws-test-server", quiet=False, args=tls_cert.server_args, always_fail=True)
    try:
        idle = tls_socket(server, alpn)
        time.sleep(0.3)
        started = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        try:
            server.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            pass
        took = time.monotonic() - started
        idle.close()
        log = server.log_tail()
        assert server.proc.returncode == 0, "exit status %s after %.1fs; log:\n%s" % (server.proc.returncode, took, log)
        assert "handlers still running" not in log, "after %.1fs; log:\n%s" % (took, log)
        assert took < 2.0, "SIGTERM to exit took %.1fs with one idle %s connection; log:\n%s" % (took, alpn, log)
    finally:
        star_processes.stop_server(server)
        star_processes.remove_log(server)


@pytest.mark.parametrize("preface", ["no preface", "preface and SETTINGS"])
def test_idle_h2_connection_closes_after_keep_alive_timeout(preface, tls_cert):
    """`--timeout-keep-alive 1`: an HTTP/2 connection with no stream is closed within 3 s, as an
    HTTP/1.1 one is (HTTP2ConnectionLifecycleHandler's idle timer is the keep-alive timeout)."""
    server = star_processes.start_server("ws-test-server", args=tls_cert.server_args + ["--timeout-keep-alive", "1"],
                                         always_fail=True)
    try:
        idle = tls_socket(server, "h2")
        if preface == "preface and SETTINGS":
            idle.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        idle.settimeout(0.2)
        started, closed = time.monotonic(), False
        while time.monotonic() - started < 3.0 and not closed:
            try:
                closed = idle.recv(65536) == b""
            except socket.timeout:
                pass
            except OSError:
                closed = True
        idle.close()
        assert closed, "the idle HTTP/2 connection (%s) was still open after 3 s" % preface
    finally:
        star_processes.stop_server(server)
        star_processes.remove_log(server)


# -- the browser tests (last in the module: its servers stop in the teardown of the last test) --------------------------------------------------------------------------

def test_page_and_its_websocket_share_one_h2_connection(tls_page, demo_h2):
    facts = run_demo_page(tls_page, demo_h2, "https")
    detail = json.dumps({k: v for k, v in facts.items() if k != "frames"}, indent=1)
    main = facts["main"]

    # (a) the page came over h2, and so did everything else of the origin, on one connection.
    assert main["protocol"] == "h2", "the page was not served over h2: " + detail
    assert facts["page"]["navigationProtocol"] == "h2", detail
    connection = main.get("connectionId")
    assert connection, detail
    kinds = {r["type"] for r in facts["responses"]}
    assert {"Document", "Script", "Stylesheet", "EventSource"} <= kinds, detail
    assert all(r["protocol"] == "h2" and r["connectionId"] == connection for r in facts["responses"]), detail

    # (b) the socket: RFC 8441 (200, no Sec-WebSocket-Key/Accept), not an HTTP/1.1 upgrade (101).
    handshake = facts["handshake"]
    assert handshake["status"] == 200, "the WebSocket handshake was answered %s, not 200: the socket did not use " \
                                       "RFC 8441 (HTTP/1.1 answers 101)\n%s" % (handshake["status"], detail)
    assert "sec-websocket-accept" not in lower_keys(handshake.get("headers")), detail
    assert "sec-websocket-key" not in lower_keys(handshake.get("requestHeaders")), detail
    assert facts["page"]["extensions"].startswith("permessage-deflate"), detail  # negotiated as over HTTP/1.1
    assert_echoes(facts)
    assert facts["page"]["closed"]["ms"] < 1000, "closing took %.0f ms (Chromium waits 2 s for END_STREAM): %s" % (
        facts["page"]["closed"]["ms"], detail)

    # The server's side: in the access log the page's GET, its assets, the EventSource and the
    # socket's session all came from one client port, and that TCP connection (the only one that
    # carried more than a TLS handshake) took in the 100 KiB message.
    page_lines = [l for l in facts["log"] if l["method"] == "GET" and l["target"] == "/static/"]
    assert page_lines and all(l["version"] == "HTTP/2" for l in page_lines), detail
    ports = {l["port"] for l in facts["log"]}
    assert ports == {facts["ws_line"]["port"]} == {page_lines[-1]["port"]}, \
        "page, assets, EventSource and WebSocket came from more than one client port: " + detail
    assert_one_busy_connection(facts, int(page_lines[-1]["port"]), detail)
    assert demo_h2.alive()


@pytest.mark.parametrize("scheme", ["http", "https-no-http2"])
def test_control_websocket_over_http1(scheme, page, tls_page, demo_plain, demo_tls_h1):
    """The control: with HTTP/1.1 pages the same checks see 101 and a connection of the socket's own."""
    browser_page, server, url_scheme = ((page, demo_plain, "http") if scheme == "http"
                                        else (tls_page, demo_tls_h1, "https"))
    facts = run_demo_page(browser_page, server, url_scheme)
    detail = json.dumps({k: v for k, v in facts.items() if k != "frames"}, indent=1)
    assert facts["main"]["protocol"] == "http/1.1", detail
    assert facts["handshake"]["status"] == 101, detail
    assert "sec-websocket-accept" in lower_keys(facts["handshake"].get("headers")), detail
    assert_echoes(facts)
    page_line = [l for l in facts["log"] if l["method"] == "GET" and l["target"] == "/static/"][-1]
    assert page_line["version"] == "HTTP/1.1", detail
    ws_port = int(facts["ws_line"]["port"])
    assert ws_port != int(page_line["port"]), detail
    connections = facts["connections"]
    assert len(connections) >= 2 and ws_port in connections, detail  # at least the EventSource's and the socket's
    if connections[ws_port] is not None:
        assert connections[ws_port] > BIG, detail


def test_handler_sees_http2_and_server_close_is_prompt(tls_page, ws_test_h2):
    tls_page.navigate(origin(ws_test_h2, "https") + "/info", timeout=15)
    info = json.loads(tls_page.evaluate("document.body.innerText"))
    assert info["httpVersion"] == "HTTP/2", info
    result = json.loads(tls_page.evaluate(r"""
      (async () => {
        const session = path => new Promise((resolve, reject) => {
          const ws = new WebSocket("wss://" + location.host + path), messages = [];
          let opened = null;
          const timer = setTimeout(() => reject(new Error(path + ": no close within 5 s")), 5000);
          ws.onopen = () => opened = performance.now();
          ws.onmessage = e => messages.push(e.data);
          ws.onclose = e => { clearTimeout(timer);
            resolve({messages, code: e.code, clean: e.wasClean, msOpenToClose: opened === null ? null : performance.now() - opened}); };
        });
        return JSON.stringify({info: await session("/ws-info"), hello: await session("/hello")});
      })()""", timeout=15))
    ws_info = json.loads(result["info"]["messages"][0])
    assert ws_info["httpVersion"] == "HTTP/2" and ws_info["scheme"] == "wss" and ws_info["path"] == "/ws-info", result
    assert ws_info["client"] == info["client"], "the socket came from another connection than the page: %s" % result
    hello = result["hello"]
    assert hello["messages"] == ["hello"] and hello["code"] == 1000 and hello["clean"], result
    assert hello["msOpenToClose"] < 1000, "the server's close took %.0f ms to reach the page: %s" % (
        hello["msOpenToClose"], result)


def get_events(server, scheme):
    context = ssl._create_unverified_context() if scheme == "https" else None
    with urllib.request.urlopen(origin(server, scheme) + "/events", timeout=5, context=context) as response:
        return json.loads(response.read())


@pytest.mark.parametrize("protocol", ["h2", "http1"])
def test_tab_close_reaches_the_handler_with_the_close_code(protocol, tls_new_page, new_page, ws_test_h2, ws_test_plain):
    server, scheme, open_page = ((ws_test_h2, "https", tls_new_page) if protocol == "h2"
                                 else (ws_test_plain, "http", new_page))
    tag = "tab-%s-%d" % (protocol, time.time_ns())
    tab = open_page(origin(server, scheme) + "/info")
    assert json.loads(tab.evaluate("document.body.innerText"))["httpVersion"] == ("HTTP/2" if protocol == "h2" else "HTTP/1.1")
    tab.evaluate("""new Promise((resolve, reject) => {
      window.watch = new WebSocket(location.origin.replace(/^http/, "ws") + "/watch?tag=%s");
      setTimeout(() => reject(new Error("no answer within 5 s")), 5000);
      watch.onopen = () => watch.send("x");
      watch.onmessage = e => resolve(e.data);
    })""" % tag, timeout=10)
    tab.close()
    deadline = time.monotonic() + 5
    while True:
        ended = [e for e in get_events(server, scheme) if e.startswith("watch %s:" % tag)]
        if ended or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert ended, "the handler did not see the session end within 5 s of closing the tab"
    if protocol == "http1":
        assert ended == ["watch %s: ended with WebSocketDisconnect(1001, ) after 1 messages" % tag], ended
    else:
        # Chromium resets the stream (RST_STREAM CANCEL) as the tab closes, before its queued close
        # frame leaves: the server never receives a close frame (seen frame by frame on the server,
        # 2026-12-07: the stream's last frame is the RST_STREAM), so the session ends 1006, RFC 6455
        # §7.1.5's code for a connection lost without a close frame. What matters: that session
        # alone, and at once.
        assert ended == ["watch %s: ended with WebSocketDisconnect(1006, connection lost) after 1 messages" % tag], ended
