import NIOCore
import NIOWebSocket
import Star

/// The rules of one WebSocket session after the handshake (RFC 6455 §5–7), as a value type that
/// takes events and returns what to do; ``WebSocketChannelHandler`` carries the actions out.
struct WebSocketStateMachine {
    enum State: Equatable {
        /// Messages flow both ways.
        case open
        /// We sent a close frame and wait for the peer's.
        case closeSent
        /// The close handshake is over (or the connection failed): only closing the socket remains.
        case closed
    }

    /// What a received frame asks for.
    enum FrameAction: Equatable {
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

    private(set) var state = State.open
    private var assembler: WebSocketMessageAssembler
    /// A ping we sent that has not been answered, by its payload.
    private(set) var outstandingPing: UInt64?

    init(maxMessageSize: Int, deflate: PerMessageDeflate? = nil) {
        assembler = WebSocketMessageAssembler(maxMessageSize: maxMessageSize, deflate: deflate)
    }

    mutating func received(_ frame: WebSocketFrame) -> FrameAction {
        guard state != .closed else { return .none }
        guard frame.maskKey != nil else { return fail(.protocolError, "client frames must be masked") }
        guard !frame.rsv2, !frame.rsv3 else { return fail(.protocolError, "reserved bits set without an extension") }
        let data = frame.unmaskedPayload
        switch frame.opcode {
        case .text, .binary, .continuation:
            let isText: Bool? = frame.opcode == .continuation ? nil : frame.opcode == .text
            do {
                guard let message = try assembler.append(text: isText, fin: frame.fin, compressed: frame.rsv1, data: data)
                else { return .none }
                return state == .open ? .deliver(message) : .none
            } catch {
                return fail(error.code, error.reason)
            }
        case _ where frame.rsv1:
            return fail(.protocolError, "RSV1 set on a control frame")
        case .ping:
            return state == .open ? .sendPong(data) : .none
        case .pong:
            var payload = data
            if payload.readableBytes == 8, let id = payload.readInteger(as: UInt64.self), id == outstandingPing {
                outstandingPing = nil
            }
            return .none
        case .connectionClose:
            switch WebSocketCloseFrame.parse(data) {
            case .failure(let failure):
                return fail(failure.code, failure.reason)
            case .success(let (code, reason)):
                let wasOpen = state == .open
                state = .closed
                return wasOpen ? .echoClose(code, reason: reason) : .closeHandshakeDone(code, reason: reason)
            }
        default:
            return fail(.protocolError, "reserved opcode \(frame.opcode)")
        }
    }

    /// The frame decoder refused the bytes.
    mutating func decodingFailed(_ error: any Error) -> FrameAction {
        guard state != .closed else { return .none }
        if let error = error as? NIOWebSocketError, case .invalidFrameLength = error {
            return fail(.messageTooBig, "frame larger than the message limit")
        }
        return fail(.protocolError, "malformed frame")
    }

    /// The app (or the server) closes; returns whether to send a close frame.
    mutating func close() -> Bool {
        guard state == .open else { return false }
        state = .closeSent
        return true
    }

    /// A ping is due; returns its payload id, or `nil` when none should be sent.
    mutating func pingDue(id: UInt64) -> UInt64? {
        guard state == .open, outstandingPing == nil else { return nil }
        outstandingPing = id
        return id
    }

    /// The socket is gone.
    mutating func connectionLost() { state = .closed }

    private mutating func fail(_ code: WebSocketCloseCode, _ reason: String) -> FrameAction {
        let sendClose = state == .open
        state = .closed
        return sendClose ? .fail(code, reason: reason) : .closeHandshakeDone(.abnormalClosure, reason: reason)
    }
}
