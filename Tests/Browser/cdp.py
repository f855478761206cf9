"""A small Chrome DevTools Protocol driver for headless Chromium, for tests.

Chromium runs as a real browser (`--headless=new`, real time, real sockets) and is
driven over CDP: not `--dump-dom`, whose virtual time runs ahead of socket I/O so
that pages waiting on a WebSocket time out.

    from cdp import Browser
    with Browser() as browser:                      # launches chromium, temp profile
        page = browser.new_page()                   # a fresh about:blank tab
        page.navigate("http://127.0.0.1:8000/")     # waits for its load event
        value = page.evaluate("fetch('/x').then(r => r.status)", timeout=10)
        print(page.console)                         # ConsoleMessage(source, level, text)
    # closing kills the browser's process group and removes the profile dir

Every call is bounded by a timeout (TimeoutError). A JavaScript exception or a
rejected promise raises JavaScriptError; a CDP error reply raises CDPError; a
browser that does not start, crashes or drops the DevTools connection raises
BrowserError (with the tail of Chromium's stderr where it helps).

The protocol runs on an asyncio loop in a background thread (so console messages
and events are collected even between calls), over `websockets.asyncio.client`.
The public API is synchronous, for plain pytest tests.

Chromium: the `binary` argument, else $CHROMIUM, else Debian's
/usr/lib/chromium/chromium, else `chromium` / `chromium-browser` / `google-chrome`
on PATH. `.ci/browser.sh` installs it. Run as a script for a quick check:
`python cdp.py [URL] [JS]`.
"""

import asyncio
import atexit
import collections
import concurrent.futures
import json
import math
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.request
import weakref

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

DEFAULT_TIMEOUT = 30.0
LAUNCH_TIMEOUT = 30.0
MAX_MESSAGE = 256 * 1024 * 1024  # CDP replies carry whole values (returnByValue) and screenshots
MAX_EVENTS = 10000               # events kept per page (oldest dropped)

# --headless=new is the real browser without a window; --no-sandbox is required as
# root (CI runs as root) and in most containers; --remote-debugging-port=0 lets
# Chromium pick a free port, which it writes to <profile>/DevToolsActivePort.
BASE_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--remote-debugging-port=0",
    "--remote-debugging-address=127.0.0.1",
    "--no-first-run",
    "--no-default-browser-check",
    "--no-proxy-server",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-sync",
    "--mute-audio",
    "--password-store=basic",
)


class BrowserError(RuntimeError):
    """Chromium did not start, died, or dropped the DevTools connection."""


class CDPError(RuntimeError):
    """A CDP command answered with an error."""

    def __init__(self, method, error):
        self.method = method
        self.error = error
        super().__init__("%s failed: %s" % (method, error.get("message", error) if isinstance(error, dict) else error))


class JavaScriptError(RuntimeError):
    """The evaluated JavaScript threw, or its promise rejected."""

    def __init__(self, message, details=None):
        self.details = details or {}
        super().__init__(message)


class ConsoleMessage(collections.namedtuple("ConsoleMessage", "source level text")):
    """One console line: source is "console-api" (console.*), "exception" (uncaught)
    or a Log domain source ("network", "javascript", ...); level is console.*'s type
    ("log", "error", "warning", ...) or the Log entry's level."""

    def __str__(self):
        return "[%s/%s] %s" % (self.source, self.level, self.text)


def find_chromium():
    """The Chromium executable to use, or None."""
    explicit = os.environ.get("CHROMIUM")
    if explicit:  # when set, it is the only candidate
        path = explicit if os.sep in explicit else shutil.which(explicit)
        return path if path and os.path.isfile(path) and os.access(path, os.X_OK) else None
    path = "/usr/lib/chromium/chromium"
    if os.path.isfile(path) and os.access(path, os.X_OK):
        return path
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


