"""Outside-peer tests: the real Star server binaries against Python WebSocket peers.

Clients: the `websockets` library (new asyncio API) for the well-behaved side, and
raw sockets for what a library would not send (bad handshakes, unmasked frames,
absurd lengths, a client that never answers pings). Servers (see conftest.py):

  pingpong, pingpong-standalone  Examples/Sources/PingPong*/main.swift: the game of
                                 Tests/Peers/pingpong_client.py on /{+path}
  echo                           Examples/Sources/Echo/main.swift: /echo, 16 MiB limit
  ws-test-server                 Examples/Sources/WebSocketTestServer/main.swift: one route per
                                 observable row of the contract; keepalive ping every
                                 0.5 s with a 0.5 s timeout; GET /events lists what the
                                 handlers observed

Run: .ci/peer-tests.sh (or `$(.ci/python-peers.sh) -m pytest -q Tests/Peers`).
Every test is bounded: asyncio.wait_for or socket timeouts, plus a hard SIGALRM
deadline per test (conftest.py).
"""

import asyncio
import base64
import hashlib
import json
import logging
import os
import socket
import struct
import subprocess
import sys
import time

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.protocol import State

import pingpong_client
from conftest import HOST, PEERS_DIR

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
MiB = 1024 * 1024

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def run(coro, timeout):
    """Runs `coro` in a fresh event loop, failing it after `timeout` seconds."""
    async def bounded():
        return await asyncio.wait_for(coro, timeout)
    return asyncio.run(bounded())


def client(url, **kwargs):
    """`websockets` connect with bounded handshakes and closes, and no client pings."""
    options = dict(open_timeout=10, close_timeout=5, ping_interval=None, compression=None, max_size=64 * MiB)
    options.update(kwargs)
    return connect(url, **options)


async def expect_rejected(url, **kwargs):
    """Connects expecting the handshake to be refused; returns the HTTP response."""
    with pytest.raises(InvalidStatus) as info:
        async with client(url, **kwargs):
            pass
    return info.value.response


def close_code(exc):
    """The close code the server sent, from a ConnectionClosed (None: no close frame)."""
    return exc.rcvd.code if exc.rcvd is not None else None


async def expect_server_close(ws, code, timeout=5):
    """Waits for the server's close frame; no message may arrive first."""
    with pytest.raises(ConnectionClosed) as info:
        message = await asyncio.wait_for(ws.recv(), timeout)
        pytest.fail("expected the server to close with %d, got a message: %.200r" % (code, message))
    assert close_code(info.value) == code, "close frame: %r (sent by us: %r)" % (info.value.rcvd, info.value.sent)
    return info.value


# ---------------------------------------------------------------------------
# Raw HTTP and raw WebSocket helpers (blocking sockets with timeouts)
# ---------------------------------------------------------------------------

class HTTPResult:
    def __init__(self, status, reason, headers, body):
        self.status, self.reason, self.headers, self.body = status, reason, headers, body

    def header(self, name):
        return self.headers.get(name.lower())

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def __repr__(self):
        return "HTTP %d %s %r %.300r" % (self.status, self.reason, self.headers, self.body)


def read_head(sock, buffer=b""):
    """Reads an HTTP response head; returns (status, reason, headers, bytes after the head)."""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError("connection closed before a complete response head: %r" % buffer)
        buffer += chunk
    head, rest = buffer.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    version, status, reason = (lines[0].split(" ", 2) + [""])[:3]
    assert version.startswith("HTTP/1."), "bad status line %r" % lines[0]
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status), reason, headers, rest


