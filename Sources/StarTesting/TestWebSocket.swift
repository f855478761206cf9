public import HTTPTypes
import NIOCore
import NIOWebSocket
public import Star
import StarWebSocketEngine

/// The client side of an in-memory WebSocket session, from ``TestClient/websocketConnect(_:subprotocols:headers:timeout:respondsToPings:)``.
///
/// The session keeps the server's contract, because both ends run the server's WebSocket engine:
/// a message past the app's `maxMessageSize` closes the session with 1009, a close code that must
/// not be sent is refused with 1002, pings are answered (unless the test said otherwise), and
/// ``send(_:)`` suspends while the handler's queue is full. Every receive takes a timeout (default
/// 5 s) and throws ``TestTimeout`` instead of hanging.
public struct TestWebSocket: Sendable {
    /// The `101` response's header fields (subprotocol and extra fields the handler chose).
    public let responseHeaders: HTTPFields
    /// The default receive timeout.
    public var timeout: Duration
    let transport: InMemoryWebSocketSession

    /// The subprotocol the server chose, if any.
    public var subprotocol: String? { responseHeaders[.secWebSocketProtocol] }

    /// Sends a message to the handler; suspends while the handler's queue is full (the server
    /// would stop reading the socket). Throws `WebSocketDisconnect` once the session ended.
    public func send(_ message: WebSocketMessage) async throws {
        let frame = switch message {
        case .text(let text): WebSocketStateMachine.Role.client.frame(.text, ByteBuffer(string: text))
        case .binary(let bytes): WebSocketStateMachine.Role.client.frame(.binary, bytes)
        }
        try await transport.clientSend(frame)
    }
    /// Sends a text message.
    public func send(text: String) async throws { try await send(.text(text)) }
    /// Sends a binary message.
    public func send(bytes: some Sequence<UInt8>) async throws { try await send(.binary(ByteBuffer(bytes: bytes))) }
    /// Sends `value` as JSON text.
    public func send(json value: some Encodable) async throws {
        try await send(.text(String(decoding: try JSON.encode(value), as: UTF8.self)))
    }

    /// The next message from the handler; throws `WebSocketDisconnect` once the server closed,
    /// and ``TestTimeout`` when nothing arrives in time.
    public func receive(timeout: Duration? = nil) async throws -> WebSocketMessage {
        switch try await transport.toClient.next(timeout: timeout ?? self.timeout) {
        case .message(let message): return message
        case .close(let disconnect): throw disconnect
        case nil: throw WebSocketDisconnect(code: .abnormalClosure, reason: "session ended")
        }
    }

    /// The next message, which must be text.
    public func receiveText(timeout: Duration? = nil) async throws -> String {
        guard case .text(let text) = try await receive(timeout: timeout) else { throw TestWebSocketError.expectedText }
        return text
    }

    /// The next message, which must be binary.
    public func receiveBytes(timeout: Duration? = nil) async throws -> [UInt8] {
        guard case .binary(let bytes) = try await receive(timeout: timeout) else { throw TestWebSocketError.expectedBinary }
        return Array(bytes.readableBytesView)
    }

    /// The next message decoded from JSON.
    public func receiveJSON<T: Decodable>(as type: T.Type = T.self, timeout: Duration? = nil) async throws -> T {
        switch try await receive(timeout: timeout) {
        case .text(let text): return try JSON.decode(T.self, from: Array(text.utf8))
        case .binary(let bytes): return try JSON.decode(T.self, from: bytes.readableBytesView)
        }
    }

    /// Waits for the server's close and returns it (skipping messages); throws ``TestTimeout``.
    public func waitForClose(timeout: Duration? = nil) async throws -> WebSocketDisconnect {
        while true {
            do { _ = try await receive(timeout: timeout) } catch let disconnect as WebSocketDisconnect { return disconnect }
        }
    }

    /// Closes from the client side: the handler's next receive throws `WebSocketDisconnect` with
    /// `code`, and the server answers the close. A code that must never be sent (1006, 999, …) is
    /// sent as asked, and the server refuses it with 1002 as it would on a socket.
    public func close(code: WebSocketCloseCode = .normalClosure, reason: String = "") async {
        let frame = WebSocketStateMachine.Role.client.frame(.connectionClose, InMemoryWebSocketSession.closePayload(code, reason))
        try? await transport.clientSend(frame)
    }
}

/// The server denied a WebSocket handshake; `response` is what it answered.
public struct WebSocketDenied: Error, Sendable, CustomStringConvertible {
    /// The denial response.
    public let response: TestResponse
    public var description: String { "WebSocket handshake denied with \(response.status.code): \(response.text)" }
}
