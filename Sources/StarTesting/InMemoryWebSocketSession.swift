import HTTPTypes
import NIOCore
import NIOWebSocket
@_spi(Transport) import Star
import StarWebSocketEngine
import Synchronization

/// What the test client sees arrive: a message, or the close that ends the session.
enum InMemoryFrame: Sendable {
    case message(WebSocketMessage)
    case close(WebSocketDisconnect)
}

/// One in-memory WebSocket session: the ``WebSocketTransport`` the app sees when the
/// ``TestClient`` connects, the client's end of it, and the "wire" between them.
///
/// Both ends run the engine that the server runs — the server end in the server role, the
/// client end in the client role — and frames cross between them as NIO's `WebSocketFrame` values and
/// arrive as the engine's `WebSocketInboundFrame`, masked from the client as on a socket. So the contract is the server's: a message past
/// `maxMessageSize` closes with 1009, a bad close code with 1002, the app's queue bound holds the
/// client's sends back, pings and the close handshake are answered by the ends themselves, and
/// the timers run on the client's ``TestClock``.
final class InMemoryWebSocketSession: WebSocketTransport {
    private struct Wire {
        /// The server's rules, from `accept` on.
        var server: WebSocketStateMachine?
        /// The client's rules, from `accept` on.
        var client: WebSocketStateMachine?
        /// The app's queue is full: the server reads no more frames, the client's sends wait.
        var readingPaused = false
        var clientSenders = Waiters<Void>()
        /// The "socket" is gone: nothing crosses any more.
        var closed = false
        /// The client has seen the session end.
        var clientSawClose = false
    }

    /// One frame on its way, or the end of the connection.
    private enum Hop {
        case toServer(WebSocketFrame)
        case toClient(WebSocketFrame)
        case closeSocket
    }

    let defaultOptions: WebSocketOptions
    /// The app's side: received messages, waiting receivers and senders.
    let mailbox: WebSocketMailbox
    /// What the client receives, in order.
    let toClient = MessageQueue<InMemoryFrame>()
    /// The `101`'s header fields, once the app accepted.
    let handshake = MessageQueue<HTTPFields>()
    private let clock: TestClock
    private let respondsToPings: Bool
    private let wire = Mutex(Wire())
    private let timers = Mutex<Duration>(.seconds(1))

    init(clock: TestClock, respondsToPings: Bool, defaultOptions: WebSocketOptions = WebSocketOptions()) {
        self.clock = clock
        self.respondsToPings = respondsToPings
        self.defaultOptions = defaultOptions
        mailbox = WebSocketMailbox(maxQueue: defaultOptions.maxQueue)
    }

    /// The shortest timer of the server's session (the clock steps by a tenth of it).
    var shortestTimer: Duration { timers.withLock { $0 } }

    // MARK: WebSocketTransport (the app's end)

    func accept(headers: HTTPFields, options: WebSocketOptions) async throws {
        mailbox.setMaxQueue(options.maxQueue)
        let now = clock.deadline
        wire.withLock { wire in
            let server = WebSocketStateMachine(role: .server, options: options, now: now)
            wire.server = server
            // The client takes any size and keeps no timers of its own (a test drives it).
            wire.client = WebSocketStateMachine(
                role: .client, options: WebSocketOptions(maxMessageSize: .max, pingInterval: nil, pingTimeout: nil), now: now)
            timers.withLock { $0 = .nanoseconds(server.shortestTimer.nanoseconds) }
        }
        clock.add(self)
        handshake.push(headers)
    }

    nonisolated(nonsending) func receive() async throws -> WebSocketMessage {
        try await mailbox.receive {
            // The app's queue has room again: the server reads again, so waiting client sends go on.
            let senders = wire.withLock { wire in
                wire.readingPaused = false
                return wire.clientSenders.removeAll()
            }
            for sender in senders { sender.resume(returning: .success(())) }
        }
    }

