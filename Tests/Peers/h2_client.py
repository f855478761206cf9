"""A small HTTP/2 client on PyPI's `h2`, with RFC 8441 WebSockets (`wsproto` for the frames).

Blocking sockets, one connection, many streams: enough for tests that need to see frames
(SETTINGS, END_STREAM, RST_STREAM, GOAWAY) that curl and nghttp do not show to a script.

    client = H2Client(port)                       # prior knowledge h2c; tls=True for ALPN h2
    status, headers, body = client.get("/info")
    ws = client.websocket("/echo")                # CONNECT :protocol websocket, answered 200
    ws.send_text("hi"); assert ws.receive() == ("text", "hi")
    ws.close(1000); assert ws.close_code == 1000 and ws.ended

Every wait has a deadline (`timeout`, default 10 s); a deadline passed raises TimeoutError.
"""

import socket
import ssl
import time

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
from wsproto.connection import Connection, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Ping, Pong, TextMessage
from wsproto.extensions import PerMessageDeflate

HOST = "127.0.0.1"


class DrainingH2Connection(h2.connection.H2Connection):
    """`h2` closes its state machine on GOAWAY; a server's graceful GOAWAY still lets the streams
    it names finish (RFC 9113 §6.8). This one records GOAWAY frames and goes on reading."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.goaways = []

    def _receive_goaway_frame(self, frame):
        self.goaways.append((frame.error_code, frame.last_stream_id))
        return [], []


class Stream:
    """What arrived on one stream."""

    def __init__(self, stream_id):
        self.id = stream_id
        self.status = None
        self.headers = {}
        self.data = bytearray()
        self.ended = False          # the server's END_STREAM
        self.reset = None           # the server's RST_STREAM error code


class H2Client:
    #: Every client made, so that a test suite can close them all after each test (`close_all`).
    opened = []

    def __init__(self, port, tls=False, settings=None, timeout=10.0, connect=True):
        H2Client.opened.append(self)
        self.timeout = timeout
        raw = socket.create_connection((HOST, port), timeout=timeout)
        if tls:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            context.set_alpn_protocols(["h2", "http/1.1"])
            raw = context.wrap_socket(raw, server_hostname="localhost")
            self.alpn = raw.selected_alpn_protocol()
        self.sock = raw
        self.conn = DrainingH2Connection(
            config=h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        self.streams = {}

        self.closed = False         # the server closed the socket
        self.pings_acked = 0
        self.settings_acked = False
        if connect:
            self.conn.initiate_connection()
            if settings:
                self.conn.update_settings(settings)
            self.flush()
            self.pump(lambda: self._got_settings)

    _got_settings = False

    # -- plumbing ---------------------------------------------------------------------------

    def flush(self):
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def send_raw(self, data):
        self.sock.sendall(data)

    def read_once(self, timeout):
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except (socket.timeout, BlockingIOError, ssl.SSLWantReadError):
            return
        except (ConnectionResetError, BrokenPipeError, ssl.SSLError):
            data = b""
        if not data:
            self.closed = True
            return
        for event in self.conn.receive_data(data):
            self.handle(event)
        self.flush()

    def handle(self, event):
        if isinstance(event, h2.events.RemoteSettingsChanged):
            self._got_settings = True
        elif isinstance(event, h2.events.SettingsAcknowledged):
            self.settings_acked = True
        elif isinstance(event, h2.events.PingAckReceived):
            self.pings_acked += 1
        elif isinstance(event, h2.events.ResponseReceived):
            stream = self.streams[event.stream_id]
            stream.headers = dict(event.headers)
            stream.status = int(stream.headers[":status"])
        elif isinstance(event, h2.events.InformationalResponseReceived):
            pass
        elif isinstance(event, h2.events.DataReceived):
            self.streams[event.stream_id].data += event.data
            self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, h2.events.StreamEnded):
            self.streams[event.stream_id].ended = True
        elif isinstance(event, h2.events.StreamReset):
            if event.stream_id in self.streams:
                self.streams[event.stream_id].reset = event.error_code

    @property
    def goaway(self):
        """(error code, last stream id) of the server's last GOAWAY, or None."""
        return self.conn.goaways[-1] if self.conn.goaways else None

    def pump(self, condition, timeout=None):
        """Reads until `condition()` holds; TimeoutError past the deadline, or if the socket closed first."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while not condition():
            if self.closed:
                raise ConnectionError("the server closed the connection")
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no such event within the deadline")
            self.read_once(min(left, 0.5))

    def pump_until_closed(self, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        while not self.closed:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("the server kept the connection open")
            self.read_once(min(left, 0.5))

    # -- requests ---------------------------------------------------------------------------

    def start(self, method, path, headers=(), body=None, end=True, extra_pseudo=()):
        stream_id = self.conn.get_next_available_stream_id()
        self.streams[stream_id] = Stream(stream_id)
        request = [(":method", method), (":path", path), (":scheme", "http"), (":authority", f"{HOST}")]
        request += list(extra_pseudo) + list(headers)
        self.conn.send_headers(stream_id, request, end_stream=end and not body)
        if body:
            self.conn.send_data(stream_id, body, end_stream=end)
        self.flush()
        return self.streams[stream_id]

    def send_body(self, stream, data, end=True, timeout=None):
        """Sends `data` on `stream` as the flow-control windows allow (waiting for WINDOW_UPDATE)."""
        view, offset = memoryview(data), 0
        while offset < len(data):
            window = min(self.conn.local_flow_control_window(stream.id), self.conn.max_outbound_frame_size)
            if window <= 0:
                self.pump(lambda: self.conn.local_flow_control_window(stream.id) > 0
                          or stream.ended or stream.reset is not None, timeout)
                if stream.ended or stream.reset is not None:
                    return
                continue
            chunk = bytes(view[offset:offset + window])
            self.conn.send_data(stream.id, chunk)
            offset += len(chunk)
            self.flush()
        if end:
            self.conn.end_stream(stream.id)
            self.flush()

    def response(self, stream, timeout=None):
        self.pump(lambda: stream.ended or stream.reset is not None, timeout)
        return stream.status, stream.headers, bytes(stream.data)

    def get(self, path, headers=(), timeout=None):
        return self.response(self.start("GET", path, headers), timeout)

    def websocket(self, path, headers=(), deflate=False, timeout=None):
        """Opens a WebSocket on a new stream (RFC 8441); returns it once the server answered
        (accepted or not: check `.status`)."""
        offer = [("sec-websocket-version", "13")] + list(headers)
        extension = PerMessageDeflate() if deflate else None
        if extension:
            offered = extension.offer()
            offer.append(("sec-websocket-extensions", f"{extension.name}; {offered}" if isinstance(offered, str) else extension.name))
        stream = self.start("CONNECT", path, offer, end=False, extra_pseudo=[(":protocol", "websocket")])
        self.pump(lambda: stream.status is not None or stream.reset is not None or stream.ended, timeout)
        return H2WebSocket(self, stream, extension)

    def ping(self, payload=b"12345678"):
        self.conn.ping(payload)
        self.flush()

    def reset(self, stream, code=8):
        self.conn.reset_stream(stream.id, error_code=code)
        self.flush()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    @classmethod
    def close_all(cls):
        for client in cls.opened:
            client.close()
        cls.opened.clear()


class H2WebSocket:
    """A WebSocket carried by one HTTP/2 stream: frames in DATA, END_STREAM after the close."""

    def __init__(self, client, stream, extension):
        self.client = client
        self.stream = stream
        self.status = stream.status
        self.headers = stream.headers
        agreed = stream.headers.get("sec-websocket-extensions")
        extensions = []
        if extension and agreed:
            extension.finalize(agreed)
            extensions = [extension]
        self.ws = Connection(ConnectionType.CLIENT, extensions=extensions)
        self.events = []
        self.read_offset = 0
        self.close_code = None
        self.close_reason = None

    @property
    def ended(self):
        return self.stream.ended

    @property
    def reset(self):
        return self.stream.reset

    def _send(self, event, end=False):
        self.client.conn.send_data(self.stream.id, self.ws.send(event), end_stream=end)
        self.client.flush()

    def send_text(self, text):
        self._send(TextMessage(data=text))

    def send_bytes(self, data):
        self._send(BytesMessage(data=data))

    def send_ping(self, payload=b"p"):
        self._send(Ping(payload=payload))

    def _collect(self):
        fresh = bytes(self.stream.data[self.read_offset:])
        self.read_offset = len(self.stream.data)
        if fresh:
            self.ws.receive_data(fresh)
            for event in self.ws.events():
                if isinstance(event, CloseConnection):
                    self.close_code, self.close_reason = event.code, event.reason
                elif isinstance(event, Ping):
                    self._send(event.response())
                    continue
                self.events.append(event)

    def receive(self, timeout=None):
        """The next message as ("text", str) or ("bytes", bytes), or ("close", code)."""
        def ready():
            self._collect()
            return bool(self.events) or self.ended or self.reset is not None
        self.client.pump(ready, timeout)
        if not self.events:
            raise ConnectionError(f"stream ended (reset={self.reset}) with no message")
        event = self.events.pop(0)
        if isinstance(event, TextMessage):
            return "text", event.data
        if isinstance(event, BytesMessage):
            return "bytes", bytes(event.data)
        if isinstance(event, CloseConnection):
            return "close", event.code
        if isinstance(event, Pong):
            return "pong", bytes(event.payload)
        return type(event).__name__, event

    def close(self, code=1000, reason="", timeout=None):
        """Sends our close frame with END_STREAM (as Chromium does) and waits for the server's
        close frame and its END_STREAM."""
        self._send(CloseConnection(code=code, reason=reason), end=True)

        def done():
            self._collect()
            return (self.close_code is not None and self.ended) or self.reset is not None
        self.client.pump(done, timeout)

    def wait_for_close(self, timeout=None):
        """Waits for the server's close frame (a server-initiated close), answers it with ours and
        END_STREAM, and returns whether the server's END_STREAM had come right after its close
        frame (before our answer)."""
        def closed():
            self._collect()
            return self.close_code is not None or self.reset is not None
        self.client.pump(closed, timeout)
        # END_STREAM may come in the next read: Chromium gives it 2 s, this waits 1 s.
        try:
            self.client.pump(lambda: self.ended or self.reset is not None, 1.0)
        except TimeoutError:
            pass
        ended_first = self.ended
        if self.reset is None:
            try:
                self._send(CloseConnection(code=self.close_code or 1000), end=True)
            except h2.exceptions.StreamClosedError:
                pass
        return ended_first