def http_request(port, raw, timeout=5.0):
    """Sends a raw HTTP/1.1 request and reads one response (body by Content-Length)."""
    with socket.create_connection((HOST, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        sock.sendall(raw)
        status, reason, headers, body = read_head(sock)
        length = int(headers.get("content-length", "0"))
        while len(body) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
        return HTTPResult(status, reason, headers, body[:length])


def get(port, path, headers=(), timeout=5.0):
    lines = ["GET %s HTTP/1.1" % path, "Host: %s:%d" % (HOST, port)] + list(headers) + ["", ""]
    return http_request(port, "\r\n".join(lines).encode("latin-1"), timeout)


def upgrade_headers(key=None, version="13"):
    headers = ["Upgrade: websocket", "Connection: Upgrade"]
    if key is not None:
        headers.append("Sec-WebSocket-Key: %s" % key)
    if version is not None:
        headers.append("Sec-WebSocket-Version: %s" % version)
    return headers


def new_key():
    return base64.b64encode(os.urandom(16)).decode("ascii")


def accept_for(key):
    return base64.b64encode(hashlib.sha1(key.encode("ascii") + GUID).digest()).decode("ascii")


class RawWebSocket:
    """A hand-made client: handshake by hand, frames built and parsed here."""

    def __init__(self, port, path, timeout=5.0):
        self.sock = socket.create_connection((HOST, port), timeout=timeout)
        self.sock.settimeout(timeout)
        key = new_key()
        lines = ["GET %s HTTP/1.1" % path, "Host: %s:%d" % (HOST, port)] + upgrade_headers(key) + ["", ""]
        self.sock.sendall("\r\n".join(lines).encode("latin-1"))
        status, reason, headers, self.buffer = read_head(self.sock)
        assert status == 101, "handshake answered %d %s %r" % (status, reason, headers)
        assert headers.get("upgrade", "").lower() == "websocket", headers
        assert headers.get("sec-websocket-accept") == accept_for(key), headers

    def close_socket(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close_socket()

    def send_raw(self, data):
        self.sock.sendall(data)

    def send_frame(self, opcode, payload=b"", fin=True, mask=True):
        header = bytes([(0x80 if fin else 0) | opcode])
        length = len(payload)
        bit = 0x80 if mask else 0
        if length < 126:
            header += bytes([bit | length])
        elif length < 1 << 16:
            header += bytes([bit | 126]) + struct.pack("!H", length)
        else:
            header += bytes([bit | 127]) + struct.pack("!Q", length)
        if mask:
            key = os.urandom(4)
            header += key
            payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(header + payload)

    def _exact(self, n):
        while len(self.buffer) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("connection closed with %d of %d bytes read" % (len(self.buffer), n))
            self.buffer += chunk
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def read_frame(self):
        """Returns (fin, opcode, payload); server frames must be unmasked."""
        b0, b1 = self._exact(2)
        assert b0 & 0x70 == 0, "server set reserved bits: %#x" % b0
        assert b1 & 0x80 == 0, "server frame is masked"
        length = b1 & 0x7F
        if length == 126:
            length = struct.unpack("!H", self._exact(2))[0]
        elif length == 127:
            length = struct.unpack("!Q", self._exact(8))[0]
        return bool(b0 & 0x80), b0 & 0x0F, self._exact(length)

    def read_until_close(self):
        """Reads frames up to the server's close frame; returns (code, reason, frames before it)."""
        before = []
        while True:
            fin, opcode, payload = self.read_frame()
            if opcode == OP_CLOSE:
                assert len(payload) >= 2, "close frame without a code: %r" % payload
                return struct.unpack("!H", payload[:2])[0], payload[2:].decode("utf-8"), before
            before.append((opcode, payload))

    def expect_dropped(self, timeout=3.0):
        """The server must close the TCP connection (EOF or reset) within `timeout`."""
        self.sock.settimeout(timeout)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return
                self.buffer += chunk
        except ConnectionResetError:
            return
        except socket.timeout:
            pytest.fail("the server kept the connection open more than %gs after its close frame" % timeout)


def vm_rss(pid):
    """The resident memory of a process, in bytes (VmRSS of /proc/PID/status: Linux only)."""
    with open("/proc/%d/status" % pid) as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/%d/status" % pid)


def events(server):
    response = get(server.port, "/events")
    assert response.status == 200, response
    lines = response.json()
    assert isinstance(lines, list), response
    return lines


def wait_for_event(server, prefix, timeout=3.0):
    """Polls GET /events until a line starts with `prefix`; returns it."""
    deadline = time.monotonic() + timeout
    while True:
        lines = events(server)
        found = [line for line in lines if line.startswith(prefix)]
        if found:
            return found[-1]
        if time.monotonic() > deadline:
            pytest.fail("no event starting with %r within %gs; events: %r" % (prefix, timeout, lines))
        time.sleep(0.05)


# ---------------------------------------------------------------------------
# pingpong and pingpong-standalone: the game of Tests/Peers/pingpong_client.py
# ---------------------------------------------------------------------------

PINGPONG_PATHS = ["/some/path", "/a", "/nested/deep/path/here?x=1&y=2", "/caf%C3%A9/menu"]


@pytest.fixture(params=["pingpong", "pingpong-standalone"])
def pingpong_any(request):
    return request.getfixturevalue({"pingpong": "pingpong_server",
                                    "pingpong-standalone": "pingpong_standalone_server"}[request.param])


@pytest.mark.parametrize("path", PINGPONG_PATHS)
def test_pingpong_game(pingpong_any, path, capsys):
    url = pingpong_any.ws(path)
    status = pingpong_client.main([url, "--timeout", "20"])
    out = capsys.readouterr().out
    print(out, end="")
    assert status == 0, out
    assert out.startswith("pingpong: PASS"), out


def test_pingpong_client_script(pingpong_any):
    """The peer script as CI and developers run it: a separate process with the venv's python."""
    url = pingpong_any.ws("/from/the/script")
    done = subprocess.run([sys.executable, str(PEERS_DIR / "pingpong_client.py"), url, "--timeout", "20"],
                          capture_output=True, text=True, timeout=40)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("pingpong: PASS"), done.stdout


def test_pingpong_games_in_parallel(pingpong_any):
    """Twenty games at once, each with its own path, none mixing up another's messages."""
    async def main():
        paths = ["/player/%d" % i for i in range(20)]
        results = await asyncio.gather(*(pingpong_client.play(pingpong_any.ws(p), [p[1:]], 100) for p in paths))
        assert results == [1000] * len(paths)
    run(main(), 30)


# ---------------------------------------------------------------------------
# echo: /echo, 16 MiB message limit
# ---------------------------------------------------------------------------

def test_echo_empty_messages(echo_server):
    async def main():
        async with client(echo_server.ws("/echo")) as ws:
            await ws.send("")
            reply = await asyncio.wait_for(ws.recv(), 5)
            assert reply == "" and isinstance(reply, str), "empty text came back as %r" % (reply,)
            await ws.send(b"")
            reply = await asyncio.wait_for(ws.recv(), 5)
            assert reply == b"" and isinstance(reply, bytes), "empty binary came back as %r" % (reply,)
    run(main(), 15)


def test_echo_large_binary_and_unicode_text(echo_server):
    async def main():
        blob = os.urandom(MiB)
        unit = "héllo wörld ✓ 日本語 🌟 ∑ — "
        text = (unit * (100 * 1024 // len(unit) + 1))[:100 * 1024]
        assert any(ord(c) > 0xFFFF for c in text)
        async with client(echo_server.ws("/echo")) as ws:
            await ws.send(blob)
            reply = await asyncio.wait_for(ws.recv(), 10)
            assert isinstance(reply, bytes) and len(reply) == len(blob), "binary came back as %s of %d" % (
                type(reply).__name__, len(reply))
            assert reply == blob, "1 MiB binary came back altered"
            await ws.send(text)
            reply = await asyncio.wait_for(ws.recv(), 10)
            assert isinstance(reply, str), "text came back as %s" % type(reply).__name__
            assert reply == text, "100 KiB text came back altered (%d chars)" % len(reply)
            # The same text as a fragmented message (100 frames): one message comes back.
            await ws.send([text[i:i + 1024] for i in range(0, len(text), 1024)])
            reply = await asyncio.wait_for(ws.recv(), 10)
            assert reply == text, "fragmented 100 KiB text came back altered (%d chars)" % len(reply)
    run(main(), 30)


def test_echo_fragmented_text_split_inside_characters(echo_server):
    """A text message sent as raw fragments cut in the middle of multi-byte UTF-8 sequences."""
    text = ("ab€😀ñ" * 2000)
    data = text.encode("utf-8")
    with RawWebSocket(echo_server.port, "/echo") as ws:
        pieces = [data[i:i + 7] for i in range(0, len(data), 7)]
        for index, piece in enumerate(pieces):
            opcode = OP_TEXT if index == 0 else OP_CONT
            ws.send_frame(opcode, piece, fin=index == len(pieces) - 1)
        chunks, fin = [], False
        while not fin:
            fin, opcode, payload = ws.read_frame()
            assert opcode in (OP_TEXT, OP_CONT), "unexpected opcode %d" % opcode
            chunks.append(payload)
        assert b"".join(chunks).decode("utf-8") == text
        ws.send_frame(OP_CLOSE, struct.pack("!H", 1000))
        code, _, before = ws.read_until_close()
        assert code == 1000 and before == []


def test_echo_message_over_limit_closes_1009(echo_server):
    async def main():
        async with client(echo_server.ws("/echo"), max_size=None) as ws:
            await ws.send(b"ok")
            assert await asyncio.wait_for(ws.recv(), 5) == b"ok"
            try:
                await ws.send(b"\0" * (16 * MiB + 1))
            except ConnectionClosed:
                pass  # the server may close while the frame is still being written
            error = await expect_server_close(ws, 1009, timeout=20)
            return error
    error = run(main(), 40)
    print("over-limit close: %r" % (error.rcvd,))


def test_plain_get_is_426_with_json(echo_server):
    response = get(echo_server.port, "/echo", ["Connection: close"])
    assert response.status == 426, response
    assert response.header("content-type").startswith("application/json"), response
    body = response.json()
    assert isinstance(body, dict) and isinstance(body.get("detail"), str), response


def test_upgrade_with_version_8_is_426(echo_server):
    response = get(echo_server.port, "/echo", upgrade_headers(new_key(), version="8"))
    assert response.status == 426, response
    assert response.header("sec-websocket-version") == "13", response
    assert "detail" in response.json(), response


def test_upgrade_without_key_is_400(echo_server):
    response = get(echo_server.port, "/echo", upgrade_headers(None))
    assert response.status == 400, response
    assert "detail" in response.json(), response


def test_upgrade_with_malformed_key_is_400(echo_server):
    response = get(echo_server.port, "/echo", upgrade_headers("not-a-key"))
    assert response.status == 400, response


@pytest.mark.deadline(150)
def test_thousand_concurrent_connections_hundred_echoes_each(echo_server, capsys):
    connections, echoes = 1000, 100

    async def main():
        opening = asyncio.Semaphore(100)   # at most 100 handshakes in flight; all stay open together
        all_open = asyncio.Event()
        opened = 0
        timings = {}

        async def session(index):
            nonlocal opened
            async with opening:
                ws = await connect(echo_server.ws("/echo"), open_timeout=30, close_timeout=10,
                                   ping_interval=None, compression=None)
            try:
                opened += 1
                if opened == connections:
                    timings["open"] = time.monotonic()
                    all_open.set()
                await all_open.wait()
                for j in range(echoes):
                    message = "%d:%d" % (index, j) if j % 2 else ("%d:%d" % (index, j)).encode()
                    await ws.send(message)
                    reply = await ws.recv()
                    if reply != message:
                        raise AssertionError("connection %d echo %d: sent %r, got %r" % (index, j, message, reply))
            finally:
                await ws.close()
            assert ws.close_code == 1000, "connection %d closed with %r" % (index, ws.close_code)

        start = time.monotonic()
        results = await asyncio.gather(*(session(i) for i in range(connections)), return_exceptions=True)
        end = time.monotonic()
        errors = [r for r in results if isinstance(r, BaseException)]
        return start, timings.get("open"), end, errors

    start, opened_at, end, errors = run(main(), 120)
    summary = "%d connections x %d echoes: %.2fs total (%s to open all, %.2fs echoing and closing), %d errors" % (
        connections, echoes, end - start,
        "%.2fs" % (opened_at - start) if opened_at else "never all open",
        end - (opened_at or start), len(errors))
    with capsys.disabled():
        print("\n" + summary)
    assert not errors, "%s; first: %r" % (summary, errors[:5])


# ---------------------------------------------------------------------------
# Raw protocol violations against the echo server
# ---------------------------------------------------------------------------

def test_unmasked_client_frame_closes_1002(echo_server):
    with RawWebSocket(echo_server.port, "/echo") as ws:
        ws.send_frame(OP_TEXT, b"hello", mask=False)
        code, reason, before = ws.read_until_close()
        assert code == 1002, "close %d %r" % (code, reason)
        assert before == [], "frames before the close: %r" % before
        ws.expect_dropped()


@pytest.mark.parametrize("length", [2 ** 63 - 1, 2 ** 63, 2 ** 64 - 1], ids=["2^63-1", "2^63", "2^64-1"])
def test_absurd_frame_length_is_refused(echo_server, length):
    """A frame header announcing an absurd length (2^63 and up breaks RFC 6455's rule that the
    top bit is 0) is refused at once with 1009 or 1002, without allocating for it."""
    before_rss = vm_rss(echo_server.proc.pid)
    with RawWebSocket(echo_server.port, "/echo") as ws:
        start = time.monotonic()
        ws.send_raw(bytes([0x80 | OP_BINARY, 0x80 | 127]) + struct.pack("!Q", length) + os.urandom(4) + b"x" * 16)
        code, reason, before = ws.read_until_close()
        elapsed = time.monotonic() - start
        assert code in (1009, 1002), "close %d %r" % (code, reason)
        assert before == [], before
        assert elapsed < 2.0, "closed only after %.2fs" % elapsed
        ws.expect_dropped()
    growth = vm_rss(echo_server.proc.pid) - before_rss
    assert growth < 16 * MiB, "RSS grew by %.1f MiB for one absurd frame header" % (growth / MiB)
    # The server still serves.
    async def main():
        async with client(echo_server.ws("/echo")) as ws:
            await ws.send("still alive")
            assert await asyncio.wait_for(ws.recv(), 5) == "still alive"
    run(main(), 15)


def test_reserved_opcode_closes_1002(echo_server):
    with RawWebSocket(echo_server.port, "/echo") as ws:
        ws.send_frame(0x3, b"?")
        code, reason, _ = ws.read_until_close()
        assert code == 1002, "close %d %r" % (code, reason)
        ws.expect_dropped()


def test_invalid_utf8_text_closes_1007(echo_server):
    with RawWebSocket(echo_server.port, "/echo") as ws:
        ws.send_frame(OP_TEXT, b"ok \xff\xfe")
        code, reason, before = ws.read_until_close()
        assert code == 1007, "close %d %r" % (code, reason)
        assert before == [], before
        ws.expect_dropped()


def test_raw_ping_is_answered_and_close_echoed(echo_server):
    with RawWebSocket(echo_server.port, "/echo") as ws:
        ws.send_frame(OP_PING, b"raw-ping")
        fin, opcode, payload = ws.read_frame()
        assert (fin, opcode, payload) == (True, OP_PONG, b"raw-ping")
        ws.send_frame(OP_CLOSE, struct.pack("!H", 4000) + b"bye")
        code, _, before = ws.read_until_close()
        assert code == 4000 and before == []
        ws.expect_dropped()


# ---------------------------------------------------------------------------
# ws-test-server: the WebSocket contract as a client observes it
# ---------------------------------------------------------------------------

def test_send_only_ping_answered_and_clean_close(ws_test_server):
    async def main():
        async with client(ws_test_server.ws("/send-only"), max_queue=None) as ws:
            ticks = [await asyncio.wait_for(ws.recv(), 5) for _ in range(3)]
            assert ticks == ["tick 0", "tick 1", "tick 2"], ticks
            pong = await ws.ping(b"are you there")
            latency = await asyncio.wait_for(pong, 3)
            more = await asyncio.wait_for(ws.recv(), 5)
            assert more.startswith("tick "), more
            await ws.close(1000)
            assert ws.state is State.CLOSED
            assert ws.protocol.close_rcvd is not None, "the server never answered our close frame"
            assert ws.close_code == 1000, ws.protocol.close_rcvd
            assert ws.protocol.close_rcvd_then_sent is False
            return latency
    latency = run(main(), 20)
    print("pong after %.1f ms" % (latency * 1000))
    line = wait_for_event(ws_test_server, "send-only: send threw WebSocketDisconnect(")
    assert line.startswith("send-only: send threw WebSocketDisconnect(1000)"), line


def test_guarded_without_token_is_401_json(ws_test_server):
    async def main():
        response = await expect_rejected(ws_test_server.ws("/guarded"))
        assert response.status_code == 401, response
        assert json.loads(response.body) == {"detail": "bad token"}, response.body
        response = await expect_rejected(ws_test_server.ws("/guarded?token=wrong"))
        assert response.status_code == 401, response
    run(main(), 15)


def test_guarded_with_token_welcomes_then_closes_1000(ws_test_server):
    async def main():
        async with client(ws_test_server.ws("/guarded?token=secret")) as ws:
            assert await asyncio.wait_for(ws.recv(), 5) == "welcome"
            await expect_server_close(ws, 1000)
    run(main(), 15)


def test_subprotocol_chosen_with_custom_header(ws_test_server):
    async def main():
        async with client(ws_test_server.ws("/subprotocol"), subprotocols=["chat.v1", "chat.v2"]) as ws:
            assert ws.subprotocol == "chat.v2"
            assert ws.response.headers.get("Sec-WebSocket-Protocol") == "chat.v2", ws.response.headers
            assert ws.response.headers.get("X-Star") == "yes", ws.response.headers
            assert await asyncio.wait_for(ws.recv(), 5) == "chat.v2"
            await ws.send("done")
            await expect_server_close(ws, 1000)
    run(main(), 15)


def test_subprotocol_none_when_nothing_matches(ws_test_server):
    async def main():
        async with client(ws_test_server.ws("/subprotocol"), subprotocols=["other"]) as ws:
            assert ws.subprotocol is None
            assert "Sec-WebSocket-Protocol" not in ws.response.headers, ws.response.headers
            assert ws.response.headers.get("X-Star") == "yes", ws.response.headers
            assert await asyncio.wait_for(ws.recv(), 5) == "none"
    run(main(), 15)


def test_throw_before_connect_is_403(ws_test_server):
    async def main():
        response = await expect_rejected(ws_test_server.ws("/throw-before"))
        assert response.status_code == 403, response
    run(main(), 15)


def test_throw_after_connect_closes_1011(ws_test_server):
    async def main():
        async with client(ws_test_server.ws("/throw-after")) as ws:
            assert await asyncio.wait_for(ws.recv(), 5) == "about to fail"
            await expect_server_close(ws, 1011)
    run(main(), 15)


def test_hello_then_close_1000(ws_test_server):
    async def main():
        async with client(ws_test_server.ws("/hello")) as ws:
            assert await asyncio.wait_for(ws.recv(), 5) == "hello"
            await expect_server_close(ws, 1000)
    run(main(), 15)


def test_idle_client_that_never_pongs_is_closed_1011(ws_test_server):
    start = time.monotonic()
    with RawWebSocket(ws_test_server.port, "/idle", timeout=3.0) as ws:
        code, reason, before = ws.read_until_close()
        elapsed = time.monotonic() - start
        assert code == 1011, "close %d %r after %.2fs" % (code, reason, elapsed)
        assert elapsed < 2.5, "closed only after %.2fs" % elapsed
        pings = [payload for opcode, payload in before if opcode == OP_PING]
        assert pings and len(pings) == len(before), "expected only keepalive pings before the close: %r" % before
        ws.expect_dropped(timeout=2.0)
    print("idle client closed with 1011 %r after %.2fs, %d ping(s) first" % (reason, elapsed, len(pings)))
    line = wait_for_event(ws_test_server, "idle: receive threw WebSocketDisconnect(1011")
    assert "keepalive" in line, line


class _FrameLog(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def test_idle_client_that_answers_pings_stays_open(ws_test_server):
    frames = _FrameLog()
    logger = logging.getLogger("star.peers.idle")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    logger.addHandler(frames)

    async def main():
        async with client(ws_test_server.ws("/idle"), logger=logger) as ws:
            with pytest.raises(asyncio.TimeoutError):
                message = await asyncio.wait_for(ws.recv(), 2.0)
                pytest.fail("/idle sent a message: %r" % message)
            assert ws.state is State.OPEN, "the server closed an idle client that answers pings: %r" % (
                ws.protocol.close_rcvd,)
            await ws.close()
            assert ws.close_code == 1000, ws.protocol.close_rcvd
    try:
        run(main(), 15)
    finally:
        logger.removeHandler(frames)
    pings = [line for line in frames.lines if line.startswith("< PING")]
    pongs = [line for line in frames.lines if line.startswith("> PONG")]
    assert len(pings) >= 2, "expected keepalive pings every 0.5 s, saw: %r" % frames.lines
    assert len(pongs) >= len(pings) - 1, frames.lines


def test_message_over_test_server_limit_closes_1009(ws_test_server):
    """ws-test-server's limit is 1 MiB: exactly 1 MiB is echoed, one byte more is refused."""
    async def main():
        async with client(ws_test_server.ws("/echo")) as ws:
            blob = os.urandom(MiB)
            await ws.send(blob)
            assert await asyncio.wait_for(ws.recv(), 10) == blob
            try:
                await ws.send(blob + b"!")
            except ConnectionClosed:
                pass
            await expect_server_close(ws, 1009, timeout=10)
    run(main(), 30)


def test_server_alive_after_everything(ws_test_server, echo_server):
    assert ws_test_server.alive() and echo_server.alive()
    async def main():
        async with client(ws_test_server.ws("/hello")) as ws:
            assert await asyncio.wait_for(ws.recv(), 5) == "hello"
    run(main(), 10)


# ---------------------------------------------------------------------------
# A client that never reads: the handler's send must suspend (memory stays bounded)


def flood_count(server):
    response = get(server.port, "/flood-count")
    assert response.status == 200, response
    return json.loads(response.body)["sent"]


def test_send_suspends_while_the_client_does_not_read(ws_test_server_no_keepalive):
    """/flood sends 64 KiB messages as fast as it can to a client that reads nothing: the count
    stops growing, the server's RSS stays flat over seconds of the handler wanting to send (less
    than 16 MiB above what it was before the connection), and reading resumes the sender."""
    ws_test_server = ws_test_server_no_keepalive
    pid = ws_test_server.proc.pid
    rss_before = vm_rss(pid)
    with RawWebSocket(ws_test_server.port, "/flood", timeout=5.0) as ws:
        ws.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        time.sleep(1.5)  # the server fills the socket buffers and its own high-water mark
        first = flood_count(ws_test_server)
        rss_first = vm_rss(pid)
        time.sleep(1.0)
        second = flood_count(ws_test_server)
        assert first == second, "send kept going (%d, then %d messages) although nobody reads" % (first, second)
        # 64 KiB each: the kernel buffers plus a 1 MiB outbound high-water mark hold a few dozen at most.
        assert 0 < second < 200, "sent %d messages of 64 KiB to a client that reads nothing" % second
        time.sleep(2.0)
        third = flood_count(ws_test_server)
        rss_after = vm_rss(pid)
        print("flood to a client that does not read: %d messages; RSS %.1f MiB before, %.1f after 1.5 s, %.1f after 4.5 s"
              % (third, rss_before / MiB, rss_first / MiB, rss_after / MiB))
        assert third == second, "send resumed (%d, then %d messages) although nobody reads" % (second, third)
        assert rss_after - rss_before < 16 * MiB, "RSS grew by %.1f MiB while send was suspended" % (
            (rss_after - rss_before) / MiB)
        assert rss_after - rss_first < 4 * MiB, "RSS kept growing (%.1f -> %.1f MiB) while send was suspended" % (
            rss_first / MiB, rss_after / MiB)
        # Reading resumes the sender.
        for _ in range(50):
            ws.read_frame()
        deadline = time.time() + 5
        while flood_count(ws_test_server) <= second and time.time() < deadline:
            ws.read_frame()
        assert flood_count(ws_test_server) > second, "send did not resume after the client read"
