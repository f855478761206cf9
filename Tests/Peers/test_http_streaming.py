"""Outside-peer tests of the demo's HTTP streaming features (Examples/Sources/Demo/main.swift,
Sources/StarFiles/StaticFiles.swift): the real `demo` binary, observed with curl (Debian's) and
Python's standard library (`http.client`, raw sockets).

  curl     HEAD (`curl -I`) has the GET's Content-Length and no body; `Expect: 100-continue`
           gets `100 Continue` before the 200; byte ranges of /static/app.js (206 with the
           file's own bytes, compared with Examples/Sources/Demo/Public/app.js; 416 past the
           end); `If-None-Match` / `If-Modified-Since` answered 304 (and 200 when they do not
           match); chunked uploads (`curl -T -` from stdin, `-H 'Transfer-Encoding: chunked'`)
           hashed right; path traversal with `--path-as-is` (`..`, `%2e%2e`, `..%2f`, hidden
           files, a symlink out, an absolute path) answered 404, never with a file's contents.
  Python   an SSE client of /notes/events (all notes first, a POSTed note arrives live, a
           reconnection with Last-Event-ID gets only the later notes); a 200 MiB upload made on
           the fly (Content-Length and chunked) hashed right while the server's VmRSS grows by
           less than 32 MiB; `--timeout-request-body 1`: a body that stops gets 408 and a
           closed connection, a body that keeps trickling (a byte every 0.5 s) gets its 200.

A range that covers the whole file (`bytes=0-`, `bytes=0-<size-1>`, `bytes=-<size>`) is a range
all the same: 206 with its Content-Range (test_range_covering_the_whole_file_gets_206; it was once
answered 200 with a Content-Range, which media elements read as "cannot seek").

The traversal tests run a hard link (or copy) of the demo binary in a temporary folder, next to a
copy of its resource bundle (StarExamples_Demo.resources, which Bundle.module finds next to the
executable) with planted files that each attempt would reach if the server followed it: a
`Package.swift` one and two levels above Public/, `Public/.hidden`, `Public/.env`,
`Public/.git/config` and `Public/link.txt` (a symlink to a file outside Public/). A planted
`Public/visible.txt` must be served, which proves the planted folder is the one served.

Servers: the module-scoped `demo` fixture, a module-scoped `planted_demo`, a module-scoped
`demo_body_timeout_1s` (`--timeout-request-body 1`), and fresh ones (conftest's `start_server`)
where a test needs a known state (the SSE notes, the memory baseline). curl missing: the test
fails when CI=true and skips otherwise (star_processes.missing). Every test is bounded by socket
and subprocess timeouts and by conftest's SIGALRM deadline.

Run: .ci/peer-tests.sh -k http_streaming (or `$(.ci/python-peers.sh) -m pytest -q
Tests/Peers/test_http_streaming.py`).
"""

import hashlib
import http.client
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
import time
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path

import pytest

import star_processes
from conftest import HOST, ROOT, binary_path, missing
from star_processes import post_note

APP_JS = ROOT / "Examples" / "Sources" / "Demo" / "Public" / "app.js"
RESOURCE_BUNDLE = "StarExamples_Demo.resources"
CURL_TIMEOUT = 30

demo = star_processes.server_fixture("demo")
demo_body_timeout_1s = star_processes.server_fixture("demo", args=["--timeout-request-body", "1"])


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def curl():
    path = shutil.which("curl")
    if not path:
        missing("curl is not installed (apt-get install curl)")
    return path


class CurlResult:
    def __init__(self, status, heads, body, verbose, returncode):
        self.status = status          # the last response's status (curl's %{http_code})
        self.heads = heads            # every response head received, as [(status, {lowercase name: value})]
        self.body = body              # the body bytes (of the last response)
        self.verbose = verbose        # curl's stderr (with -v: the '> ' and '< ' lines)
        self.returncode = returncode

    @property
    def headers(self):
        return self.heads[-1][1] if self.heads else {}

    def __repr__(self):
        return "curl: exit %d, status %s, heads %r, body %.200r, stderr %.2000s" % (
            self.returncode, self.status, self.heads, self.body, self.verbose)


