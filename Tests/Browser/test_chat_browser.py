"""Two real browsers' tabs chatting through two `chat` processes that share one PostgreSQL.

conftest's `chat_servers` runs two `chat` processes with --broadcast-url <postgres>; headless
Chromium (cdp.py) opens the chat page (Examples/Sources/Chat/index.html, served at `/`) from
each, on the same room (`/#room`). Page A types into #message and clicks #send with real
input events (CDP Input.insertText and mouse clicks), and page B shows the message as a new
<li> of #log, as text (markup in a message stays text: never innerHTML); then the other way
round. The sender sees its own message too.

The room's subscription on each process goes live a moment after the socket opens, so the
pages first exchange probes through `window.chat.send` until each has seen the other's.

The test runs twice: over http (`chat_servers`, HTTP/1.1, the sockets answered 101), and over
https + HTTP/2 (`tls_chat_servers`: the same two processes with `--ssl-certfile/--ssl-keyfile`
of conftest's `tls_cert`, tabs of conftest's `tls_browser`). Over https it also asserts, over
DevTools, that each tab's page came over `h2` and that its WebSocket rode that connection by
RFC 8441: `Network.webSocketHandshakeResponseReceived` has status 200 (not 101) and no
`Sec-WebSocket-Accept`; and, in the processes' access logs, `GET / HTTP/2`.

Run: STAR_TEST_POSTGRES_URL=$(.ci/postgres.sh start) PY=$(.ci/python-peers.sh) && .ci/browser.sh &&
     $PY -m pytest -q Tests/Browser/test_chat_browser.py
(without the variable the suite runs `.ci/postgres.sh start` itself).
"""

import json
import time
import uuid

import pytest

import star_processes


@pytest.fixture(scope="module")
def tls_chat_servers(postgres, tls_cert):
    """Two `chat` processes with TLS (HTTP/2 by ALPN) and --broadcast-url <postgres>, access log on."""
    servers = []
    try:
        for _ in range(2):
            servers.append(star_processes.start_server(
                "chat", quiet=False, args=["--broadcast-url", postgres.url] + tls_cert.server_args, always_fail=True))
        yield servers
    finally:
        star_processes.finish_servers(servers)


def wait_js(page, condition, timeout, what):
    """Polls the JavaScript expression `condition` in the page every 50 ms until it is truthy
    (an exception counts as false: the element may not be there yet); fails after `timeout`
    seconds with `what`, the page's status and the end of its log."""
    js = """(async () => {
      const deadline = performance.now() + %d;
      for (;;) {
        try { if (%s) return true; } catch (e) {}
        if (performance.now() > deadline) return false;
        await new Promise(resolve => setTimeout(resolve, 50));
      }
    })()""" % (int(timeout * 1000), condition)
    if not page.evaluate(js, timeout=timeout + 5):
        state = page.evaluate("JSON.stringify({url: location.href,"
                              " status: document.getElementById('status')?.textContent,"
                              " log: [...document.querySelectorAll('#log li')].slice(-5).map(li => li.textContent),"
                              " body: document.body?.innerText.slice(0, 200)})")
        raise AssertionError("no %s within %gs; page: %s; console: %s"
                             % (what, timeout, state, [str(m) for m in page.console[-10:]]))


def sync(page_a, page_b, timeout=20.0):
    """Both pages send probes (window.chat.send, every 250 ms) until each has received one from
    the other: from then on the room's subscription is live on both processes."""
    tag = "sync-%s" % uuid.uuid4().hex[:8]
    for page, name in ((page_a, "A"), (page_b, "B")):
        page.evaluate("window.__probe = setInterval(() => { try { chat.send(%s + Date.now()); } catch (e) {} }, 250); 1"
                      % json.dumps("%s|%s|" % (tag, name)))
    try:
        deadline = time.monotonic() + timeout
        for page, other in ((page_a, "B"), (page_b, "A")):
            wait_js(page, "chat.messages.some(m => m.startsWith(%s))" % json.dumps("%s|%s|" % (tag, other)),
                    max(1.0, deadline - time.monotonic()), "probe from page %s (the room's subscription going live)"
                    % other)
    finally:
        for page in (page_a, page_b):
            page.evaluate("clearInterval(window.__probe); 1")


def type_and_send(page, text):
    """Focuses #message, types `text` (Input.insertText), clicks #send with the mouse."""
    page.evaluate("document.getElementById('message').focus(); 1")
    page.send("Input.insertText", {"text": text})
    assert page.evaluate("document.getElementById('message').value") == text, "typing into #message failed"
    box = page.evaluate("JSON.stringify((() => { const b = document.getElementById('send'); b.scrollIntoView(); "
                        "const r = b.getBoundingClientRect(); return {x: r.x + r.width / 2, y: r.y + r.height / 2, "
                        "disabled: b.disabled}; })())")
    box = json.loads(box)
    assert not box["disabled"], "#send is disabled (the socket is not open)"
    for kind in ("mousePressed", "mouseReleased"):
        page.send("Input.dispatchMouseEvent", {"type": kind, "x": box["x"], "y": box["y"], "button": "left",
                                               "clickCount": 1})
    wait_js(page, "document.getElementById('message').value === ''", 5, "#message cleared after sending")