def _http(method, url, timeout):
    """A JSON request to the DevTools HTTP endpoint, bypassing any proxy."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    request = urllib.request.Request(url, method=method)
    with opener.open(request, timeout=timeout) as response:
        body = response.read()
    try:
        return json.loads(body)
    except ValueError:
        return body.decode("utf-8", "replace")


def _remote_text(obj):
    """A short text for a Runtime.RemoteObject (console argument, exception)."""
    if "value" in obj:
        value = obj["value"]
        return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    if "unserializableValue" in obj:
        return obj["unserializableValue"]
    if "description" in obj:
        return obj["description"]
    return obj.get("type", "?")


def _exception_text(details):
    exception = details.get("exception") or {}
    text = exception.get("description") or (_remote_text(exception) if exception else None)
    if text:
        return text  # an Error's description carries its stack
    text = details.get("text") or "JavaScript exception"
    if "lineNumber" in details:
        text += " (line %d, column %d)" % (details["lineNumber"] + 1, details.get("columnNumber", 0) + 1)
    return text


def _unserializable(text):
    if text == "NaN":
        return math.nan
    if text == "Infinity":
        return math.inf
    if text == "-Infinity":
        return -math.inf
    if text == "-0":
        return -0.0
    if text.endswith("n"):  # BigInt
        return int(text[:-1])
    return text


class _Session:
    """One DevTools WebSocket connection (runs on the browser's loop thread)."""

    def __init__(self, url):
        self.url = url
        self.ws = None
        self.reader = None
        self.next_id = 0
        self.pending = {}
        self.events = collections.deque(maxlen=MAX_EVENTS)
        self.event_count = 0
        self.waiters = []  # (method, predicate, future)
        self.console = []
        self.closed = None  # why the connection ended, once it has

    async def open(self, timeout):
        self.ws = await connect(
            self.url, max_size=MAX_MESSAGE, max_queue=None, ping_interval=None, compression=None,
            proxy=None, open_timeout=timeout, close_timeout=2, user_agent_header=None,
        )
        self.reader = asyncio.get_running_loop().create_task(self._read())

    async def send(self, method, params=None, timeout=DEFAULT_TIMEOUT):
        if self.closed is not None:
            raise BrowserError("DevTools connection is closed (%s); cannot send %s" % (self.closed, method))
        self.next_id += 1
        ident = self.next_id
        future = asyncio.get_running_loop().create_future()
        self.pending[ident] = (method, future)
        try:
            await self.ws.send(json.dumps({"id": ident, "method": method, "params": params or {}}))
            return await asyncio.wait_for(future, timeout)
        except asyncio.TimeoutError:
            raise TimeoutError("CDP %s got no reply within %gs" % (method, timeout)) from None
        except ConnectionClosed as exc:
            raise BrowserError("DevTools connection closed while sending %s: %s" % (method, exc)) from None
        finally:
            self.pending.pop(ident, None)

    def expect(self, method, predicate=None, include_past=True):
        """A future for the next `method` event matching `predicate` (already received
        ones count when include_past). Register it before the command that causes it."""
        future = asyncio.get_running_loop().create_future()
        if include_past:
            for event in self.events:
                if event["method"] == method and (predicate is None or predicate(event["params"])):
                    future.set_result(event["params"])
                    return future
        self.waiters.append((method, predicate, future))
        return future

    async def _read(self):
        reason = "closed"
        try:
            async for raw in self.ws:
                message = json.loads(raw)
                if "id" in message:
                    method, future = self.pending.get(message["id"], (None, None))
                    if future is not None and not future.done():
                        if "error" in message:
                            future.set_exception(CDPError(method, message["error"]))
                        else:
                            future.set_result(message.get("result", {}))
                elif "method" in message:
                    self._event(message["method"], message.get("params", {}))
        except ConnectionClosed as exc:
            reason = "connection closed: %s" % exc
        except Exception as exc:  # a bug here must not hang the callers
            reason = "reader failed: %r" % exc
        finally:
            self.closed = reason
            error = BrowserError("DevTools connection ended (%s)" % reason)
            for _, future in list(self.pending.values()):
                if not future.done():
                    future.set_exception(error)
            for _, _, future in self.waiters:
                if not future.done():
                    future.set_exception(error)
            self.waiters = []

    def _event(self, method, params):
        self.events.append({"method": method, "params": params})
        self.event_count += 1
        if method == "Runtime.consoleAPICalled":
            text = " ".join(_remote_text(arg) for arg in params.get("args", []))
            self.console.append(ConsoleMessage("console-api", params.get("type", "log"), text))
        elif method == "Runtime.exceptionThrown":
            self.console.append(ConsoleMessage("exception", "error", _exception_text(params.get("exceptionDetails", {}))))
        elif method == "Log.entryAdded":
            entry = params.get("entry", {})
            text = entry.get("text", "")
            if entry.get("url"):
                text += " (%s)" % entry["url"]
            self.console.append(ConsoleMessage(entry.get("source", "other"), entry.get("level", "info"), text))
        elif method == "Inspector.detached" or method == "Inspector.targetCrashed":
            error = BrowserError("page target went away: %s %s" % (method, params))
            for _, future in list(self.pending.values()):
                if not future.done():
                    future.set_exception(error)
        remaining = []
        for waiter in self.waiters:
            wanted, predicate, future = waiter
            if future.done():
                continue
            if wanted == method:
                try:
                    matched = predicate is None or predicate(params)
                except Exception as exc:
                    future.set_exception(exc)
                    continue
                if matched:
                    future.set_result(params)
                    continue
            remaining.append(waiter)
        self.waiters = remaining

    async def close(self):
        if self.ws is not None:
            try:
                await asyncio.wait_for(self.ws.close(), 3)
            except Exception:
                pass
        if self.reader is not None:
            self.reader.cancel()
            try:
                await self.reader
            except BaseException:
                pass


class Page:
    """One browser tab (a CDP page target). Make it with Browser.new_page()."""

    def __init__(self, browser, target_id, session):
        self.browser = browser
        self.target_id = target_id
        self._session = session
        self.closed = False

    # -- raw protocol -------------------------------------------------------------------

    def send(self, method, params=None, timeout=DEFAULT_TIMEOUT):
        """Any CDP command on this page; returns its result dict."""
        return self.browser._run(self._session.send(method, params, timeout), timeout + 1)

    def wait_event(self, method, predicate=None, timeout=DEFAULT_TIMEOUT, include_past=True):
        """Waits for an event of this page's enabled domains (Page, Runtime, Log, and
        Network after enable_network()); returns its params."""
        async def wait():
            future = self._session.expect(method, predicate, include_past)
            try:
                return await asyncio.wait_for(future, timeout)
            except asyncio.TimeoutError:
                raise TimeoutError("no %s event within %gs" % (method, timeout)) from None
        return self.browser._run(wait(), timeout + 1)

    def events(self, method=None):
        """The events received so far (the last MAX_EVENTS), as {"method", "params"} dicts."""
        snapshot = self.browser._run(self._snapshot(), 5)
        return [e for e in snapshot if method is None or e["method"] == method]

    async def _snapshot(self):
        return list(self._session.events)

    def enable_network(self, timeout=DEFAULT_TIMEOUT):
        """Turns on Network events (HTTP requests, WebSocket handshakes and frames)."""
        self.send("Network.enable", {}, timeout)

    # -- the usual operations -----------------------------------------------------------

    def navigate(self, url, timeout=DEFAULT_TIMEOUT):
        """Loads `url` and waits for its load event. Returns Page.navigate's result."""
        return self.browser._run(self._navigate(url, timeout), timeout + 1)

    async def _navigate(self, url, timeout):
        deadline = time.monotonic() + timeout
        result = await self._session.send("Page.navigate", {"url": url}, timeout)
        if result.get("errorText"):
            raise BrowserError("navigation to %s failed: %s" % (url, result["errorText"]))
        loader = result.get("loaderId")
        if loader:  # a new document (a same-document navigation has no loader and no load event)
            future = self._session.expect(
                "Page.lifecycleEvent", lambda p: p.get("name") == "load" and p.get("loaderId") == loader)
            try:
                await asyncio.wait_for(future, max(0.1, deadline - time.monotonic()))
            except asyncio.TimeoutError:
                raise TimeoutError("%s did not finish loading within %gs" % (url, timeout)) from None
        return result

    def evaluate(self, js, await_promise=True, timeout=DEFAULT_TIMEOUT):
        """Evaluates the expression `js` in the page and returns its value (JSON-able
        values come back as Python values; undefined as None; a top-level NaN, Infinity,
        -0 or BigInt too, but not inside an object: return JSON.stringify(...) for those).
        With await_promise, a promise is awaited. Raises JavaScriptError when it throws or
        rejects, and TimeoutError (with the console so far) after `timeout` seconds."""
        # Runtime.evaluate's own `timeout` terminates a script that runs synchronously for
        # too long (leaving the page usable); awaiting a promise is bounded on our side.
        params = {"expression": js, "awaitPromise": bool(await_promise), "returnByValue": True,
                  "userGesture": True, "timeout": max(1, int(timeout * 1000))}
        started = time.monotonic()
        try:
            result = self.send("Runtime.evaluate", params, timeout)
        except TimeoutError as exc:
            console = "\n".join(str(m) for m in self.console[-20:]) or "(none)"
            raise TimeoutError("%s; console so far:\n%s" % (exc, console)) from None
        except CDPError as exc:
            if time.monotonic() - started >= timeout * 0.9:  # V8 terminated it: "Internal error"
                raise TimeoutError("the script ran for more than %gs and was terminated (%s)" % (timeout, exc)) from None
            raise
        if "exceptionDetails" in result:
            raise JavaScriptError(_exception_text(result["exceptionDetails"]), result["exceptionDetails"])
        obj = result.get("result", {})
        if "unserializableValue" in obj:
            return _unserializable(obj["unserializableValue"])
        return obj.get("value")

    @property
    def console(self):
        """Console messages, uncaught exceptions and log entries so far (a copy)."""
        return list(self._session.console)

    def console_errors(self):
        return [m for m in self.console if m.level == "error"]

    def close(self, timeout=10):
        if self.closed:
            return
        self.closed = True
        try:
            self.browser._run(self._session.close(), timeout)
        finally:
            try:
                self.browser._devtools_http("GET", "/json/close/%s" % self.target_id, timeout=5)
            except Exception:
                pass  # the browser may be gone already
            if self in self.browser._pages:
                self.browser._pages.remove(self)


_live_browsers = weakref.WeakSet()


@atexit.register
def _kill_leftovers():
    for browser in list(_live_browsers):
        browser.close()


class Browser:
    """A headless Chromium process with a throw-away profile.

    `Browser(binary=None, extra_args=(), launch_timeout=30)`: starts at construction
    (or use it as a context manager, which also closes it). `close()` is idempotent.
    """

    def __init__(self, binary=None, extra_args=(), launch_timeout=LAUNCH_TIMEOUT):
        self.binary = binary or find_chromium()
        if not self.binary:
            raise BrowserError("no Chromium found (%s; install it with .ci/browser.sh)"
                               % ("$CHROMIUM=%s is not an executable" % os.environ["CHROMIUM"]
                                  if os.environ.get("CHROMIUM") else "$CHROMIUM is not set"))
        self.extra_args = list(extra_args)
        self.proc = None
        self.port = None
        self.version = {}
        self._pages = []
        self._closed = False
        self._root = tempfile.mkdtemp(prefix="star-chromium-")
        self.profile_dir = os.path.join(self._root, "profile")
        self.log_path = os.path.join(self._root, "chromium.log")
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="cdp-loop", daemon=True)
        self._thread.start()
        _live_browsers.add(self)
        try:
            self._launch(launch_timeout)
        except BaseException:
            self.close()
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- process ----------------------------------------------------------------------

    def _launch(self, timeout):
        os.makedirs(self.profile_dir)
        command = [self.binary, *BASE_FLAGS, "--user-data-dir=" + self.profile_dir, *self.extra_args, "about:blank"]
        with open(self.log_path, "wb") as log:
            # Its own process group, so that close() ends the renderer and helper
            # processes too, and nothing else.
            self.proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         start_new_session=True)
        deadline = time.monotonic() + timeout
        port_file = os.path.join(self.profile_dir, "DevToolsActivePort")
        while self.port is None:
            if self.proc.poll() is not None:
                raise BrowserError("chromium exited with status %s before DevTools was up; its log:\n%s"
                                   % (self.proc.returncode, self.log_tail()))
            if time.monotonic() > deadline:
                raise BrowserError("chromium's DevTools port did not appear within %gs; its log:\n%s"
                                   % (timeout, self.log_tail()))
            self.port = self._port_from_file(port_file) or self._port_from_log()
            if self.port is None:
                time.sleep(0.05)
        # The port file can precede the HTTP endpoint by a moment.
        while True:
            try:
                self.version = self._devtools_http("GET", "/json/version", timeout=5)
                break
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise BrowserError("DevTools on port %d does not answer; chromium's log:\n%s"
                                       % (self.port, self.log_tail()))
                time.sleep(0.05)

    @staticmethod
    def _port_from_file(path):
        try:
            with open(path) as f:
                first = f.readline().strip()
        except OSError:
            return None
        return int(first) if first.isdigit() and int(first) > 0 else None

    def _port_from_log(self):
        match = re.search(r"DevTools listening on ws://[^:/\s]+:(\d+)/", self.log_tail(100000))
        return int(match.group(1)) if match else None

    def log_tail(self, limit=4000):
        """The end of Chromium's stdout/stderr (mostly harmless D-Bus complaints)."""
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")[-limit:]
        except OSError:
            return ""

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def _devtools_http(self, method, path, timeout=10):
        return _http(method, "http://127.0.0.1:%d%s" % (self.port, path), timeout)

    def _run(self, coro, timeout):
        """Runs `coro` on the loop thread, waiting at most `timeout` seconds."""
        if self._closed:
            coro.close()
            raise BrowserError("the browser is closed")
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            if future.done():
                raise  # the coroutine's own, more precise timeout
            future.cancel()
            raise TimeoutError("CDP call did not finish within %gs" % timeout) from None

    # -- pages ------------------------------------------------------------------------

    def new_page(self, url="about:blank", timeout=DEFAULT_TIMEOUT):
        """Opens a new tab, attaches to it, enables Page/Runtime/Log events, and
        navigates to `url` unless it is about:blank."""
        if not self.alive():
            raise BrowserError("chromium is not running (status %s); its log:\n%s"
                               % (self.proc.returncode if self.proc else None, self.log_tail()))
        target = self._devtools_http("PUT", "/json/new?about:blank", timeout=timeout)
        if not isinstance(target, dict) or "webSocketDebuggerUrl" not in target:
            raise BrowserError("DevTools /json/new gave no page: %r" % (target,))
        session = _Session(target["webSocketDebuggerUrl"])
        self._run(session.open(timeout), timeout + 1)
        page = Page(self, target["id"], session)
        self._pages.append(page)
        try:
            for method, params in (("Page.enable", {}), ("Page.setLifecycleEventsEnabled", {"enabled": True}),
                                   ("Runtime.enable", {}), ("Log.enable", {})):
                page.send(method, params, timeout)
            if url and url != "about:blank":
                page.navigate(url, timeout)
        except BaseException:
            page.close()
            raise
        return page

    # -- shutdown ---------------------------------------------------------------------

    def close(self):
        """Closes the pages, ends Chromium's process group (SIGTERM, then SIGKILL),
        stops the loop thread and removes the profile. Safe to call twice."""
        if self._closed:
            return
        for page in list(self._pages):
            try:
                page.close(timeout=5)
            except Exception:
                pass
        self._closed = True
        _live_browsers.discard(self)
        if self.proc is not None:
            self._end_process_group()
        if self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        if not self._thread.is_alive():
            self._loop.close()
        for _ in range(3):
            shutil.rmtree(self._root, ignore_errors=True)
            if not os.path.exists(self._root):
                break
            time.sleep(0.2)  # a helper process may still be writing into the profile

    def _end_process_group(self):
        """SIGTERM to the browser alone first: it then ends and reaps its own helpers
        (a SIGTERM to the whole group leaves them as zombies for init to collect).
        Then SIGKILL to whatever is left of the group."""
        pgid = self.proc.pid  # start_new_session: the browser leads its own group
        if self.proc.poll() is None:
            try:
                self.proc.terminate()
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if self.proc.poll() is None:
            self.proc.wait(timeout=5)

if __name__ == "__main__":
    import sys

    target_url = sys.argv[1] if len(sys.argv) > 1 else "about:blank"
    expression = sys.argv[2] if len(sys.argv) > 2 else "navigator.userAgent"
    started = time.monotonic()
    with Browser() as b:
        p = b.new_page(target_url)
        print(json.dumps(p.evaluate(expression, timeout=30), ensure_ascii=False))
        for line in p.console:
            print(line, file=sys.stderr)
        print("%s, %.2fs" % (b.version.get("Browser"), time.monotonic() - started), file=sys.stderr)