def parse_heads(text):
    """The response heads of a curl -D file: [(status, {name: value})], informational ones included."""
    heads = []
    for line in text.replace("\r\n", "\n").split("\n"):
        match = re.match(r"HTTP/[\d.]+ (\d{3})", line)
        if match:
            heads.append((int(match.group(1)), {}))
        elif ":" in line and heads:
            name, value = line.split(":", 1)
            heads[-1][1][name.strip().lower()] = value.strip()
    return heads


def run_curl(curl, url, *args, stdin=None, timeout=CURL_TIMEOUT):
    """curl -sS [args] url; returns a CurlResult (headers from -D, body from -o)."""
    with tempfile.TemporaryDirectory(prefix="star-curl-") as tmp:
        head_file, body_file = os.path.join(tmp, "head"), os.path.join(tmp, "body")
        command = [curl, "-sS", "--max-time", str(timeout - 5), "-D", head_file, "-o", body_file,
                   "-w", "%{http_code}", *args, url]
        done = subprocess.run(command, input=stdin, capture_output=True, timeout=timeout,
                              stdin=None if stdin is not None else subprocess.DEVNULL)
        heads = parse_heads(Path(head_file).read_text("latin-1")) if os.path.exists(head_file) else []
        body = Path(body_file).read_bytes() if os.path.exists(body_file) else b""
        status = int(done.stdout.decode() or 0) if done.stdout.decode().isdigit() else 0
        return CurlResult(status, heads, body, done.stderr.decode("utf-8", "replace"), done.returncode)