    nonisolated(nonsending) func send(_ message: WebSocketMessage) async throws {
        try await mailbox.reserveSend()
        let frame: WebSocketFrame = switch message {
        case .text(let text): WebSocketFrame(fin: true, opcode: .text, data: ByteBuffer(string: text))
        case .binary(let bytes): WebSocketFrame(fin: true, opcode: .binary, data: bytes)
        }
        pump { wire in
            // Messages sent after the close frame would break the protocol: dropped, as the server does.
            wire.server?.state == .open ? .toClient(frame) : nil
        }
    }

    func close(code: WebSocketCloseCode, reason: String) async {
        let now = clock.deadline
        pump { wire in
            guard var server = wire.server else { return .closeSocket }  // never accepted
            defer { wire.server = server }
            guard server.close(now: now) else { return nil }
            mailbox.finish(WebSocketDisconnect(code: code, reason: reason))
            return .toClient(Self.closeFrame(code, reason))
        }
    }

    // MARK: The client's end

    /// Sends a frame from the client; waits while the app's queue is full (as TCP would hold a
    /// client back), unless it is a close. Throws the session's end once it ended.
    func clientSend(_ frame: WebSocketFrame) async throws {
        if frame.opcode != .connectionClose {
            try await Waiters<Void>.suspend { id, continuation in
                wire.withLock { wire in
                    if wire.closed || wire.clientSawClose { return .failure(ended) }
                    if !wire.readingPaused { return .success(()) }
                    return wire.clientSenders.enqueue(id: id, continuation)
                }
            } cancel: { id in
                self.wire.withLock { $0.clientSenders.remove(id: id) }
            }.get()
        }
        let now = clock.deadline
        pump { wire in
            if frame.opcode == .connectionClose, var client = wire.client {
                _ = client.close(now: now)  // the client now waits for the server's answer
                wire.client = client
            }
            return .toServer(frame)
        }
    }

    // MARK: Time

    /// Called by the clock: carries out what the server's timers ask for.
    func tick(now: NIODeadline) {
        pump { wire in
            guard var server = wire.server, !wire.closed else { return nil }
            defer { wire.server = server }
            switch server.tick(now: now) {
            case .none:
                return nil
            case .sendPing(let id):
                var payload = ByteBuffer()
                payload.writeInteger(id)
                return .toClient(WebSocketFrame(fin: true, opcode: .ping, data: payload))
            case .fail(let code, let reason):
                mailbox.finish(WebSocketDisconnect(code: code, reason: reason))
                return .toClient(Self.closeFrame(code, reason))
            case .closeSocket:
                return .closeSocket
            }
        }
    }

    // MARK: The wire

    /// Runs `first` (under the wire's lock) and then every frame it sets moving, in order, until
    /// nothing is in flight. Both ends answer at once, as a socket's peers would.
    private func pump(_ first: (inout Wire) -> Hop?) {
        wire.withLock { wire in
            var hops = CircularBuffer<Hop>()
            if let hop = first(&wire) { hops.append(hop) }
            while let hop = hops.popFirst() {
                guard !wire.closed else { return }
                switch hop {
                case .toServer(let frame): serverReceived(Self.onTheWire(frame), &wire, &hops)
                case .toClient(let frame): clientReceived(Self.onTheWire(frame), &wire, &hops)
                case .closeSocket: closeSocket(&wire)
                }
            }
        }
    }

