"""Fault tests (issue #8, item 3): misbehaving peers and handlers against the real
ws-test-server binary (Examples/Sources/WebSocketTestServer/main.swift). Each test is bounded in
time, asserts what the server really does, and ends by checking that the server still answers
a fresh echo.

  peer reset mid-message    /watch: the handler sees WebSocketDisconnect(1006); others are served
  half-open, reads nothing  /watch: the keepalive (0.5 s ping, 0.5 s timeout) closes it with 1011
  half-open, full window    /flood: the handler's suspended send ends at the ping timeout; the socket
                            goes after the close timeout (10 s) that waits for the close frame
  ping flood                /echo on a fresh server without keepalive: 100k pings, pongs unread
  stubborn handler          /stubborn ignores cancellation; SIGTERM with --timeout-graceful-shutdown 2
  throwing handler          /throw-on-message: 1011 every time, 200 sessions in a row
  out of descriptors        100 connections at a 64-descriptor limit: no spinning on EMFILE, serves after

Also about faults, in test_websocket_server.py: a client that never reads
(test_send_suspends_while_the_client_does_not_read, with its RSS bound), absurd frame lengths
(test_absurd_frame_length_is_refused: 2^63-1, 2^63, 2^64-1), a client that reads but never
pongs (test_idle_client_that_never_pongs_is_closed_1011).

Memory is the server's VmRSS (/proc/PID/status), so these tests need Linux, as the server's CI does.

Run: .ci/peer-tests.sh -k faults (or `$(.ci/python-peers.sh) -m pytest -q Tests/Peers/test_faults.py`).
"""

import asyncio
import os
import resource
import select
import signal
import socket
import struct
import subprocess
import time

import pytest

from test_websocket_server import (
    MiB, OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT, RawWebSocket, client, close_code, events,
    expect_server_close, run, vm_rss, wait_for_event,
)

# ws-test-server's keepalive (main.swift): a ping every 0.5 s, closed 0.5 s after an unanswered one.
PING_INTERVAL = PING_TIMEOUT = 0.5
# WebSocketOptions.closeTimeout: how long the server waits for the peer's close frame.
CLOSE_TIMEOUT = 10.0
# Linux tcp_info.tcpi_state values (include/net/tcp_states.h).
TCP_ESTABLISHED, TCP_CLOSE, TCP_CLOSE_WAIT = 1, 7, 8


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------

def assert_serves_fresh_echo(server):
    """The closing check of every test: the server is alive and a new connection gets its echo."""
    assert server.alive(), "%s exited (status %s); log:\n%s" % (server.name, server.proc.poll(), server.log_tail())

    async def main():
        async with client(server.ws("/echo")) as ws:
            await ws.send("fresh echo")
            assert await asyncio.wait_for(ws.recv(), 5) == "fresh echo"
    run(main(), 15)


def reset(sock):
    """Closes with an RST instead of a FIN (SO_LINGER on, 0 s)."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def masked_frame(opcode, payload, fin=True, length=None):
    """A masked client frame; `length` overrides the announced payload length."""
    length = len(payload) if length is None else length
    header = bytes([(0x80 if fin else 0) | opcode])
    if length < 126:
        header += bytes([0x80 | length])
    elif length < 1 << 16:
        header += bytes([0x80 | 126]) + struct.pack("!H", length)
    else:
        header += bytes([0x80 | 127]) + struct.pack("!Q", length)
    key = os.urandom(4)
    if not payload:
        return header + key
    mask = (key * (len(payload) // 4 + 1))[:len(payload)]
    return header + key + (int.from_bytes(payload, "big") ^ int.from_bytes(mask, "big")).to_bytes(len(payload), "big")


def client_tcp_state(sock):
    """The kernel's TCP state of our own socket (reading nothing from it)."""
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)[0]