def read_head(sock, limit=65536):
    """Reads one response head from a socket: (status, {lowercase name: value}, bytes after it)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise AssertionError("connection closed before a full response head: %r" % data)
        data += chunk
        assert len(data) < limit, "response head too long: %.300r" % data
    head, rest = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, value = line.split(":", 1)
        headers[name.strip().lower()] = value.strip()
    return status, headers, rest


def read_until_closed(sock, timeout):
    """Reads until the peer closes; returns (seconds, bytes), seconds None when still open after `timeout`."""
    start = time.monotonic()
    data = b""
    while True:
        left = timeout - (time.monotonic() - start)
        if left <= 0:
            return None, data
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            return time.monotonic() - start, data
        except socket.timeout:
            return None, data
        if not chunk:
            return time.monotonic() - start, data
        data += chunk




def vm_rss_kib(pid):
    with open("/proc/%d/status" % pid) as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS in /proc/%d/status" % pid)


def random_file(tmp_path, name, size):
    path = tmp_path / name
    path.write_bytes(os.urandom(size))
    return path


# ---------------------------------------------------------------------------
# 1. curl: HEAD, Expect: 100-continue, ranges, conditional requests, chunked uploads
# ---------------------------------------------------------------------------

HEAD_PATHS = ["/static/app.js", "/static/style.css", "/static/", "/hello/star", "/notes", "/"]


@pytest.mark.parametrize("path", HEAD_PATHS)
def test_curl_head_has_the_get_content_length_and_no_body(curl, demo, path):
    get = run_curl(curl, demo.http(path))
    head = run_curl(curl, demo.http(path), "-I")
    assert get.returncode == 0 and get.status == 200, get
    assert head.returncode == 0 and head.status == 200, head
    assert get.headers.get("content-length") == str(len(get.body)), get
    assert len(get.body) > 0, get
    assert head.headers.get("content-length") == get.headers["content-length"], (head, get)
    assert head.headers.get("content-type") == get.headers.get("content-type"), (head, get)
    # curl -I prints the head itself as the output: nothing may follow it.
    assert head.body.endswith(b"\r\n\r\n") and head.body.count(b"\r\n\r\n") == 1, head

    # curl -I never reads a body: check on the wire that none follows the HEAD's head.
    with socket.create_connection((HOST, demo.port), timeout=5) as sock:
        sock.sendall(("HEAD %s HTTP/1.1\r\nHost: %s:%d\r\nConnection: close\r\n\r\n"
                      % (path, HOST, demo.port)).encode())
        status, headers, rest = read_head(sock)
        seconds, more = read_until_closed(sock, 5)
    assert status == 200 and headers.get("content-length") == get.headers["content-length"], headers
    assert seconds is not None, "the server did not close after HEAD with Connection: close"
    assert rest + more == b"", "bytes after the HEAD response's head: %.300r" % (rest + more)


def test_curl_expect_100_continue_upload(curl, demo, tmp_path):
    payload = random_file(tmp_path, "upload.bin", 2 * 1024 * 1024 + 17)
    data = payload.read_bytes()
    # With a long --expect100-timeout, curl waits for the server's 100 before sending the body.
    started = time.monotonic()
    result = run_curl(curl, demo.http("/upload"), "-v", "-X", "POST", "-H", "Expect: 100-continue",
                      "--expect100-timeout", "20", "-H", "Content-Type: application/octet-stream",
                      "--data-binary", "@%s" % payload)
    seconds = time.monotonic() - started
    assert result.returncode == 0, result
    statuses = [line for line in result.verbose.splitlines() if re.match(r"< HTTP/1\.1 \d{3}", line)]
    assert "> Expect: 100-continue" in result.verbose, result
    assert [s.split()[2] for s in statuses] == ["100", "200"], "response lines: %r\n%r" % (statuses, result)
    assert [h[0] for h in result.heads] == [100, 200], result
    assert seconds < 15, "curl waited %.1fs: the 100 Continue came late (its timeout is 20 s)" % seconds
    assert json.loads(result.body) == {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}, result


def app_js_bytes(curl, demo):
    """app.js as on disk; fails early when the served copy (the built bundle) differs from it."""
    data = APP_JS.read_bytes()
    whole = run_curl(curl, demo.http("/static/app.js"))
    assert whole.status == 200 and whole.body == data, (
        "GET /static/app.js differs from %s (rebuild the demo to copy its resources): %r" % (APP_JS, whole))
    return data


@pytest.mark.parametrize("spec", ["0-99", "10-29", "100-", "-50", "1000-1000", "1700-99999", "0-1703"])
def test_curl_range_gets_206_and_the_file_bytes(curl, demo, spec):
    data = app_js_bytes(curl, demo)
    size = len(data)
    assert size > 1000, "app.js is too small for these ranges (%d bytes)" % size
    first, last = spec.split("-")
    if first == "":
        start, end = size - int(last), size - 1
    else:
        start, end = int(first), min(int(last), size - 1) if last else size - 1
    result = run_curl(curl, demo.http("/static/app.js"), "-r", spec)
    assert result.returncode == 0 and result.status == 206, result
    assert result.headers.get("content-range") == "bytes %d-%d/%d" % (start, end, size), result
    assert result.headers.get("content-length") == str(end - start + 1), result
    assert result.body == data[start:end + 1], result


@pytest.mark.parametrize("kind", ["0-", "0-last", "-size", "0-beyond"])
def test_range_covering_the_whole_file_gets_206(curl, demo, kind):
    data = app_js_bytes(curl, demo)
    size = len(data)
    spec = {"0-": "0-", "0-last": "0-%d" % (size - 1), "-size": "-%d" % size, "0-beyond": "0-%d" % (size * 10)}[kind]
    # curl -r 0- sends no Range header at all (it means the whole file): the header goes explicitly.
    result = run_curl(curl, demo.http("/static/app.js"), "-H", "Range: bytes=%s" % spec)
    assert result.body == data, result
    assert result.status == 206, result
    assert result.headers.get("content-range") == "bytes 0-%d/%d" % (size - 1, size), result


@pytest.mark.parametrize("spec", ["100000-100010", "99999-"])
def test_curl_unsatisfiable_range_gets_416(curl, demo, spec):
    size = len(app_js_bytes(curl, demo))
    result = run_curl(curl, demo.http("/static/app.js"), "-r", spec)
    assert result.status == 416, result
    assert result.headers.get("content-range") == "bytes */%d" % size, result
    assert result.body == b"", result


def test_curl_if_none_match_gets_304(curl, demo):
    first = run_curl(curl, demo.http("/static/app.js"))
    etag = first.headers.get("etag")
    assert first.status == 200 and etag and etag.startswith('"'), first
    hit = run_curl(curl, demo.http("/static/app.js"), "-H", "If-None-Match: %s" % etag)
    assert hit.status == 304 and hit.body == b"", hit
    assert hit.headers.get("etag") == etag, hit
    listed = run_curl(curl, demo.http("/static/app.js"), "-H", 'If-None-Match: "nope", %s' % etag)
    assert listed.status == 304 and listed.body == b"", listed
    miss = run_curl(curl, demo.http("/static/app.js"), "-H", 'If-None-Match: "not-%s"' % etag.strip('"'))
    assert miss.status == 200 and miss.body == first.body, miss


def test_curl_if_modified_since_gets_304(curl, demo):
    first = run_curl(curl, demo.http("/static/style.css"))
    modified = first.headers.get("last-modified")
    assert first.status == 200 and modified, first
    when = parsedate_to_datetime(modified).timestamp()
    same = run_curl(curl, demo.http("/static/style.css"), "-H", "If-Modified-Since: %s" % modified)
    assert same.status == 304 and same.body == b"", same
    later = run_curl(curl, demo.http("/static/style.css"), "-H",
                     "If-Modified-Since: %s" % formatdate(when + 3600, usegmt=True))
    assert later.status == 304 and later.body == b"", later
    earlier = run_curl(curl, demo.http("/static/style.css"), "-H",
                       "If-Modified-Since: %s" % formatdate(when - 86400, usegmt=True))
    assert earlier.status == 200 and earlier.body == first.body, earlier


def test_curl_chunked_upload_from_stdin(curl, demo):
    data = os.urandom(3 * 1024 * 1024 + 123)
    result = run_curl(curl, demo.http("/upload"), "-v", "-X", "POST", "-T", "-", stdin=data)
    assert result.returncode == 0 and result.status == 200, result
    assert re.search(r"^> Transfer-Encoding: chunked", result.verbose, re.M | re.I), result
    assert not re.search(r"^> Content-Length:", result.verbose, re.M | re.I), result
    assert json.loads(result.body) == {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}, result


def test_curl_chunked_upload_with_the_header(curl, demo, tmp_path):
    payload = random_file(tmp_path, "chunked.bin", 1024 * 1024 + 5)
    data = payload.read_bytes()
    result = run_curl(curl, demo.http("/upload"), "-v", "-H", "Transfer-Encoding: chunked",
                      "-H", "Content-Type: application/octet-stream", "--data-binary", "@%s" % payload)
    assert result.returncode == 0 and result.status == 200, result
    assert re.search(r"^> Transfer-Encoding: chunked", result.verbose, re.M | re.I), result
    assert json.loads(result.body) == {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}, result


def test_curl_empty_upload(curl, demo):
    result = run_curl(curl, demo.http("/upload"), "-X", "POST", "--data-binary", "")
    assert result.status == 200, result
    assert json.loads(result.body) == {"bytes": 0, "sha256": hashlib.sha256(b"").hexdigest()}, result


# ---------------------------------------------------------------------------
# 2. curl: path traversal against a demo with planted files
# ---------------------------------------------------------------------------

SECRET = "star-secret-%d-%s" % (os.getpid(), os.urandom(6).hex())


def start_binary(binary, args=(), timeout=20.0):
    """star_processes.start_server for a binary outside $STAR_BIN_DIR (the planted copy)."""
    last = ""
    for _ in range(3):
        port = star_processes.free_port()
        command = [str(binary), "--host", HOST, "--port", str(port), "--log-level", "warning", "--no-access-log",
                   *[str(a) for a in args]]
        log = tempfile.NamedTemporaryFile(prefix="star-demo-planted-", suffix=".log", delete=False)
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                cwd=str(Path(binary).parent))
        log.close()
        server = star_processes.StarServer("demo (planted copy)", proc, port, log.name, command=command)
        if star_processes.wait_for_port(proc, port, timeout):
            return server
        star_processes.stop_server(server)
        last = "exit status %s; log:\n%s" % (proc.returncode, server.log_tail())
        star_processes.remove_log(server)
    pytest.fail("the planted demo did not start listening: %s" % last, pytrace=False)


@pytest.fixture(scope="module")
def planted_demo():
    """The demo binary (hard-linked, else copied) in a temporary folder with a copy of its resource
    bundle and files planted where traversal attempts would land; yields (server, layout)."""
    binary = binary_path("demo")
    bundle = binary.parent / RESOURCE_BUNDLE
    if not (bundle / "Public" / "app.js").is_file():
        missing("the demo's resource bundle %s is missing: build the examples first" % bundle)
    root = Path(tempfile.mkdtemp(prefix="star-demo-planted-"))
    try:
        try:
            os.link(binary, root / "demo")
        except OSError:
            shutil.copy2(binary, root / "demo")
        shutil.copytree(bundle, root / RESOURCE_BUNDLE, symlinks=True)
        public = root / RESOURCE_BUNDLE / "Public"
        layout = {
            "top": root / "Package.swift",                         # /static/../../Package.swift
            "bundle": root / RESOURCE_BUNDLE / "Package.swift",    # /static/../Package.swift
            "outside": root / RESOURCE_BUNDLE / "secret.txt",      # the symlink's target
            "hidden": public / ".hidden",
            "env": public / ".env",
            "git": public / ".git" / "config",
        }
        for name, path in layout.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("%s %s\n" % (SECRET, name))
        os.symlink("../secret.txt", public / "link.txt")
        (public / "visible.txt").write_text("visible %s\n" % os.getpid())
        layout["root"] = root
        server = start_binary(root / "demo")
        try:
            yield server, layout
        finally:
            star_processes.finish_server(server)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_planted_demo_serves_the_planted_folder(curl, planted_demo):
    """The control for the traversal tests: the planted copy serves the planted Public/ folder."""
    server, layout = planted_demo
    visible = run_curl(curl, server.http("/static/visible.txt"))
    assert visible.status == 200 and visible.body == ("visible %s\n" % os.getpid()).encode(), visible
    assert (layout["root"] / RESOURCE_BUNDLE / "Public" / "link.txt").read_text().startswith(SECRET)


def traversal_paths():
    """__ROOT__ stands for the planted folder's absolute path without its leading slash."""
    return [
        "/static/../Package.swift",
        "/static/../../Package.swift",
        "/static/%2e%2e/Package.swift",
        "/static/%2e%2e/%2e%2e/Package.swift",
        "/static/%2E%2E/%2E%2E/Package.swift",
        "/static/.%2e/Package.swift",
        "/static/..%2fPackage.swift",
        "/static/..%2f..%2fPackage.swift",
        "/static/..%2F..%2FPackage.swift",
        "/static/%2e%2e%2f%2e%2e%2fPackage.swift",
        "/static/..%5c..%5cPackage.swift",
        "/static/visible.txt/../../Package.swift",
        "/static/./../Package.swift",
        "/static/../static/../../Package.swift",
        "/static/.hidden",
        "/static/.env",
        "/static/%2eenv",
        "/static/.git/config",
        "/static/%2egit/config",
        "/static/link.txt",
        "/static//__ROOT__/Package.swift",
        "/static/%2F__ROOT__/Package.swift",
        "/static/..%00/Package.swift",
    ]


