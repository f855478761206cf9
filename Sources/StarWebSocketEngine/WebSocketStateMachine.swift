package import NIOCore
package import NIOWebSocket
package import Star

/// The rules of one WebSocket session after the handshake (RFC 6455 §5–7), as a value type that
/// takes events and returns what to do. Every transport drives the same rules: the server's
/// `WebSocketChannelHandler` on an event loop, the in-memory test session, and (in the client
/// role) a WebSocket client.
///
/// It also owns the session's timers as deadlines: the keepalive ping, the ping timeout and the
/// close timeout. A driver passes the current time of its clock (`now`) and calls ``tick(now:)``
/// now and then; nothing here reads a clock, so tests move time by hand.
package struct WebSocketStateMachine {
    /// Which end of the connection this is: it decides which frames must be masked.
    package enum Role: Sendable {
        /// Accepts only masked frames and sends unmasked ones.
        case server
        /// Accepts only unmasked frames and sends masked ones.
        case client
    }

    /// Where the session stands.
    package enum State: Equatable, Sendable {
        /// Messages flow both ways.
        case open
        /// We sent a close frame and wait for the peer's.
        case closeSent
        /// The close handshake is over (or the connection failed): only closing the socket remains.
        case closed
    }

    /// What a received frame asks for.
    package enum FrameAction: Equatable, Sendable {
        case none
        /// Hand a complete message to the app.
        case deliver(WebSocketMessage)
        /// Answer a ping.
        case sendPong(ByteBuffer)
        /// The peer broke the protocol: send this close, end the session with it, close the socket.
        case fail(WebSocketCloseCode, reason: String)
        /// The peer closed first: echo its code, end the session with it, close the socket.
        case echoClose(WebSocketCloseCode, reason: String)
        /// The peer answered our close: end the session with its code and close the socket.
        case closeHandshakeDone(WebSocketCloseCode, reason: String)
    }

    /// What the passing of time asks for (``tick(now:)``).
    package enum TimerAction: Equatable, Sendable {
        case none
        /// Send a keepalive ping whose 8-byte payload is this id.
        case sendPing(UInt64)
        /// The ping went unanswered: send this close (1011), end the session with it, close the socket.
        case fail(WebSocketCloseCode, reason: String)
        /// The peer never answered (or never read) our close frame: close the socket now.
        case closeSocket
    }

    package let role: Role
    package private(set) var state = State.open
    private var assembler: WebSocketMessageAssembler
    /// A ping we sent that has not been answered, by its payload.
    package private(set) var outstandingPing: UInt64?
    private var pingCounter: UInt64 = 0

    private let pingInterval: TimeAmount?
    private let pingTimeout: TimeAmount?
    private let closeTimeout: TimeAmount
    /// When the next keepalive ping is due; `nil` without keepalive.
    private var nextPing: NIODeadline?
    /// When an unanswered ping times out.
    private var pingDeadline: NIODeadline?
    /// When the socket closes even if the peer never answers (or reads) our close frame.
    private var closeDeadline: NIODeadline?

    /// Creates the rules of a session that opened at `now`.
    package init(role: Role = .server, options: WebSocketOptions, deflate: PerMessageDeflate? = nil, now: NIODeadline) {
        self.role = role
        assembler = WebSocketMessageAssembler(maxMessageSize: options.maxMessageSize, deflate: deflate)
        pingInterval = options.pingInterval.map(TimeAmount.init)
        pingTimeout = options.pingTimeout.map(TimeAmount.init)
        closeTimeout = TimeAmount(options.closeTimeout)
        nextPing = pingInterval.map { now + $0 }
    }

    /// The shortest of the session's timers: a driver that polls checks about ten times as often.
    package var shortestTimer: TimeAmount {
        min(closeTimeout, pingInterval ?? closeTimeout, pingTimeout ?? closeTimeout)
    }

    /// Judges a received frame. `now` is read only when the frame makes us send a close (whose
    /// timeout starts then).
    package mutating func received(_ frame: WebSocketInboundFrame, now: @autoclosure () -> NIODeadline) -> FrameAction {
        guard state != .closed else { return .none }
        switch role {
        case .server: guard frame.maskKey != nil else { return fail(.protocolError, "client frames must be masked", now: now()) }
        case .client: guard frame.maskKey == nil else { return fail(.protocolError, "server frames must not be masked", now: now()) }
        }
        guard !frame.rsv2, !frame.rsv3 else { return fail(.protocolError, "reserved bits set without an extension", now: now()) }
        switch frame.opcode {
        case .text, .binary, .continuation:
            let isText: Bool? = frame.opcode == .continuation ? nil : frame.opcode == .text
            do {
                guard let message = try assembler.append(text: isText, fin: frame.fin, compressed: frame.rsv1,
                                                         data: frame.payload, maskKey: frame.maskKey)
                else { return .none }
                return state == .open ? .deliver(message) : .none
            } catch {
                return fail(error.code, error.reason, now: now())
            }
        case _ where frame.rsv1:
            return fail(.protocolError, "RSV1 set on a control frame", now: now())
        case .ping:
            return state == .open ? .sendPong(frame.unmaskedPayload) : .none
        case .pong:
            var payload = frame.unmaskedPayload
            if payload.readableBytes == 8, let id = payload.readInteger(as: UInt64.self), id == outstandingPing {
                outstandingPing = nil
                pingDeadline = nil
            }
            return .none
        case .connectionClose:
            switch WebSocketCloseFrame.parse(frame.unmaskedPayload) {
            case .failure(let failure):
                return fail(failure.code, failure.reason, now: now())
            case .success(let (code, reason)):
                let wasOpen = state == .open
                state = .closed
                guard wasOpen else { return .closeHandshakeDone(code, reason: reason) }
                closeDeadline = now() + closeTimeout  // a peer that does not read would keep our echo waiting
                return .echoClose(code, reason: reason)
            }
        default:
            return fail(.protocolError, "reserved opcode \(frame.opcode)", now: now())
        }
    }

    /// The frame parser refused the bytes (``WebSocketFrameParser``).
    package mutating func decodingFailed(_ error: any Error, now: NIODeadline) -> FrameAction {
        guard state != .closed else { return .none }
        if let error = error as? NIOWebSocketError, case .invalidFrameLength = error {
            return fail(.messageTooBig, "frame larger than the message limit", now: now)
        }
        return fail(.protocolError, "malformed frame", now: now)
    }

    /// The app (or the server) closes; returns whether to send a close frame. The socket is
    /// closed when the peer answers, or by ``tick(now:)`` after the close timeout.
    package mutating func close(now: NIODeadline) -> Bool {
        guard state == .open else { return false }
        state = .closeSent
        closeDeadline = now + closeTimeout
        return true
    }

    /// Checks the timers: the close timeout first, then the ping timeout, then the keepalive ping.
    package mutating func tick(now: NIODeadline) -> TimerAction {
        if let deadline = closeDeadline, deadline <= now {
            closeDeadline = nil
            state = .closed
            return .closeSocket
        }
        if let deadline = pingDeadline, deadline <= now {
            pingDeadline = nil
            if outstandingPing != nil, close(now: now) {
                return .fail(.internalServerError, reason: "keepalive ping timeout")
            }
        }
        if let due = nextPing, due <= now, let interval = pingInterval {
            nextPing = now + interval
            guard state == .open, outstandingPing == nil else { return .none }
            pingCounter &+= 1
            outstandingPing = pingCounter
            pingDeadline = pingTimeout.map { now + $0 }
            return .sendPing(pingCounter)
        }
        return .none
    }

    /// The socket is gone.
    package mutating func connectionLost() {
        state = .closed
        closeDeadline = nil
    }

    private mutating func fail(_ code: WebSocketCloseCode, _ reason: String, now: NIODeadline) -> FrameAction {
        let sendClose = state == .open
        state = .closed
        guard sendClose else { return .closeHandshakeDone(.abnormalClosure, reason: reason) }
        closeDeadline = now + closeTimeout  // the close frame is written, then the socket closes
        return .fail(code, reason: reason)
    }
}

extension WebSocketStateMachine.Role {
    /// The masking key of a frame sent in this role (four bytes in network order): a fresh random
    /// one for a client's (RFC 6455 §5.3), none for a server's.
    package func sendingMaskKey() -> UInt32? {
        switch self {
        case .server: nil
        case .client: UInt32.random(in: .min ... .max)
        }
    }

    /// A frame to send in this role as NIO's `WebSocketFrame` (the in-memory transport's), its
    /// payload not yet masked: a client's carries a fresh random masking key, a server's none.
    package func frame(_ opcode: WebSocketOpcode, _ data: ByteBuffer, fin: Bool = true) -> WebSocketFrame {
        switch self {
        case .server: WebSocketFrame(fin: fin, opcode: opcode, data: data)
        case .client: WebSocketFrame(fin: fin, opcode: opcode, maskKey: .random(), data: data)
        }
    }
}