def server_tcp_state(server_port, client_port):
    """The TCP state of the server's end of our connection, from /proc/net/tcp (None: gone)."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            local, remote, state = fields[1], fields[2], fields[3]
            if int(local.rsplit(":", 1)[1], 16) == server_port and int(remote.rsplit(":", 1)[1], 16) == client_port:
                return int(state, 16)
    return None


def new_event(server, prefix, seen, timeout):
    """Polls GET /events for a line starting with `prefix` past the first `seen` lines."""
    deadline = time.monotonic() + timeout
    while True:
        lines = events(server)[seen:]
        found = [line for line in lines if line.startswith(prefix)]
        if found:
            return found[-1]
        if time.monotonic() > deadline:
            pytest.fail("no new event starting with %r within %gs; new events: %r" % (prefix, timeout, lines))
        time.sleep(0.02)


class FrameParser:
    """Incremental parser of unmasked server frames, fast enough for 100k pongs."""

    def __init__(self):
        self.data = bytearray()

    def feed(self, chunk):
        self.data += chunk

    def frames(self):
        data, i = self.data, 0
        while len(data) - i >= 2:
            b0, b1 = data[i], data[i + 1]
            assert b1 & 0x80 == 0, "server frame is masked"
            length, head = b1 & 0x7F, 2
            if length == 126:
                if len(data) - i < 4:
                    break
                length, head = struct.unpack_from("!H", data, i + 2)[0], 4
            elif length == 127:
                if len(data) - i < 10:
                    break
                length, head = struct.unpack_from("!Q", data, i + 2)[0], 10
            if len(data) - i < head + length:
                break
            yield b0 & 0x0F, bytes(data[i + head:i + head + length])
            i += head + length
        del data[:i]


# ---------------------------------------------------------------------------
# 1. A peer that resets mid-message
# ---------------------------------------------------------------------------

# Where the connection is cut: bytes sent after one complete message, then the RST.
RESET_CUTS = {
    # 512 KiB binary frame (the limit is 1 MiB), cut inside its 64-bit length
    "in-header": lambda: masked_frame(OP_BINARY, b"", length=512 * 1024)[:5],
    # ...and after 100 KiB of its payload
    "in-payload": lambda: masked_frame(OP_BINARY, b"", length=512 * 1024) + os.urandom(100 * 1024),
    # a fragmented text message: first fragment only
    "between-fragments": lambda: masked_frame(OP_TEXT, b"first fragment", fin=False),
    # ...and half of a 64 KiB continuation
    "in-continuation": lambda: (masked_frame(OP_TEXT, b"first fragment", fin=False)
                                + masked_frame(OP_CONT, b"", length=64 * 1024) + b"x" * 32 * 1024),
}


def test_peer_reset_mid_message_reaches_the_handler_and_others_are_served(ws_test_server):
    """Each cut: one whole message (answered `got 1`), part of the next, then an RST (SO_LINGER 0).
    The handler of that session must end with WebSocketDisconnect(1006) having received only the
    whole message, and a bystander connection opened before the resets keeps echoing throughout."""
    server = ws_test_server
    results = {}

    async def main():
        async with client(server.ws("/echo")) as bystander:
            for name, cut in RESET_CUTS.items():
                tag = "reset-%s-%s" % (name, os.urandom(4).hex())

                def fault():
                    seen = len(events(server))
                    raw = RawWebSocket(server.port, "/watch?tag=" + tag)
                    raw.send_frame(OP_TEXT, b"whole message")
                    fin, opcode, payload = raw.read_frame()
                    assert (opcode, payload) == (OP_TEXT, b"got 1"), (opcode, payload)
                    raw.send_raw(cut())
                    time.sleep(0.1)  # let the server read the partial message before the reset
                    reset(raw.sock)
                    start = time.monotonic()
                    line = new_event(server, "watch %s:" % tag, seen, timeout=3)
                    return line, time.monotonic() - start

                results[name] = await asyncio.to_thread(fault)
                await bystander.send("still there after %s" % name)
                assert await asyncio.wait_for(bystander.recv(), 5) == "still there after %s" % name
    run(main(), 40)
    for name, (line, seconds) in results.items():
        print("%-18s handler saw it after %.0f ms: %s" % (name, seconds * 1000, line))
    for name, (line, _) in results.items():
        assert "ended with WebSocketDisconnect(1006," in line, "%s: %s" % (name, line)
        assert line.endswith("after 1 messages"), "%s: the partial message reached the handler? %s" % (name, line)
    assert_serves_fresh_echo(server)


# ---------------------------------------------------------------------------
# 2. Half-open connections found by the keepalive
# ---------------------------------------------------------------------------

def test_half_open_peer_that_reads_nothing_is_closed_by_the_keepalive(ws_test_server):
    """The client keeps its socket but never reads or writes a byte after the handshake (its
    kernel still ACKs: a stopped process, or a peer whose app hung). Unlike
    test_idle_client_that_never_pongs_is_closed_1011, nothing is read while waiting: our socket's
    own TCP state shows the server's FIN. The server must give up within ping interval + ping
    timeout (plus a margin), and the handler must see the 1011."""
    server = ws_test_server
    tag = "half-open-%s" % os.urandom(4).hex()
    seen = len(events(server))
    raw = RawWebSocket(server.port, "/watch?tag=" + tag)
    start = time.monotonic()
    try:
        state = client_tcp_state(raw.sock)
        while state == TCP_ESTABLISHED and time.monotonic() - start < 5:
            time.sleep(0.02)
            state = client_tcp_state(raw.sock)
        elapsed = time.monotonic() - start
        line = new_event(server, "watch %s:" % tag, seen, timeout=2)
        # Now read what piled up: keepalive ping(s), the close frame, then the end of the stream.
        code, reason, before = raw.read_until_close()
        raw.expect_dropped(timeout=2)
    finally:
        raw.close_socket()
    print("server closed the silent peer after %.2fs (tcp state %d): close %d %r after %r; handler: %s"
          % (elapsed, state, code, reason, [op for op, _ in before], line))
    assert state in (TCP_CLOSE_WAIT, TCP_CLOSE), "still state %d after %.2fs" % (state, elapsed)
    assert elapsed < PING_INTERVAL + PING_TIMEOUT + 1.5, "closed only after %.2fs" % elapsed
    assert (code, reason) == (1011, "keepalive ping timeout"), (code, reason)
    assert before and all(op == OP_PING for op, _ in before), before
    assert line.startswith("watch %s: ended with WebSocketDisconnect(1011, keepalive ping timeout)" % tag), line
    assert_serves_fresh_echo(server)


@pytest.mark.deadline(40)
def test_half_open_peer_with_a_full_window_is_dropped(ws_test_server):
    """The client never reads while /flood sends: the socket buffers fill, TCP's window closes, and
    the keepalive ping cannot even leave the server (it waits behind the unsent data). The ping
    timeout must still end the session: the handler's suspended send throws 1011 within ping
    interval + timeout. The close frame cannot be delivered either, so the server's socket goes
    when the close timeout (10 s, WebSocketOptions.closeTimeout) runs out: its end of the
    connection leaves ESTABLISHED (seen in /proc/net/tcp) by then."""
    server = ws_test_server
    seen = len(events(server))
    raw = None
    try:
        raw = RawWebSocket(server.port, "/flood")
        raw.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)  # a small window, no autotuning
        client_port = raw.sock.getsockname()[1]
        start = time.monotonic()
        line = new_event(server, "flood: send threw", seen, timeout=PING_INTERVAL + PING_TIMEOUT + 2.5)
        handler_ended = time.monotonic() - start
        state = server_tcp_state(server.port, client_port)
        while state == TCP_ESTABLISHED and time.monotonic() - start < PING_INTERVAL + PING_TIMEOUT + CLOSE_TIMEOUT + 4:
            time.sleep(0.05)
            state = server_tcp_state(server.port, client_port)
        dropped = time.monotonic() - start
    finally:
        if raw is not None:
            reset(raw.sock)
    print("full-window peer: handler's send ended after %.2fs (%s); server socket state %s after %.2fs"
          % (handler_ended, line, state, dropped))
    assert line.startswith("flood: send threw WebSocketDisconnect(1011, keepalive ping timeout)"), line
    assert handler_ended < PING_INTERVAL + PING_TIMEOUT + 1.5, "the handler's send ended only after %.2fs" % handler_ended
    assert state != TCP_ESTABLISHED, "the server still holds the connection %.2fs after the handshake" % dropped
    assert dropped < PING_INTERVAL + PING_TIMEOUT + CLOSE_TIMEOUT + 2, "dropped only after %.2fs" % dropped
    assert_serves_fresh_echo(server)


# ---------------------------------------------------------------------------
# 4. A ping flood that never reads the pongs
# ---------------------------------------------------------------------------

FLOOD_PINGS = 100_000
PING_PAYLOAD = 125  # the largest control payload: each pong is 127 bytes, 12.1 MiB in all


def flood_bytes():
    """FLOOD_PINGS masked pings whose payloads start with their index (8 digits)."""
    key = os.urandom(4)
    header = bytes([0x80 | OP_PING, 0x80 | PING_PAYLOAD]) + key
    mask = int.from_bytes((key * 32)[:PING_PAYLOAD], "big")
    pad = b"." * (PING_PAYLOAD - 8)
    return b"".join(header + (int.from_bytes(b"%08d" % i + pad, "big") ^ mask).to_bytes(PING_PAYLOAD, "big")
                    for i in range(FLOOD_PINGS))


@pytest.mark.deadline(75)
def test_ping_flood_unread_pongs(start_server):
    """100k pings (125-byte payloads, 12.8 MB) written as fast as the server takes them, no pong
    read; then the pongs are read. Meanwhile another client's echo is timed every 0.25 s, and the
    server's RSS sampled. Expected and asserted:

    - the other client is answered within 2 s each time during the flood;
    - what Star does with the flooding connection: it serves it. It answers pings in order (RFC
      6455 §5.5.3 allows answering only the latest of several, so a server that coalesces
      pongs passes too, as long as the last ping is answered); the connection stays open and
      echoes a message afterwards. A server that closes the flooder instead would have to use
      1008 (policy), 1009 or 1011 — accepted too, nothing else;
    - memory stays bounded: RSS grows less than 8 MiB, below the 12.1 MiB of pongs, so a server that
      buffers every pong it cannot write fails. A server that applies backpressure stops
      reading the flooder's pings while its pongs cannot be written (the sender then waits, and
      this test reads the pongs once sending has made no progress for 2 s)."""
    server = start_server("ws-test-server", env={"STAR_TEST_KEEPALIVE": "off"})
    pid = server.proc.pid
    data = flood_bytes()
    other = RawWebSocket(server.port, "/echo", timeout=5)
    flooder = RawWebSocket(server.port, "/echo", timeout=5)
    try:
        other.send_frame(OP_TEXT, b"warm-up")
        assert other.read_frame()[1:] == (OP_TEXT, b"warm-up")
        flooder.send_frame(OP_TEXT, b"before the flood")
        assert flooder.read_frame()[1:] == (OP_TEXT, b"before the flood")
        baseline = peak = vm_rss(pid)
        latencies = []
        parser = FrameParser()
        parser.feed(flooder.buffer)
        pong_ids, closed, eof = [], None, False
        sock = flooder.sock
        sock.setblocking(False)
        sent, reading, read_from, last_progress, last_probe = 0, False, None, time.monotonic(), 0.0
        start = time.monotonic()
        while time.monotonic() - start < 45:
            now = time.monotonic()
            if now - last_probe >= 0.25:  # the other client, and the memory sample
                last_probe = now
                peak = max(peak, vm_rss(pid))
                other.send_frame(OP_TEXT, b"probe %d" % len(latencies))
                try:
                    frame = other.read_frame()
                except socket.timeout:
                    pytest.fail("the other client got no echo within 5 s, %.2fs into the flood" % (now - start))
                latencies.append(time.monotonic() - now)
                assert frame[1:] == (OP_TEXT, b"probe %d" % (len(latencies) - 1)), frame
            if not reading and (sent == len(data) or now - last_progress > 2.0):
                reading = True  # everything sent, or the server pushes back: start reading the pongs
                read_from = now - start
            readable, writable, _ = select.select([sock] if reading else [], [sock] if sent < len(data) else [], [], 0.05)
            if writable:
                try:
                    sent += sock.send(memoryview(data)[sent:sent + 256 * 1024])
                    last_progress = time.monotonic()
                except BlockingIOError:
                    pass
            if readable:
                try:
                    chunk = sock.recv(1 << 20)
                except ConnectionResetError:
                    chunk = b""
                if not chunk:
                    eof = True
                    break
                parser.feed(chunk)
                for opcode, payload in parser.frames():
                    if opcode == OP_PONG:
                        pong_ids.append(int(payload[:8]))
                    elif opcode == OP_CLOSE:
                        closed = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                    else:
                        pytest.fail("unexpected frame %d %.80r during the flood" % (opcode, payload))
                if closed is not None or (pong_ids and pong_ids[-1] == FLOOD_PINGS - 1):
                    break
        flood_seconds = time.monotonic() - start
        peak = max(peak, vm_rss(pid))
        served = closed is None and not eof and pong_ids and pong_ids[-1] == FLOOD_PINGS - 1
        echo_after = None
        if served:
            sock.setblocking(True)
            flooder.buffer = bytes(parser.data)
            flooder.send_frame(OP_TEXT, b"after the flood")
            echo_after = flooder.read_frame()
            flooder.send_frame(OP_CLOSE, struct.pack("!H", 1000))
    finally:
        flooder.close_socket()
        other.close_socket()
    in_order = all(a < b for a, b in zip(pong_ids, pong_ids[1:]))
    print("ping flood: %d of %d bytes sent, reading from %s s, done after %.2fs; %d pongs (in order: %s, last %s); "
          "close %s, eof %s; other client: %d probes, max %.0f ms; RSS %.1f -> peak %.1f MiB (+%.1f)"
          % (sent, len(data), read_from and "%.2f" % read_from, flood_seconds, len(pong_ids), in_order, pong_ids[-1] if pong_ids else None,
             closed, eof, len(latencies), max(latencies) * 1000, baseline / MiB, peak / MiB, (peak - baseline) / MiB))
    assert latencies and max(latencies) < 2.0, "the other client waited %.2fs for an echo" % max(latencies)
    assert in_order, "pongs out of order or repeated"
    if served:
        assert echo_after[1:] == (OP_TEXT, b"after the flood"), echo_after
    else:
        assert closed in (1008, 1009, 1011), "flooder: close %s, eof %s, %d pongs, last %s" % (
            closed, eof, len(pong_ids), pong_ids[-1] if pong_ids else None)
    assert peak - baseline < 8 * MiB, (
        "RSS grew by %.1f MiB (%.1f -> %.1f) while a client sent %d pings without reading the pongs"
        % ((peak - baseline) / MiB, baseline / MiB, peak / MiB, FLOOD_PINGS))
    assert_serves_fresh_echo(server)


# ---------------------------------------------------------------------------
# 6. A handler that never returns, at shutdown
# ---------------------------------------------------------------------------

def test_sigterm_with_a_handler_that_never_returns(start_server):
    """/stubborn connects, then sleeps in 100 ms steps for 60 s, ignoring cancellation. After
    SIGTERM the client gets the 1001 close (and answers it, as a client should); the server must
    still exit within --timeout-graceful-shutdown 2 plus a margin, with status 0 (README: "exits 0")."""
    grace, margin = 2.0, 3.0
    server = start_server("ws-test-server", args=["--timeout-graceful-shutdown", str(int(grace))])
    assert_serves_fresh_echo(server)  # the check comes first here: the server is gone at the end
    raw = RawWebSocket(server.port, "/stubborn")
    try:
        wait_for_event(server, "stubborn: connected")
        server.proc.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        code, reason, before = raw.read_until_close()
        raw.send_frame(OP_CLOSE, struct.pack("!H", code))
        raw.expect_dropped(timeout=3)
        try:
            status = server.proc.wait(timeout=grace + margin)
        except subprocess.TimeoutExpired:
            status = None
        exited = time.monotonic() - signalled
    finally:
        raw.close_socket()
        if server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait(timeout=5)
    print("stubborn handler: close %d %r; exit status %s after %.2fs" % (code, reason, status, exited))
    assert (code, before) == (1001, []), (code, reason, before)
    assert status is not None, (
        "still running %.1fs after SIGTERM with --timeout-graceful-shutdown %g: shutdown waits for a handler "
        "that ignores cancellation; log:\n%s" % (exited, grace, server.log_tail()))
    assert status == 0, "exit status %s; log:\n%s" % (status, server.log_tail())


# ---------------------------------------------------------------------------
# 7. A handler that throws on every message
# ---------------------------------------------------------------------------

@pytest.mark.deadline(90)
def test_handler_that_throws_on_every_message(ws_test_server):
    """200 sessions in a row on /throw-on-message: each sends one message and must get the 1011
    close (and nothing else); the server's RSS grows less than 16 MiB over the 190 after a warm-up."""
    server = ws_test_server
    pid = server.proc.pid
    sessions, warm_up = 200, 10
    codes = []

    async def one(index):
        async with client(server.ws("/throw-on-message")) as ws:
            await ws.send("message %d" % index)
            error = await expect_server_close(ws, 1011)
            codes.append(close_code(error))

    async def main():
        for index in range(warm_up):
            await one(index)
        before = vm_rss(pid)
        start = time.monotonic()
        for index in range(warm_up, sessions):
            await one(index)
        return before, vm_rss(pid), time.monotonic() - start

    before, after, seconds = run(main(), 80)
    print("%d throwing sessions, %d in %.2fs; RSS %.1f -> %.1f MiB" % (
        sessions, sessions - warm_up, seconds, before / MiB, after / MiB))
    assert codes == [1011] * sessions
    assert after - before < 16 * MiB, "RSS grew by %.1f MiB over %d sessions" % ((after - before) / MiB,
                                                                                 sessions - warm_up)
    assert_serves_fresh_echo(server)