@pytest.mark.parametrize("path", traversal_paths())
def test_curl_path_traversal_is_404(curl, planted_demo, path):
    server, layout = planted_demo
    path = path.replace("__ROOT__", str(layout["root"]).lstrip("/"))
    for method in ([], ["-I"]):
        result = run_curl(curl, server.http(path), "--path-as-is", *method)
        assert result.status == 404, "%s %s: %r" % (method or "GET", path, result)
        assert SECRET.encode() not in result.body, result
    assert all(p.read_text().startswith(SECRET) for k, p in layout.items() if k != "root")


@pytest.mark.parametrize("path", ["/static/../Package.swift", "/static/%2e%2e/%2e%2e/Package.swift",
                                  "/static/..%2f..%2fPackage.swift", "/static/%2e%2e/%2e%2e/%2e%2e/%2e%2e/Package.swift",
                                  "/static/.hidden", "/static/.env"])
def test_curl_path_traversal_on_the_built_demo_is_404(curl, demo, path):
    """The same attempts against the binary in place (the real repository around it)."""
    result = run_curl(curl, demo.http(path), "--path-as-is")
    assert result.status == 404, result
    for package in (ROOT / "Package.swift", ROOT / "Examples" / "Package.swift"):
        assert package.read_bytes()[:200] not in result.body, result
    assert b"swift-tools-version" not in result.body, result