    private func serverReceived(_ frame: WebSocketInboundFrame, _ wire: inout Wire, _ hops: inout CircularBuffer<Hop>) {
        guard var server = wire.server else { return }
        let action = server.received(frame, now: clock.deadline)
        wire.server = server
        switch action {
        case .none:
            break
        case .deliver(let message):
            if mailbox.deliver(message) { wire.readingPaused = true }
        case .sendPong(let payload):
            hops.append(.toClient(WebSocketFrame(fin: true, opcode: .pong, data: payload)))
        case .fail(let code, let reason):
            mailbox.finish(WebSocketDisconnect(code: code, reason: reason))
            hops.append(.toClient(Self.closeFrame(code, reason)))
            hops.append(.closeSocket)
        case .echoClose(let code, let reason):
            mailbox.finish(WebSocketDisconnect(code: code, reason: reason))
            hops.append(.toClient(Self.closeFrame(code, "")))
            hops.append(.closeSocket)
        case .closeHandshakeDone(let code, let reason):
            mailbox.finish(WebSocketDisconnect(code: code, reason: reason))
            hops.append(.closeSocket)
        }
    }

    private func clientReceived(_ frame: WebSocketInboundFrame, _ wire: inout Wire, _ hops: inout CircularBuffer<Hop>) {
        guard var client = wire.client else { return }
        let action = client.received(frame, now: clock.deadline)
        wire.client = client
        switch action {
        case .none:
            break
        case .deliver(let message):
            toClient.push(.message(message))
        case .sendPong(let payload):
            if respondsToPings { hops.append(.toServer(WebSocketStateMachine.Role.client.frame(.pong, payload))) }
        case .fail(let code, let reason):
            clientSees(WebSocketDisconnect(code: code, reason: reason), &wire)
            hops.append(.toServer(WebSocketStateMachine.Role.client.frame(.connectionClose, Self.closePayload(code, reason))))
        case .echoClose(let code, let reason):
            clientSees(WebSocketDisconnect(code: code, reason: reason), &wire)
            hops.append(.toServer(WebSocketStateMachine.Role.client.frame(.connectionClose, Self.closePayload(code, ""))))
        case .closeHandshakeDone(let code, let reason):
            clientSees(WebSocketDisconnect(code: code, reason: reason), &wire)
        }
    }

    private func clientSees(_ end: WebSocketDisconnect, _ wire: inout Wire) {
        guard !wire.clientSawClose else { return }
        wire.clientSawClose = true
        toClient.push(.close(end))
        for sender in wire.clientSenders.removeAll() { sender.resume(returning: .failure(end)) }
    }

    private func closeSocket(_ wire: inout Wire) {
        guard !wire.closed else { return }
        wire.server?.connectionLost()
        wire.client?.connectionLost()
        let lost = WebSocketDisconnect(code: .abnormalClosure, reason: "connection lost")
        mailbox.finish(lost)
        clientSees(lost, &wire)
        wire.closed = true
        toClient.finish()
        handshake.finish()
        clock.remove(self)
    }

    /// How the session ended, for a client send that comes after it.
    private var ended: WebSocketDisconnect {
        mailbox.end ?? WebSocketDisconnect(code: .abnormalClosure, reason: "connection lost")
    }

    /// A frame as the other end receives it: a client's payload masked with its key.
    private static func onTheWire(_ frame: WebSocketFrame) -> WebSocketInboundFrame {
        var frame = frame
        if let key = frame.maskKey { frame.data.webSocketMask(key) }
        return WebSocketInboundFrame(frame)
    }

    /// A close frame from the server, built by the engine's rules (codes never sent become 1000).
    private static func closeFrame(_ code: WebSocketCloseCode, _ reason: String) -> WebSocketFrame {
        WebSocketFrame(fin: true, opcode: .connectionClose, data: WebSocketCloseFrame.payload(code: code, reason: reason, allocator: ByteBufferAllocator()))
    }

    /// A close payload from the client as the test asked for it: any code, so that a test can see
    /// the server refuse one that must not be sent (1005 alone means no code at all).
    static func closePayload(_ code: WebSocketCloseCode, _ reason: String) -> ByteBuffer {
        guard code != .noStatusReceived else { return ByteBuffer() }
        var buffer = ByteBuffer()
        buffer.writeInteger(code.rawValue)
        buffer.writeString(reason)
        return buffer
    }
}
