public import HTTPTypes
public import NIOCore

/// One WebSocket message: text or binary. Empty messages are ordinary messages.
public enum WebSocketMessage: Sendable, Equatable {
    /// A text message (valid UTF-8, checked by the transport).
    case text(String)
    /// A binary message.
    case binary(ByteBuffer)
}

/// A WebSocket close code (RFC 6455 §7.4), with the registered codes as constants.
public struct WebSocketCloseCode: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }
    /// Creates a code from its number.
    public init(_ code: UInt16) { self.rawValue = code }

    /// 1000: the purpose of the connection was fulfilled.
    public static let normalClosure = Self(1000)
    /// 1001: the server is going down or the browser navigated away.
    public static let goingAway = Self(1001)
    /// 1002: the peer broke the protocol.
    public static let protocolError = Self(1002)
    /// 1003: a message of a type the endpoint cannot accept.
    public static let unsupportedData = Self(1003)
    /// 1005: no status code was present (never sent on the wire).
    public static let noStatusReceived = Self(1005)
    /// 1006: the connection was lost without a close frame (never sent on the wire).
    public static let abnormalClosure = Self(1006)
    /// 1007: a text message was not valid UTF-8.
    public static let invalidFramePayloadData = Self(1007)
    /// 1008: a message violated the endpoint's policy.
    public static let policyViolation = Self(1008)
    /// 1009: a message was too big to process.
    public static let messageTooBig = Self(1009)
    /// 1010: the client expected an extension the server did not negotiate.
    public static let mandatoryExtension = Self(1010)
    /// 1011: the server met an unexpected condition.
    public static let internalServerError = Self(1011)
    /// 1012: the server is restarting.
    public static let serviceRestart = Self(1012)
    /// 1013: try again later.
    public static let tryAgainLater = Self(1013)
    /// 1014: a gateway received an invalid response.
    public static let badGateway = Self(1014)
    /// 1015: the TLS handshake failed (never sent on the wire).
    public static let tlsHandshake = Self(1015)

    /// Whether a peer may send this code in a close frame (RFC 6455 §7.4.1, 7.4.2).
    public var isValidOnWire: Bool {
        switch rawValue {
        case 1000...1003, 1007...1014: true
        case 3000...4999: true
        default: false
        }
    }

    public var description: String { "\(rawValue)" }
}

/// The peer closed the WebSocket or the connection was lost.
///
/// `receive()` throws it, and `send` throws it once the session has closed. `code` is
/// ``WebSocketCloseCode/noStatusReceived`` (1005) when the peer sent no code and
/// ``WebSocketCloseCode/abnormalClosure`` (1006) when the connection dropped.
public struct WebSocketDisconnect: Error, Sendable, Equatable, CustomStringConvertible {
    /// The close code.
    public let code: WebSocketCloseCode
    /// The close reason, possibly empty.
    public let reason: String

    /// Creates a disconnect.
    public init(code: WebSocketCloseCode, reason: String = "") {
        self.code = code
        self.reason = reason
    }

    public var description: String { "WebSocketDisconnect(code: \(code), reason: \"\(reason)\")" }
}

/// The server side of one WebSocket session, as a transport (the NIO server or the in-memory
/// test client) provides it. The protocol work — frames, fragmentation, UTF-8, control
/// frames, the close handshake — is the transport's; this interface speaks in messages.
///
/// Every method may be called from several tasks at once; sends are delivered in call order.
public protocol WebSocketTransport: Sendable {
    /// The server's WebSocket settings, which a `WebSocketComponent` may override per app.
    var defaultOptions: WebSocketOptions { get }
    /// Answers the handshake with `101 Switching Protocols` and extra header fields (the chosen
    /// `Sec-WebSocket-Protocol` among them) and starts the session with `options`; the transport
    /// adds the protocol's own fields.
    func accept(headers: HTTPFields, options: WebSocketOptions) async throws
    /// The next message; throws ``WebSocketDisconnect`` once the peer closed or the connection dropped.
    nonisolated(nonsending) func receive() async throws -> WebSocketMessage
    /// Sends a message, suspending while the outbound buffer is full; throws
    /// ``WebSocketDisconnect`` after the session closed.
    nonisolated(nonsending) func send(_ message: WebSocketMessage) async throws
    /// Starts the close handshake (idempotent) and waits until it completes or times out.
    func close(code: WebSocketCloseCode, reason: String) async
}