# ---------------------------------------------------------------------------
# 3. Python: Server-Sent Events
# ---------------------------------------------------------------------------

class EventStream:
    """A minimal SSE client over a raw socket (its own chunked decoding, so that a read timeout
    leaves the stream usable): events as dicts of their fields; comment lines are counted."""

    def __init__(self, server, last_event_id=None, timeout=10):
        self.sock = socket.create_connection((HOST, server.port), timeout=timeout)
        extra = "Last-Event-ID: %s\r\n" % last_event_id if last_event_id is not None else ""
        self.sock.sendall(("GET /notes/events HTTP/1.1\r\nHost: %s:%d\r\nAccept: text/event-stream\r\n%s\r\n"
                           % (HOST, server.port, extra)).encode())
        self.status, self.headers, self.raw = read_head(self.sock)
        self.chunked = self.headers.get("transfer-encoding", "").lower() == "chunked"
        self.text = b""      # decoded body bytes not yet split into lines
        self.ended = False
        self.comments = 0
        self._decode()  # the first event may have come with the head

    def _decode(self):
        """Moves complete chunks from self.raw to self.text."""
        if not self.chunked:
            self.text += self.raw
            self.raw = b""
            return
        while b"\r\n" in self.raw:
            size_line, rest = self.raw.split(b"\r\n", 1)
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                self.ended = True
                self.raw = b""
                return
            if len(rest) < size + 2:
                return
            assert rest[size:size + 2] == b"\r\n", "bad chunk framing: %.100r" % rest
            self.text += rest[:size]
            self.raw = rest[size + 2:]

    def _line(self, deadline):
        """The next line (without its end), or None when the deadline passes first."""
        while b"\n" not in self.text:
            if self.ended:
                raise AssertionError("the event stream ended")
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                return None
            if not chunk:
                raise AssertionError("the server closed the event stream")
            self.raw += chunk
            self._decode()
        line, self.text = self.text.split(b"\n", 1)
        return line.decode("utf-8").rstrip("\r")

    def next_event(self, timeout=10, max_lines=1000):
        """The next event, or None when none is complete within `timeout` seconds (a partial
        one stays buffered only as bytes not yet read: fields already parsed are kept in self)."""
        deadline = time.monotonic() + timeout
        fields = {}
        for _ in range(max_lines):
            line = self._line(deadline)
            if line is None:
                assert not fields, "an incomplete event after %gs: %r" % (timeout, fields)
                return None
            if line == "":
                if fields:
                    return fields
                continue
            if line.startswith(":"):
                self.comments += 1
                continue
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            fields[name] = fields[name] + "\n" + value if name == "data" and name in fields else value
        raise AssertionError("more than %d lines without an event" % max_lines)

    def next_note(self, timeout=10):
        event = self.next_event(timeout)
        assert event is not None, "no event within %gs" % timeout
        assert event.get("event") == "note", event
        note = json.loads(event["data"])
        assert event.get("id") == str(note["id"]), event
        return note

    def nothing_within(self, seconds):
        """True when no event arrives within `seconds` (fails with the event otherwise)."""
        event = self.next_event(seconds)
        assert event is None, "unexpected event: %r" % event
        return True

    def close(self):
        self.sock.close()


