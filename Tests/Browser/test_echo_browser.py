"""A real browser against the echo example (Examples/Sources/Echo, route /echo).

Headless Chromium (cdp.py) opens about:blank and runs ECHO_SCENARIO in the page: a
`new WebSocket("ws://127.0.0.1:N/echo")`, a text message with non-ASCII characters
(2- to 4-byte UTF-8, surrogate pairs included) and a 200 KiB binary ArrayBuffer of a
deterministic pattern; both echoes are checked byte for byte in JavaScript, then the
page closes with 1000 and the promise resolves with a JSON summary.

Run: PY=$(.ci/python-peers.sh) && .ci/browser.sh && $PY -m pytest -q Tests/Browser
"""

import json

BINARY_SIZE = 200 * 1024

# __URL__ is replaced by the JSON-quoted URL. Every wait has its own timer, so a stuck
# step rejects with its name instead of hanging until the CDP timeout.
ECHO_SCENARIO = r"""
(async () => {
  const url = __URL__;
  const STEP_MS = 10000;
  const started = performance.now();
  const step = (what, promise) => Promise.race([promise, new Promise((_, reject) =>
      setTimeout(() => reject(new Error(what + ": no result within " + STEP_MS + " ms")), STEP_MS))]);

  const ws = new WebSocket(url);
  ws.binaryType = "arraybuffer";
  const inbox = [], waiters = [];
  let closeEvent = null;
  const closed = new Promise(resolve => ws.addEventListener("close", event => {
    closeEvent = {code: event.code, reason: event.reason, wasClean: event.wasClean};
    for (const w of waiters.splice(0)) w.reject(new Error("closed with " + event.code + " while waiting for " + w.what));
    resolve(closeEvent);
  }));
  ws.addEventListener("message", event => {
    const w = waiters.shift();
    if (w) w.resolve(event.data); else inbox.push(event.data);
  });
  const next = what => inbox.length ? Promise.resolve(inbox.shift())
      : step(what, new Promise((resolve, reject) => waiters.push({resolve, reject, what})));

  await step("open", new Promise((resolve, reject) => {
    ws.addEventListener("open", resolve, {once: true});
    closed.then(c => reject(new Error("closed before open: code " + c.code)));
  }));
  const extensions = ws.extensions, protocol = ws.protocol;

  const text = "Grüße from Star ★ — café, naïve, Ωμέγα, Привет, 日本語テキスト, 🚀🌍👍🏽 ".repeat(16) + "✓";
  const bytes = new Uint8Array(__SIZE__);
  for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 7 + (i >>> 9) * 13 + 0x5a) & 0xff;

  ws.send(text);
  ws.send(bytes.buffer);
  const first = await next("the text echo");
  const second = await next("the binary echo");

  const textOk = typeof first === "string" && first === text;
  let binaryOk = false, firstMismatch = null, binaryLength = null;
  if (second instanceof ArrayBuffer) {
    const got = new Uint8Array(second);
    binaryLength = got.length;
    for (let i = 0; i < Math.min(got.length, bytes.length); i++) {
      if (got[i] !== bytes[i]) { firstMismatch = i; break; }
    }
    binaryOk = got.length === bytes.length && firstMismatch === null;
  }

  ws.close(1000, "done");
  const c = await step("the closing handshake", closed);
  return JSON.stringify({
    url, extensions, protocol, textOk, binaryOk,
    closeCode: c.code, closeReason: c.reason, wasClean: c.wasClean,
    textType: typeof first, textLength: typeof first === "string" ? first.length : null,
    sentTextLength: text.length, binaryType: Object.prototype.toString.call(second),
    binaryLength, firstMismatch, milliseconds: Math.round(performance.now() - started),
  });
})()
"""


def run_echo_scenario(page, url, timeout=45):
    js = ECHO_SCENARIO.replace("__URL__", json.dumps(url)).replace("__SIZE__", str(BINARY_SIZE))
    return json.loads(page.evaluate(js, timeout=timeout))


def header(headers, name):
    """A header from a CDP headers object (names in any case; repeated ones joined by newlines)."""
    for key, value in (headers or {}).items():
        if key.lower() == name.lower():
            return value
    return None


def test_echo_roundtrip_in_chromium(page, echo_server):
    summary = run_echo_scenario(page, echo_server.ws("/echo"))
    detail = json.dumps(summary, ensure_ascii=False)
    assert summary["textOk"], "text echo differs: " + detail
    assert summary["binaryOk"], "binary echo differs: " + detail
    assert summary["closeCode"] == 1000 and summary["wasClean"], "unclean close: " + detail
    errors = page.console_errors()
    assert not errors, "console errors: %s" % [str(e) for e in errors]
    assert echo_server.alive(), "echo died; log:\n" + echo_server.log_tail()


def test_echo_negotiates_permessage_deflate(page, echo_server):
    """Chromium always offers permessage-deflate; a server that implements it (RFC 7692)
    accepts it and the same round trip then runs compressed."""
    page.enable_network()
    summary = run_echo_scenario(page, echo_server.ws("/echo"))
    requests = page.events("Network.webSocketWillSendHandshakeRequest")
    responses = page.events("Network.webSocketHandshakeResponseReceived")
    offered = header(requests[-1]["params"]["request"]["headers"], "Sec-WebSocket-Extensions") if requests else None
    answered = header(responses[-1]["params"]["response"]["headers"], "Sec-WebSocket-Extensions") if responses else None
    assert offered and "permessage-deflate" in offered, "Chromium did not offer permessage-deflate: %r" % offered
    assert "permessage-deflate" in summary["extensions"], (
        "the server did not accept permessage-deflate: ws.extensions=%r; Chromium offered "
        "Sec-WebSocket-Extensions: %r; the server's 101 answered: %r"
        % (summary["extensions"], offered, answered))
    assert summary["textOk"] and summary["binaryOk"], "round trip failed under deflate: %s" % summary
    assert summary["closeCode"] == 1000 and summary["wasClean"], "unclean close: %s" % summary
