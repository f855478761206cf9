"""A real browser against the demo (Examples/Sources/Demo: main.swift and its page in Public/).

Headless Chromium (cdp.py) loads the page `/static/` of a `demo` process and checks, in the page:

- the assets: style.css is applied (the computed colour of `h1` and `max-width` of `body`), app.js
  ran (its `EventSource` filled `#notes` with "#1 Welcome to Star", its WebSocket to /ws/lobby put
  "welcome to lobby" in `#chat`), and the browser fetched both with 200;
- Server-Sent Events: notes added by `fetch("/notes", {method: "POST"})` from the page, by the
  page's own form (`#note-form`, `#note-text`) and by Python from outside all appear in `#notes`
  through the page's EventSource;
- CORS: the page of process A (http://127.0.0.1:A, one origin) POSTs JSON to process B
  (http://127.0.0.1:B, another origin): a preflighted request (Content-Type: application/json),
  which B's CORSHook allows; the page reads B's JSON answer, B's access log shows the preflight
  (`OPTIONS /notes` 204) and B (not A) has the note. The control: a header that CORSHook does not
  allow (`X-Not-Allowed`) makes the browser reject the fetch without sending the POST.

Servers: two demo processes per module (`demo_pair`): A quiet, B with its access log (info level).
Run: PY=$(.ci/python-peers.sh) && .ci/browser.sh && $PY -m pytest -q Tests/Browser/test_demo_browser.py
"""

import http.client
import json
import re
import time

import pytest

import star_processes
from star_processes import HOST, post_note

STEP_MS = 10000

# Helpers defined in the page for the scenarios below: waitFor(what, predicate) polls every
# 50 ms and rejects with `what` after STEP_MS; noteItems() lists #notes as {id, text}.
PAGE_HELPERS = r"""
window.__star = {
  waitFor(what, predicate, ms = __STEP_MS__) {
    const started = performance.now();
    return new Promise((resolve, reject) => {
      const poll = () => {
        let value;
        try { value = predicate(); } catch (e) { reject(e); return; }
        if (value) { resolve(value); return; }
        if (performance.now() - started > ms) { reject(new Error(what + ": not within " + ms + " ms")); return; }
        setTimeout(poll, 50);
      };
      poll();
    });
  },
  noteItems() {
    return [...document.querySelectorAll("#notes li")].map(li => ({id: li.dataset.id, text: li.textContent}));
  },
};
""".replace("__STEP_MS__", str(STEP_MS))


def evaluate(page, js, timeout=30):
    """Runs `js` (an async function body) in the page with the helpers; returns its JSON result."""
    source = "(async () => { %s\nconst $ = window.__star;\n%s\n})().then(v => JSON.stringify(v))" % (PAGE_HELPERS, js)
    return json.loads(page.evaluate(source, timeout=timeout))


@pytest.fixture(scope="module")
def demo_pair():
    """Two demo processes: A (quiet) and B (default options: info log with the access log)."""
    servers = []
    try:
        servers.append(star_processes.start_server("demo", always_fail=True))
        servers.append(star_processes.start_server("demo", quiet=False, always_fail=True))
        yield servers
    finally:
        star_processes.finish_servers(servers)