def test_sse_notes_live_and_resumed_after_last_event_id(start_server):
    server = start_server("demo")
    stream = EventStream(server)
    try:
        assert stream.status == 200, (stream.status, stream.headers)
        assert stream.headers.get("content-type", "").startswith("text/event-stream"), stream.headers
        assert stream.next_note() == {"id": 1, "text": "Welcome to Star"}
        assert stream.nothing_within(0.5), "more than the one note at start"

        first = post_note(server, "first live note ✓")
        assert stream.next_note() == first
        second = post_note(server, "second live note")
        assert stream.next_note() == second
        assert second["id"] > first["id"] > 1
    finally:
        stream.close()

    # Notes created while nobody listens; the reconnection resumes after `first`.
    missed = [post_note(server, "missed %d" % i) for i in range(3)]
    resumed = EventStream(server, last_event_id=first["id"])
    try:
        assert resumed.status == 200, resumed.headers
        got = [resumed.next_note() for _ in range(1 + len(missed))]
        assert got == [second] + missed, "after Last-Event-ID %d: %r" % (first["id"], got)
        assert resumed.nothing_within(0.5), "more notes than those after Last-Event-ID"
        later = post_note(server, "after the reconnection")
        assert resumed.next_note() == later
    finally:
        resumed.close()

    # The newest id: nothing to replay, only what comes next.
    latest = EventStream(server, last_event_id=later["id"])
    try:
        assert latest.nothing_within(0.5), "replayed notes up to the Last-Event-ID"
        newest = post_note(server, "newest")
        assert latest.next_note() == newest
    finally:
        latest.close()
    assert server.alive(), server.log_tail()


