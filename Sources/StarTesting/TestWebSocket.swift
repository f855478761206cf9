public import HTTPTypes
import NIOCore
public import Star
import Synchronization

/// What travels over an in-memory WebSocket: a message, or the close that ends it.
enum InMemoryFrame: Sendable {
    case message(WebSocketMessage)
    case close(WebSocketDisconnect)
}

/// The server side of an in-memory WebSocket session: the ``WebSocketTransport`` the app sees
/// when the ``TestClient`` connects.
final class InMemoryWebSocketTransport: WebSocketTransport {
    let toServer = MessageQueue<InMemoryFrame>()
    let toClient = MessageQueue<InMemoryFrame>()
    let handshake = MessageQueue<HTTPFields>()
    private let closed = Mutex<WebSocketDisconnect?>(nil)
    let defaultOptions = WebSocketOptions()

    func accept(headers: HTTPFields, options: WebSocketOptions) async throws {
        handshake.push(headers)
    }

    func receive() async throws -> WebSocketMessage {
        switch try await toServer.next(timeout: nil) {
        case .message(let message): return message
        case .close(let disconnect):
            throw disconnect
        case nil:
            throw closed.withLock { $0 } ?? WebSocketDisconnect(code: .abnormalClosure)
        }
    }

    func send(_ message: WebSocketMessage) async throws {
        if let closed = closed.withLock({ $0 }) { throw closed }
        toClient.push(.message(message))
    }

    func close(code: WebSocketCloseCode, reason: String) async {
        guard markClosed(WebSocketDisconnect(code: code, reason: reason)) else { return }
        toClient.push(.close(WebSocketDisconnect(code: code, reason: reason)))
        toClient.finish()
        toServer.finish()
    }

    /// Called when the client closes: like the server, the transport echoes the close at once;
    /// the app's sends fail from now on, and its next receive (after queued messages) throws.
    func clientClosed(_ disconnect: WebSocketDisconnect) {
        guard markClosed(disconnect) else { return }
        toServer.push(.close(disconnect))
        toServer.finish()
        toClient.push(.close(disconnect))
        toClient.finish()
    }

    @discardableResult
    private func markClosed(_ disconnect: WebSocketDisconnect) -> Bool {
        closed.withLock { closed in
            guard closed == nil else { return false }
            closed = disconnect
            return true
        }
    }
}

/// The client side of an in-memory WebSocket session, from ``TestClient/websocketConnect(_:subprotocols:headers:timeout:)``.
///
/// Every receive takes a timeout (default 5 s) and throws ``TestTimeout`` instead of hanging.
public struct TestWebSocket: Sendable {
    /// The `101` response's header fields (subprotocol and extra fields the handler chose).
    public let responseHeaders: HTTPFields
    /// The default receive timeout.
    public var timeout: Duration
    let transport: InMemoryWebSocketTransport

    /// The subprotocol the server chose, if any.
    public var subprotocol: String? { responseHeaders[.secWebSocketProtocol] }

    /// Sends a message to the handler.
    public func send(_ message: WebSocketMessage) { transport.toServer.push(.message(message)) }
    /// Sends a text message.
    public func send(text: String) { send(.text(text)) }
    /// Sends a binary message.
    public func send(bytes: some Sequence<UInt8>) { send(.binary(ByteBuffer(bytes: bytes))) }
    /// Sends `value` as JSON text.
    public func send(json value: some Encodable) throws {
        send(.text(String(decoding: try JSON.encode(value), as: UTF8.self)))
    }

    /// The next message from the handler; throws ``WebSocketDisconnect`` once the server closed,
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

    /// Closes from the client side: the handler's next receive throws ``WebSocketDisconnect`` with `code`.
    public func close(code: WebSocketCloseCode = .normalClosure, reason: String = "") {
        transport.clientClosed(WebSocketDisconnect(code: code, reason: reason))
    }
}

/// The server denied a WebSocket handshake; `response` is what it answered.
public struct WebSocketDenied: Error, Sendable, CustomStringConvertible {
    /// The denial response.
    public let response: TestResponse
    public var description: String { "WebSocket handshake denied with \(response.status.code): \(response.text)" }
}
