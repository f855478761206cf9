package import HTTPTypes
import Synchronization

/// The state of one WebSocket handshake that a handler may accept or deny, shared by the
/// WebSocket component and the app (which answers a denied or never-accepted handshake).
package final class WebSocketHandshake: Sendable {
    /// Where the handshake stands.
    package enum State: Sendable {
        /// Neither accepted nor denied yet.
        case pending
        /// `connect()` is switching the connection to WebSocket; messages cannot flow yet.
        case accepting
        /// A denial response was chosen; it is sent when the handler finishes.
        case denied(Response)
        /// `101` was sent: no HTTP response will follow.
        case accepted
    }

    /// The transport that carries the session.
    package let transport: any WebSocketTransport
    /// The subprotocols the client offered (`Sec-WebSocket-Protocol`), in its order.
    package let offeredSubprotocols: [String]
    private let state = Mutex<State>(.pending)

    /// Creates a handshake over a transport for a request.
    package init(transport: any WebSocketTransport, request: Request) {
        self.transport = transport
        self.offeredSubprotocols = request.headers[values: .secWebSocketProtocol]
            .flatMap { $0.split(separator: ",") }
            .map { String($0.trimmingSpaces) }
            .filter { !$0.isEmpty }
    }

    /// The current state.
    package var current: State { state.withLock { $0 } }

    /// Whether `101` was sent.
    package var isAccepted: Bool { if case .accepted = current { true } else { false } }

    /// Accepts the handshake; throws ``WebSocketHandshakeError`` when it was already decided or
    /// the subprotocol was not offered.
    package func accept(subprotocol: String?, headers: HTTPFields, options: WebSocketOptions) async throws {
        if let subprotocol, !offeredSubprotocols.contains(subprotocol) {
            throw WebSocketHandshakeError.subprotocolNotOffered(subprotocol, offered: offeredSubprotocols)
        }
        try state.withLock { state in
            guard case .pending = state else { throw WebSocketHandshakeError.alreadyDecided(state) }
            state = .accepting
        }
        var fields = headers
        if let subprotocol { fields[.secWebSocketProtocol] = subprotocol }
        do {
            try await transport.accept(headers: fields, options: options)
        } catch {
            state.withLock { $0 = .pending }
            throw error
        }
        state.withLock { $0 = .accepted }
    }

    /// Chooses the response that denies the handshake; throws if it was already accepted.
    package func deny(_ response: Response) throws {
        try state.withLock { state in
            guard case .pending = state else { throw WebSocketHandshakeError.alreadyDecided(state) }
            state = .denied(response)
        }
    }
}

extension WebSocketHandshake.State {
    fileprivate var word: String {
        switch self {
        case .pending: "pending"
        case .accepting: "being accepted"
        case .denied: "denied"
        case .accepted: "accepted"
        }
    }
}

/// A handshake call that cannot be honoured: accepting twice, denying after accepting, or a
/// subprotocol the client did not offer.
///
/// Match the ``kind``:
///
/// ```swift
/// do {
///     try await ws.connect(subprotocol: "chat")
/// } catch let error as WebSocketHandshakeError where error.kind == .subprotocolNotOffered {
///     try await ws.connect()
/// }
/// ```
///
/// Two errors are equal when every property is; compare ``kind`` to match a case whatever its data.
/// New kinds may be added: a `switch` over kinds needs a `default`.
public struct WebSocketHandshakeError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What went wrong, without the details: compare it with `==`.
    public struct Kind: Sendable, Hashable, CustomStringConvertible {
        private enum Base: String, Sendable, Hashable {
            case subprotocolNotOffered, alreadyDecided
        }
        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// `connect(subprotocol:)` named a subprotocol the client did not offer.
        public static let subprotocolNotOffered = Kind(.subprotocolNotOffered)
        /// The handshake was already accepted, being accepted, or denied.
        public static let alreadyDecided = Kind(.alreadyDecided)

        /// The kind's name, as in `WebSocketHandshakeError.Kind.alreadyDecided`.
        public var description: String { base.rawValue }
    }

    /// What went wrong.
    public let kind: Kind
    /// The subprotocol that was refused (``Kind/subprotocolNotOffered``), else `nil`.
    public let subprotocol: String?
    /// One line saying what went wrong.
    public let description: String

    private init(_ kind: Kind, subprotocol: String? = nil, _ description: String) {
        self.kind = kind
        self.subprotocol = subprotocol
        self.description = description
    }

    /// The handler chose `subprotocol`, which is not among those the client `offered`.
    package static func subprotocolNotOffered(_ subprotocol: String, offered: [String]) -> WebSocketHandshakeError {
        WebSocketHandshakeError(.subprotocolNotOffered, subprotocol: subprotocol,
                                "subprotocol '\(subprotocol)' was not offered by the client (offered: \(offered))")
    }

    /// The handshake was no longer pending: `state` is where it stood.
    package static func alreadyDecided(_ state: WebSocketHandshake.State) -> WebSocketHandshakeError {
        WebSocketHandshakeError(.alreadyDecided, "the handshake was already \(state.word)")
    }
}