def test_sse_two_listeners_get_the_same_notes(demo):
    a, b = EventStream(demo), EventStream(demo)
    try:
        conn = http.client.HTTPConnection(HOST, demo.port, timeout=5)
        conn.request("GET", "/notes")
        existing = json.loads(conn.getresponse().read())
        conn.close()
        assert [a.next_note() for _ in existing] == existing
        assert [b.next_note() for _ in existing] == existing
        note = post_note(demo, "for both listeners")
        assert a.next_note() == note and b.next_note() == note
    finally:
        a.close()
        b.close()


# ---------------------------------------------------------------------------
# 4. Python: a 200 MiB streamed upload with flat server memory
# ---------------------------------------------------------------------------

UPLOAD_SIZE = 200 * 1024 * 1024
BLOCK = 1024 * 1024
RSS_BUDGET_KIB = 32 * 1024


def blocks(total):
    """`total` bytes made on the fly: 1 MiB blocks, each different (its index in front)."""
    pattern = hashlib.sha256(b"star").digest() * (BLOCK // 32)
    sent, index = 0, 0
    while sent < total:
        size = min(BLOCK, total - sent)
        yield (struct.pack(">Q", index) + pattern[8:])[:size]
        sent += size
        index += 1


class RSSSampler(threading.Thread):
    def __init__(self, pid, interval=0.01):
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.peak = 0
        self.samples = 0
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            try:
                self.peak = max(self.peak, vm_rss_kib(self.pid))
                self.samples += 1
            except (OSError, AssertionError):
                return
            self.stop.wait(self.interval)


def upload(server, total, chunked, timeout=60, sampler=None):
    """POSTs `total` generated bytes to /upload on a raw socket; returns (status, body, sha256 hex)."""
    digest = hashlib.sha256()
    with socket.create_connection((HOST, server.port), timeout=15) as sock:
        framing = "Transfer-Encoding: chunked" if chunked else "Content-Length: %d" % total
        sock.sendall(("POST /upload HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/octet-stream\r\n%s\r\n\r\n"
                      % (HOST, server.port, framing)).encode())
        deadline = time.monotonic() + timeout
        for block in blocks(total):
            assert time.monotonic() < deadline, "the upload did not finish within %gs" % timeout
            digest.update(block)
            sock.sendall(b"%x\r\n%s\r\n" % (len(block), block) if chunked else block)
        if chunked:
            sock.sendall(b"0\r\n\r\n")
        sock.settimeout(max(1.0, deadline - time.monotonic()))
        status, headers, rest = read_head(sock)
        length = int(headers.get("content-length", "0"))
        while len(rest) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            rest += chunk
        return status, rest[:length], digest.hexdigest()


@pytest.mark.deadline(120)
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_200_mib_upload_keeps_server_memory_flat(start_server, chunked):
    server = start_server("demo")
    pid = server.proc.pid
    # Warm up (allocator pools, the first request's lazy set-up), then take the baseline.
    status, body, sha = upload(server, 16 * BLOCK, chunked)
    assert status == 200 and json.loads(body)["sha256"] == sha, body
    time.sleep(0.2)
    baseline = vm_rss_kib(pid)

    sampler = RSSSampler(pid)
    sampler.start()
    started = time.monotonic()
    try:
        status, body, sha = upload(server, UPLOAD_SIZE, chunked, timeout=90)
    finally:
        sampler.stop.set()
        sampler.join(5)
    seconds = time.monotonic() - started
    peak = max(sampler.peak, vm_rss_kib(pid))
    assert status == 200, body
    assert json.loads(body) == {"bytes": UPLOAD_SIZE, "sha256": sha}, body
    growth = peak - baseline
    print("200 MiB (%s) in %.1fs; VmRSS baseline %d KiB, peak %d KiB (+%d KiB), %d samples"
          % ("chunked" if chunked else "content-length", seconds, baseline, peak, growth, sampler.samples))
    assert sampler.samples >= 3, "too few VmRSS samples (%d) to judge" % sampler.samples
    assert growth < RSS_BUDGET_KIB, (
        "the server's VmRSS grew by %d KiB (from %d to %d) during a 200 MiB upload: the body is buffered, "
        "not streamed with backpressure" % (growth, baseline, peak))
    assert server.alive(), server.log_tail()


# ---------------------------------------------------------------------------
# 5. Python: the request-body timeout (--timeout-request-body 1)
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_stalled_body_gets_408_and_the_connection_closes(demo_body_timeout_1s, framing):
    server = demo_body_timeout_1s
    with socket.create_connection((HOST, server.port), timeout=10) as sock:
        if framing == "content-length":
            head = "Content-Length: 100"
            first = b"0123456789"
        else:
            head = "Transfer-Encoding: chunked"
            first = b"a\r\n0123456789\r\n"
        sock.sendall(("POST /upload HTTP/1.1\r\nHost: %s:%d\r\n%s\r\n\r\n" % (HOST, server.port, head)).encode()
                     + first)
        started = time.monotonic()
        sock.settimeout(6)
        status, headers, rest = read_head(sock)
        answered = time.monotonic() - started
        closed, more = read_until_closed(sock, 6)
    assert status == 408, (status, headers, rest)
    assert headers.get("connection", "").lower() == "close", headers
    assert 0.8 <= answered <= 4.0, "408 after %.2fs with a 1 s body timeout" % answered
    assert closed is not None, "the connection stayed open after the 408"
    assert answered + closed <= 5.0, "closed %.2fs after the request" % (answered + closed)
    body = rest + more
    assert len(body) == int(headers.get("content-length", "-1")), (headers, body)
    assert server.alive(), server.log_tail()


def test_trickling_body_is_not_cut_by_the_timeout(demo_body_timeout_1s):
    server = demo_body_timeout_1s
    payload = b"trick!"  # a byte every 0.5 s: 3 s in all, with a 1 s body timeout
    with socket.create_connection((HOST, server.port), timeout=10) as sock:
        sock.sendall(("POST /upload HTTP/1.1\r\nHost: %s:%d\r\nContent-Length: %d\r\n\r\n"
                      % (HOST, server.port, len(payload))).encode())
        started = time.monotonic()
        for i in range(len(payload)):
            time.sleep(0.5)
            try:
                sock.sendall(payload[i:i + 1])
            except OSError as exc:
                pytest.fail("the server closed the connection after %d bytes (%.1fs): %s"
                            % (i, time.monotonic() - started, exc))
        sock.settimeout(5)
        status, headers, rest = read_head(sock)
        elapsed = time.monotonic() - started
        length = int(headers.get("content-length", "0"))
        while len(rest) < length:
            chunk = sock.recv(4096)
            if not chunk:
                break
            rest += chunk
    assert status == 200, (status, headers, rest)
    assert json.loads(rest) == {"bytes": len(payload), "sha256": hashlib.sha256(payload).hexdigest()}
    assert elapsed >= 2.5, "answered after %.2fs: before the body was complete?" % elapsed
    assert server.alive(), server.log_tail()


def test_trickling_request_survives_and_connection_is_reused(demo_body_timeout_1s):
    """After a slow (but never stalled) body, the keep-alive connection serves the next request."""
    server = demo_body_timeout_1s
    payload = b'{"text": "slow note"}'
    with socket.create_connection((HOST, server.port), timeout=10) as sock:
        sock.sendall(("POST /notes HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
                      "Content-Length: %d\r\n\r\n" % (HOST, server.port, len(payload))).encode())
        for i in range(0, len(payload), 4):  # 6 pieces, 0.4 s apart: 2.4 s in all
            time.sleep(0.4)
            sock.sendall(payload[i:i + 4])
        status, headers, rest = read_head(sock)
        length = int(headers.get("content-length", "0"))
        while len(rest) < length:
            rest += sock.recv(4096)
        assert status == 201, (status, headers, rest)
        note = json.loads(rest[:length])
        assert note["text"] == "slow note"
        sock.sendall(("GET /notes/%d HTTP/1.1\r\nHost: %s:%d\r\n\r\n" % (note["id"], HOST, server.port)).encode())
        status, headers, rest = read_head(sock)
        length = int(headers.get("content-length", "0"))
        while len(rest) < length:
            rest += sock.recv(4096)
        assert status == 200 and json.loads(rest[:length]) == note, (status, rest)