def log_items(page):
    """#log's items: [{text, children}] (children: element count inside the <li>)."""
    return json.loads(page.evaluate(
        "JSON.stringify([...document.querySelectorAll('#log > li')].map(li => ({text: li.textContent, "
        "children: li.children.length})))"))


def assert_shown(page, text, who):
    wait_js(page, "[...document.querySelectorAll('#log > li')].some(li => li.textContent === %s)" % json.dumps(text),
            15, "%s showing %r in #log" % (who, text))
    matches = [item for item in log_items(page) if item["text"] == text]
    assert len(matches) == 1, "%s shows the message %d times: %s" % (who, len(matches), matches)
    assert matches[0]["children"] == 0, "%s rendered the message as markup (an <li> with child elements)" % who
    assert page.evaluate("chat.messages.filter(m => m === %s).length" % json.dumps(text)) == 1


def open_chat(open_page, server, scheme, room, network):
    """A tab on `server`'s chat page, room `room`; with `network`, DevTools' Network events are
    on before the page loads (for the protocol checks)."""
    url = "%s://%s:%d/#%s" % (scheme, server.host, server.port, room)
    if not network:
        return open_page(url)
    page = open_page("about:blank")
    page.enable_network()
    page.navigate(url)
    return page


def assert_h2_with_rfc8441_socket(page, server, who):
    """The page's document came over h2, and its chat socket by RFC 8441 on that connection."""
    origin = "https://%s:%d" % (server.host, server.port)
    main = page.wait_event("Network.responseReceived",
                           lambda p: p["type"] == "Document" and p["response"]["url"].startswith(origin + "/"),
                           timeout=5)["response"]
    assert main["protocol"] == "h2", "%s: the page came over %s, not h2" % (who, main["protocol"])
    created = page.wait_event("Network.webSocketCreated", lambda p: p["url"].startswith("wss://%s:%d/ws/" % (
        server.host, server.port)), timeout=5)
    handshake = page.wait_event("Network.webSocketHandshakeResponseReceived",
                                lambda p: p["requestId"] == created["requestId"], timeout=5)["response"]
    assert handshake["status"] == 200, "%s: the socket was answered %s, not 200 (RFC 8441): %s" % (
        who, handshake["status"], handshake)
    assert "sec-websocket-accept" not in {k.lower() for k in handshake.get("headers", {})}, (who, handshake)
    log = server.log_tail(limit=10 ** 9)
    assert '"GET / HTTP/2" 200' in log, "%s: no `GET / HTTP/2` in the access log:\n%s" % (who, log[-2000:])


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_two_pages_on_two_processes_chat_through_the_dom(scheme, request):
    if scheme == "https":  # h2 by ALPN, each socket an RFC 8441 stream on its page's connection
        a, b = servers = request.getfixturevalue("tls_chat_servers")
        open_page = request.getfixturevalue("tls_new_page")
    else:
        a, b = servers = request.getfixturevalue("chat_servers")
        open_page = request.getfixturevalue("new_page")
    room = "browser-%s" % uuid.uuid4().hex[:8]
    page_a = open_chat(open_page, a, scheme, room, network=scheme == "https")
    page_b = open_chat(open_page, b, scheme, room, network=scheme == "https")
    for page, who in ((page_a, "page A"), (page_b, "page B")):
        wait_js(page, "document.getElementById('status').textContent === 'open'", 15, "#status 'open' on " + who)
        assert page.evaluate("location.pathname") == "/", who
    if scheme == "https":
        assert_h2_with_rfc8441_socket(page_a, a, "page A")
        assert_h2_with_rfc8441_socket(page_b, b, "page B")
    sync(page_a, page_b)

    from_a = "Hello from A <b>not bold</b> & <img src=x onerror=alert(1)> — ünïcödé 🚀 %s" % uuid.uuid4().hex[:6]
    type_and_send(page_a, from_a)
    assert_shown(page_b, from_a, "page B (the other process)")
    assert_shown(page_a, from_a, "page A (the sender)")

    from_b = "And back from B: <script>document.body.remove()</script> %s" % uuid.uuid4().hex[:6]
    type_and_send(page_b, from_b)
    assert_shown(page_a, from_b, "page A (the other process)")
    assert_shown(page_b, from_b, "page B (the sender)")

    for page, who in ((page_a, "page A"), (page_b, "page B")):
        assert page.evaluate("document.getElementById('status').textContent") == "open", who
        errors = page.console_errors()
        assert not errors, "%s console errors: %s" % (who, [str(e) for e in errors])
    for server in servers:
        assert server.alive(), "%s died; log:\n%s" % (server.name, server.log_tail())
