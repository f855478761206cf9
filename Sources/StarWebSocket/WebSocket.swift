public import Star
import Synchronization

/// A WebSocket session as a handler sees it: declare a parameter of this type and the route
/// becomes a WebSocket route.
///
/// ```swift
/// func chat(path: PathParams, ws: WebSocket) async throws {
///     try await ws.connect()
///     for try await message in ws.messages { try await ws.send(message) }
/// }
/// ```
///
/// Until ``connect(subprotocol:headers:compression:)`` the handshake is open: the handler can read
/// ``request`` and ``subprotocols`` and ``deny(_:)`` it. When the handler ends, Star closes the
/// session (1000, or 1011 if it threw); a handler that never connects denies with 403.
/// One `WebSocket` exists per connection, shared by hooks and the handler. Sends from several
/// tasks are safe and ordered; one task may receive while others send.
public final class WebSocket: Sendable, WebSocketComponentType, Component {
    /// Where the session stands.
    public enum State: Sendable, Equatable {
        /// The handshake has not been answered.
        case connecting
        /// `101` was sent; messages flow.
        case connected
        /// The handshake was denied.
        case denied
        /// The session closed (by either side, or the connection dropped).
        case closed
    }

    /// The handshake request.
    public let request: Request
    /// The options the session runs with.
    public let options: WebSocketOptions
    private let handshake: WebSocketHandshake
    private let closedState = Mutex(false)

    init(handshake: WebSocketHandshake, request: Request, options: WebSocketOptions) {
        self.handshake = handshake
        self.request = request
        self.options = options
    }

    /// The session for this request with default options; ``WebSocketComponent`` sets others.
    public static func resolve(in context: RequestContext) async throws -> WebSocket {
        try WebSocketComponent().resolve(in: context)
    }

    /// The subprotocols the client offered, in its order of preference.
    public var subprotocols: [String] { handshake.offeredSubprotocols }

    /// The current state.
    public var state: State {
        if closedState.withLock({ $0 }) { return .closed }
        switch handshake.current {
        case .pending, .accepting: return .connecting
        case .denied: return .denied
        case .accepted: return .connected
        }
    }

    /// Accepts the handshake: sends `101` with `subprotocol` (one the client offered) and `headers`.
    ///
    /// - Parameters:
    ///   - subprotocol: The subprotocol to answer with; it must be one of ``subprotocols``.
    ///   - headers: Extra header fields for the `101` response.
    ///   - compression: Whether to negotiate permessage-deflate for this session when the
    ///   client offers it; `nil` keeps ``options`` (``WebSocketComponent/compression``, else
    ///   `--ws-per-message-deflate`). Pass `false` on a route whose messages do not compress
    ///   (already-compressed media, tiny messages) to save the zlib memory and CPU.
    public func connect(subprotocol: String? = nil, headers: HTTPFields = [:], compression: Bool? = nil) async throws {
        var options = self.options
        if let compression { options.perMessageDeflate = compression }
        try await handshake.accept(subprotocol: subprotocol, headers: headers, options: options)
    }

    /// Denies the handshake with `response` (403 by default), sent when the handler returns.
    public func deny(_ response: Response = HTTPError(.forbidden, detail: "WebSocket connection denied").response) throws {
        try handshake.deny(response)
    }

    /// The next message. Throws `WebSocketDisconnect` once the peer closed or the connection dropped.
    public nonisolated(nonsending) func receive() async throws -> WebSocketMessage {
        try requireConnected()
        do {
            return try await handshake.transport.receive()
        } catch {
            throw noted(error)
        }
    }

    /// The next message; the name the seed's README uses for ``receive()``.
    public func recv() async throws -> WebSocketMessage { try await receive() }

    /// The next message, which must be text.
    public func receiveText() async throws -> String {
        switch try await receive() {
        case .text(let text): return text
        case .binary: throw WebSocketMessageError.expectedText
        }
    }

    /// The next message, which must be binary.
    public func receiveBytes() async throws -> ByteBuffer {
        switch try await receive() {
        case .binary(let bytes): return bytes
        case .text: throw WebSocketMessageError.expectedBinary
        }
    }

    /// The next message decoded from JSON (text or binary).
    public func receiveJSON<T: Decodable>(as type: T.Type = T.self) async throws -> T {
        switch try await receive() {
        case .text(let text): return try JSON.decode(T.self, from: Array(text.utf8))
        case .binary(let bytes): return try JSON.decode(T.self, from: bytes.readableBytesView)
        }
    }

