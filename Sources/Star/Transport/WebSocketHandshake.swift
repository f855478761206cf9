public import HTTPTypes
import Synchronization

/// The state of one WebSocket handshake that a handler may accept or deny, shared by the
/// WebSocket component and the app (which answers a denied or never-accepted handshake).
public final class WebSocketHandshake: Sendable {
    /// Where the handshake stands.
    public enum State: Sendable {
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
    public let transport: any WebSocketTransport
    /// The subprotocols the client offered (`Sec-WebSocket-Protocol`), in its order.
    public let offeredSubprotocols: [String]
    private let state = Mutex<State>(.pending)

    /// Creates a handshake over a transport for a request.
    public init(transport: any WebSocketTransport, request: Request) {
        self.transport = transport
        self.offeredSubprotocols = request.headers[values: .secWebSocketProtocol]
            .flatMap { $0.split(separator: ",") }
            .map { String($0.trimmingSpaces) }
            .filter { !$0.isEmpty }
    }

    /// The current state.
    public var current: State { state.withLock { $0 } }

    /// Whether `101` was sent.
    public var isAccepted: Bool { if case .accepted = current { true } else { false } }

    /// Accepts the handshake; throws ``WebSocketHandshakeError`` when it was already decided or
    /// the subprotocol was not offered.
    public func accept(subprotocol: String?, headers: HTTPFields, options: WebSocketOptions) async throws {
        if let subprotocol, !offeredSubprotocols.contains(subprotocol) {
            throw WebSocketHandshakeError("subprotocol '\(subprotocol)' was not offered by the client (offered: \(offeredSubprotocols))")
        }
        try state.withLock { state in
            guard case .pending = state else { throw WebSocketHandshakeError("the handshake was already \(state.word)") }
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
    public func deny(_ response: Response) throws {
        try state.withLock { state in
            guard case .pending = state else { throw WebSocketHandshakeError("the handshake was already \(state.word)") }
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
public struct WebSocketHandshakeError: Error, Sendable, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}