def get_json(server, path, timeout=5):
    conn = http.client.HTTPConnection(HOST, server.port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
        assert response.status == 200, (path, response.status, body)
        return json.loads(body)
    finally:
        conn.close()




def wait_for_log(server, pattern, timeout=5.0):
    """The server's log lines matching the regex `pattern`, polled until there is one (or [])."""
    deadline = time.monotonic() + timeout
    while True:
        found = [line for line in server.log_tail(limit=1000000).splitlines() if re.search(pattern, line)]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def console_errors(page):
    """The page's console errors, but the browser's own /favicon.ico request (the demo has none: 404)."""
    return [str(e) for e in page.console_errors() if not e.text.rstrip(")").endswith("/favicon.ico")]


def open_demo_page(page, server):
    page.navigate(server.http("/static/"))
    return evaluate(page, """
      await $.waitFor("the Welcome note in #notes", () => $.noteItems().some(n => n.id === "1"));
      return {url: location.href, title: document.title, notes: $.noteItems()};
    """)


def test_demo_page_loads_its_assets(page, demo_pair):
    a, _ = demo_pair
    page.navigate(a.http("/static/"))
    result = evaluate(page, """
      await $.waitFor("the Welcome note in #notes (app.js's EventSource)", () => $.noteItems().length > 0);
      await $.waitFor("the lobby's welcome in #chat (app.js's WebSocket)",
                      () => document.querySelectorAll("#chat li").length > 0);
      const resources = performance.getEntriesByType("resource").map(e => ({
        name: new URL(e.name).pathname, status: e.responseStatus, type: e.initiatorType}));
      return {
        title: document.title,
        h1Color: getComputedStyle(document.querySelector("h1")).color,
        bodyMaxWidth: getComputedStyle(document.body).maxWidth,
        sheets: [...document.styleSheets].map(s => s.href && new URL(s.href).pathname),
        rules: [...document.styleSheets].reduce((n, s) => n + s.cssRules.length, 0),
        notes: $.noteItems(),
        chat: [...document.querySelectorAll("#chat li")].map(li => li.textContent),
        resources,
      };
    """)
    detail = json.dumps(result)
    assert result["title"] == "Star demo", detail
    assert result["sheets"] == ["/static/style.css"] and result["rules"] >= 5, detail
    assert result["h1Color"] == "rgb(204, 102, 0)", "style.css not applied (h1 { color: #c60 }): " + detail
    assert result["bodyMaxWidth"] == "704px", "style.css not applied (body { max-width: 44rem }): " + detail
    assert result["notes"][0] == {"id": "1", "text": "#1 Welcome to Star"}, detail
    assert result["chat"][0] == "welcome to lobby", detail
    fetched = {r["name"]: r["status"] for r in result["resources"]}
    assert fetched.get("/static/style.css") == 200 and fetched.get("/static/app.js") == 200, detail
    errors = console_errors(page)
    assert not errors, "console errors: %s" % errors


def test_event_source_shows_new_notes(page, demo_pair):
    a, _ = demo_pair
    opened = open_demo_page(page, a)
    assert opened["notes"][0] == {"id": "1", "text": "#1 Welcome to Star"}, opened
    stamp = "%d-%d" % (time.time_ns(), id(page))
    result = evaluate(page, """
      const stamp = %s;
      // 1. fetch from the page
      const response = await fetch("/notes", {method: "POST", headers: {"Content-Type": "application/json"},
                                              body: JSON.stringify({text: "fetched " + stamp})});
      const created = await response.json();
      const seen = await $.waitFor("the fetched note in #notes",
                                   () => $.noteItems().find(n => n.id === String(created.id)));
      // 2. the page's own form (app.js's submit handler)
      document.getElementById("note-text").value = "typed " + stamp;
      document.getElementById("note-form").requestSubmit();
      const typed = await $.waitFor("the form's note in #notes",
                                    () => $.noteItems().find(n => n.text.endsWith(" typed " + stamp)));
      return {status: response.status, created, seen, typed, input: document.getElementById("note-text").value};
    """ % json.dumps(stamp))
    detail = json.dumps(result)
    assert result["status"] == 201, detail
    assert result["created"]["text"] == "fetched " + stamp, detail
    assert result["seen"] == {"id": str(result["created"]["id"]), "text": "#%d fetched %s" % (result["created"]["id"], stamp)}, detail
    assert int(result["typed"]["id"]) > result["created"]["id"], detail
    assert result["input"] == "", detail

    # 3. a note from outside the browser, pushed to the page by the server
    outside = post_note(a, "from python " + stamp)
    seen = evaluate(page, """
      return await $.waitFor("the note from Python in #notes", () => $.noteItems().find(n => n.id === %s));
    """ % json.dumps(str(outside["id"])))
    assert seen == {"id": str(outside["id"]), "text": "#%d from python %s" % (outside["id"], stamp)}, seen

    notes = evaluate(page, "return $.noteItems();")
    ids = [int(n["id"]) for n in notes]
    assert ids == sorted(set(ids)), "notes repeated or out of order: %r" % notes
    assert ids == [n["id"] for n in get_json(a, "/notes")], (notes, get_json(a, "/notes"))
    errors = console_errors(page)
    assert not errors, "console errors: %s" % errors


def test_cross_origin_fetch_passes_cors(page, demo_pair):
    a, b = demo_pair
    assert a.port != b.port
    open_demo_page(page, a)
    stamp = "cors-%d" % time.time_ns()
    before = len(wait_for_log(b, r'"OPTIONS /notes HTTP/1\.1" 204', timeout=0))
    result = evaluate(page, """
      const target = %s, stamp = %s;
      const response = await fetch(target + "/notes", {method: "POST", headers: {"Content-Type": "application/json"},
                                                       body: JSON.stringify({text: stamp})});
      const created = await response.json();
      const listed = await (await fetch(target + "/notes")).json();   // a simple cross-origin GET
      let blocked = null;
      try {
        await fetch(target + "/notes", {method: "POST", headers: {"Content-Type": "application/json", "X-Not-Allowed": "1"},
                                        body: JSON.stringify({text: "blocked " + stamp})});
        blocked = "the fetch with a disallowed header succeeded";
      } catch (e) {
        blocked = e.name + ": " + e.message;
      }
      return {origin: location.origin, status: response.status, type: response.type, created, listed, blocked};
    """ % (json.dumps("http://%s:%d" % (HOST, b.port)), json.dumps(stamp)))
    detail = json.dumps(result)
    assert result["origin"] == "http://%s:%d" % (HOST, a.port), detail
    assert result["status"] == 201 and result["type"] == "cors", detail
    assert result["created"]["text"] == stamp and isinstance(result["created"]["id"], int), detail
    assert result["created"] in result["listed"], detail
    assert result["blocked"].startswith("TypeError"), "a header CORSHook does not allow got through: " + detail

    # The server side: B had the preflight and has the note; A does not; the blocked POST never ran.
    preflights = wait_for_log(b, r'"OPTIONS /notes HTTP/1\.1" 204')
    assert len(preflights) > before, "no preflight in B's access log:\n" + b.log_tail()
    on_b = [n["text"] for n in get_json(b, "/notes")]
    on_a = [n["text"] for n in get_json(a, "/notes")]
    assert stamp in on_b and stamp not in on_a, (on_a, on_b)
    assert "blocked " + stamp not in on_b, "the POST with the disallowed header reached B: %r" % on_b
    assert a.alive() and b.alive()
