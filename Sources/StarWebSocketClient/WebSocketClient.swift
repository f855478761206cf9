public import HTTPTypes
public import NIOCore
public import Star
import StarWebSocket
import StarWebSocketEngine

/// A WebSocket client connection, with the server's `WebSocket` API: `send(text:)`,
/// `send(bytes:)`, `send(json:)`, `receive()`, `receiveText()`, `messages`,
/// `close(code:reason:)`, and the same `WebSocketDisconnect` when the peer closes.
///
/// ```swift
/// try await WebSocketClient.connect(to: "ws://localhost:8080/echo") { ws in
///     try await ws.send(text: "hello")
///     print(try await ws.receiveText())
/// }   // closed with 1000 when the closure returns, 1011 when it throws
/// ```
///
/// The connection answers pings, sends keepalive pings, enforces the message size limit and
/// completes the close handshake on its own, whether or not a task is receiving: the protocol
/// runs in Star's WebSocket engine, the server's, in the client role (every frame sent is masked
/// with a fresh random key; a masked frame from the server fails the connection with 1002).
/// Sends from several tasks are safe and ordered; one task may receive while others send.
public final class WebSocketClient: Sendable {
    /// The subprotocol the server chose among those offered, or `nil`.
    public let subprotocol: String?
    /// The header fields of the server's `101 Switching Protocols`.
    public let responseHeaders: HTTPFields
    /// Whether permessage-deflate was negotiated: messages of 256 bytes and more are compressed.
    public let isCompressed: Bool
    let session: WebSocketClientSession

    init(channel: any Channel, configuration: WebSocketClientConfiguration, subprotocol: String?, responseHeaders: HTTPFields,
         agreement: PerMessageDeflate.Agreement?) {
        self.subprotocol = subprotocol
        self.responseHeaders = responseHeaders
        self.isCompressed = agreement != nil
        session = WebSocketClientSession(channel: channel, maxQueue: configuration.options.maxQueue)
    }

    /// A connection nobody holds any more (a reconnecting loop left with `break`) closes with 1001.
    deinit {
        session.startClose(code: .goingAway, reason: "")
    }

    /// Connects to a WebSocket server, runs `body` with the connection, and closes it when `body`
    /// returns (1000) or throws (1011); returns what `body` returns.
    ///
    /// Throws `WebSocketClientError` when the connection cannot be opened: an invalid URL, `wss://`
    /// without Star's `TLS` trait, a timeout, or a handshake the server denied (with its status,
    /// header fields and body).
    ///
    /// - Parameters:
    ///   - url: A `ws://` or `wss://` URL.
    ///   - configuration: Subprotocols, header fields, timeouts, TLS and the session's options.
    ///   - isolation: The caller's actor, on which `body` runs (leave the default).
    ///   - body: The work to do with the open connection.
    public static func connect<Result>(
        to url: String,
        configuration: WebSocketClientConfiguration = WebSocketClientConfiguration(),
        isolation: isolated (any Actor)? = #isolation,
        _ body: (WebSocketClient) async throws -> Result
    ) async throws -> Result {
        let client = try await open(url, configuration: configuration)
        let result: Result
        do {
            result = try await body(client)
        } catch {
            await client.close(code: .internalServerError)
            throw error
        }
        await client.close()
        return result
    }

    /// The next message. Throws `WebSocketDisconnect` once the server closed or the connection dropped.
    public func receive() async throws -> WebSocketMessage {
        try await session.receive()
    }

    /// The next message, which must be text; throws `WebSocketMessageError.expectedText` for a binary one.
    public func receiveText() async throws -> String {
        switch try await receive() {
        case .text(let text): return text
        case .binary: throw WebSocketMessageError.expectedText
        }
    }

    /// The next message, which must be binary; throws `WebSocketMessageError.expectedBinary` for a text one.
    public func receiveBytes() async throws -> ByteBuffer {
        switch try await receive() {
        case .binary(let bytes): return bytes
        case .text: throw WebSocketMessageError.expectedBinary
        }
    }

    /// The next message decoded from JSON (text or binary).
    ///
    /// - Parameter type: The type to decode.
    public func receiveJSON<T: Decodable>(as type: T.Type = T.self) async throws -> T {
        switch try await receive() {
        case .text(let text): return try JSON.decode(T.self, from: Array(text.utf8))
        case .binary(let bytes): return try JSON.decode(T.self, from: bytes.readableBytesView)
        }
    }

    /// Sends a message; suspends while the server is not reading. Throws `WebSocketDisconnect`
    /// after the connection closed.
    ///
    /// - Parameter message: The message to send.
    public func send(_ message: WebSocketMessage) async throws {
        try await session.send(message)
    }

    /// Sends a text message.
    ///
    /// - Parameter text: The message.
    public func send(text: String) async throws { try await send(.text(text)) }

    /// Sends a binary message.
    ///
    /// - Parameter bytes: The message's bytes.
    public func send(bytes: some Sequence<UInt8>) async throws { try await send(.binary(ByteBuffer(bytes: bytes))) }

    /// Sends a binary message.
    ///
    /// - Parameter bytes: The message's bytes.
    public func send(bytes: ByteBuffer) async throws { try await send(.binary(bytes)) }

    /// Sends `value` encoded as JSON in a text message.
    ///
    /// - Parameter value: The value to encode.
    public func send(json value: some Encodable) async throws {
        try await send(.text(String(decoding: try JSON.encode(value), as: UTF8.self)))
    }

    /// The received messages, ending without error when the server closes.
    public var messages: Messages { Messages(client: self) }

    /// How the connection ended, once it has: the server's close code and reason, ours, or 1006
    /// when it dropped.
    public var disconnect: WebSocketDisconnect? { session.mailbox.end }

    /// Closes the connection with `code` and `reason` and waits for the close handshake (at most
    /// the close timeout); does nothing more if it is already closed.
    ///
    /// - Parameters:
    ///   - code: The close code to send.
    ///   - reason: The close reason to send (at most 123 bytes of UTF-8).
    public func close(code: WebSocketCloseCode = .normalClosure, reason: String = "") async {
        await session.close(code: code, reason: reason)
    }

    /// The messages of a connection as an `AsyncSequence`; iteration ends when the server closes.
    public struct Messages: AsyncSequence, Sendable {
        /// A received message.
        public typealias Element = WebSocketMessage
        let client: WebSocketClient

        /// Makes the iterator.
        public func makeAsyncIterator() -> Iterator { Iterator(client: client) }

        /// Iterates over received messages.
        public struct Iterator: AsyncIteratorProtocol {
            let client: WebSocketClient

            /// The next message, or `nil` once the server closed or the connection dropped.
            public mutating func next() async throws -> WebSocketMessage? {
                do { return try await client.receive() } catch is WebSocketDisconnect { return nil }
            }
        }
    }
}