    /// Sends a message; suspends while the peer is not reading. Throws `WebSocketDisconnect`
    /// after the session closed.
    ///
    /// On Star's server, with handlers on the connection's event loop (the default), messages sent
    /// one after another without waiting in between go out together, in one write to the socket,
    /// when the handler next waits for something or returns.
    public nonisolated(nonsending) func send(_ message: WebSocketMessage) async throws {
        try requireConnected()
        do {
            try await handshake.transport.send(message)
        } catch {
            throw noted(error)
        }
    }

    /// Sends a text message.
    public func send(text: String) async throws { try await send(.text(text)) }

    /// Sends a binary message.
    public func send(bytes: some Sequence<UInt8>) async throws { try await send(.binary(ByteBuffer(bytes: bytes))) }

    /// Sends a binary message.
    public func send(bytes: ByteBuffer) async throws { try await send(.binary(bytes)) }

    /// Sends `value` encoded as JSON in a text message.
    public func send(json value: some Encodable) async throws {
        try await send(.text(String(decoding: try JSON.encode(value), as: UTF8.self)))
    }

    /// The received messages, ending without error when the peer closes.
    public var messages: Messages { Messages(socket: self) }

    /// Closes the session with `code` and `reason` and waits for the close handshake; does
    /// nothing if it is already closed or was never accepted.
    public func close(code: WebSocketCloseCode = .normalClosure, reason: String = "") async {
        guard handshake.isAccepted, closedState.withLock({ closed in defer { closed = true }; return !closed }) else { return }
        await handshake.transport.close(code: code, reason: reason)
    }

    /// Notes that the session closed when `error` is a ``WebSocketDisconnect``, and returns `error`.
    /// Never inlined: a caught disconnect would otherwise take room in `receive()`'s async frame,
    /// which an idle session keeps.
    @inline(never)
    private func noted(_ error: any Error) -> any Error {
        if error is WebSocketDisconnect { closedState.withLock { $0 = true } }
        return error
    }

    private func requireConnected() throws {
        guard handshake.isAccepted else { throw WebSocketMessageError.notConnected }
    }

    /// The messages of a session as an `AsyncSequence`; iteration ends when the peer closes.
    public struct Messages: AsyncSequence, Sendable {
        public typealias Element = WebSocketMessage
        let socket: WebSocket

        public func makeAsyncIterator() -> Iterator { Iterator(socket: socket) }

        /// Iterates over received messages.
        public struct Iterator: AsyncIteratorProtocol {
            let socket: WebSocket
            public mutating func next() async throws -> WebSocketMessage? {
                try await next(isolation: nil)
            }

            /// The next message, on the caller's executor (what `for try await` calls).
            public mutating func next(isolation actor: isolated (any Actor)?) async throws(any Error) -> WebSocketMessage? {
                do { return try await socket.receive() } catch is WebSocketDisconnect { return nil }
            }
        }
    }
}

/// A message call that does not fit the session: receiving before `connect()`, or a text
/// message where binary was expected (and the reverse).
///
/// Compare the error, or its ``kind``, with a static member:
///
/// ```swift
/// do {
///     let text = try await ws.receiveText()
/// } catch let error as WebSocketMessageError where error == .expectedText {
///     await ws.close(code: .unsupportedData)
/// }
/// ```
///
/// New kinds may be added: a `switch` over kinds needs a `default`.
public struct WebSocketMessageError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What went wrong: compare it with `==`.
    public struct Kind: Sendable, Hashable, CustomStringConvertible {
        private enum Base: String, Sendable, Hashable {
            case notConnected, expectedText, expectedBinary
        }
        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// `receive` or `send` before the handshake was accepted.
        public static let notConnected = Kind(.notConnected)
        /// `receiveText()` got a binary message.
        public static let expectedText = Kind(.expectedText)
        /// `receiveBytes()` got a text message.
        public static let expectedBinary = Kind(.expectedBinary)

        /// The kind's name, as in `WebSocketMessageError.Kind.expectedText`.
        public var description: String { base.rawValue }

        fileprivate var message: String {
            switch base {
            case .notConnected: "the WebSocket is not connected: call connect() first"
            case .expectedText: "expected a text message, received binary"
            case .expectedBinary: "expected a binary message, received text"
            }
        }
    }

    /// What went wrong.
    public let kind: Kind
    private init(_ kind: Kind) { self.kind = kind }

    /// `receive` or `send` before the handshake was accepted.
    public static let notConnected = WebSocketMessageError(.notConnected)
    /// `receiveText()` got a binary message.
    public static let expectedText = WebSocketMessageError(.expectedText)
    /// `receiveBytes()` got a text message.
    public static let expectedBinary = WebSocketMessageError(.expectedBinary)

    /// One line saying what went wrong.
    public var description: String { kind.message }
}