# ---------------------------------------------------------------------------
# 8. Out of file descriptors
# ---------------------------------------------------------------------------

def cpu_seconds(pid):
    """User plus system CPU time of a process, from /proc/PID/stat."""
    with open("/proc/%d/stat" % pid) as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_out_of_file_descriptors_backs_off_then_serves_again(start_server):
    """The server's descriptor limit is lowered to 64 (prlimit) and 100 connections are opened:
    it accepts until accept(2) fails with EMFILE and must then back off rather than spin on the
    listening socket, which stays readable (under a third of a core over 2 s; a spinning loop
    takes all of it), say so in its log, and stay up. Once the connections close it accepts again: those still in
    the backlog, then a fresh WebSocket."""
    server = start_server("ws-test-server")
    pid = server.proc.pid
    _, hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (64, hard))
    held = []
    try:
        for _ in range(100):
            held.append(socket.create_connection(("127.0.0.1", server.port), timeout=5))
        time.sleep(0.5)  # the server accepts what it can and meets EMFILE
        before, start = cpu_seconds(pid), time.monotonic()
        time.sleep(2)
        share = (cpu_seconds(pid) - before) / (time.monotonic() - start)
        accepted = sum(1 for link in os.listdir("/proc/%d/fd" % pid)
                       if os.readlink("/proc/%d/fd/%s" % (pid, link)).startswith("socket:"))
    finally:
        for sock in held:
            sock.close()
    print("at 64 descriptors with 100 connections: %d sockets open in the server, %.0f %% of a core" % (
        accepted, share * 100))
    assert server.alive(), "exited at the descriptor limit; log:\n%s" % server.log_tail()
    assert 20 < accepted < 64, accepted
    assert share < 0.33, "%.0f %% of a core while out of descriptors: the accept loop spins" % (share * 100)
    assert "cannot accept connections" in server.log_tail(), "no warning logged; log:\n%s" % server.log_tail()
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (1024, hard))
    assert_serves_fresh_echo(server)
