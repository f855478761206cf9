public import Star

/// One message published on a channel, as a subscriber receives it.
public struct BroadcastEvent: Sendable, Equatable {
    /// The channel it was published on.
    public var channel: String
    /// The message: text, or binary bytes. Send it to a WebSocket as is with `ws.send(event.message)`.
    public var message: WebSocketMessage

    /// Creates an event.
    public init(channel: String, message: WebSocketMessage) {
        self.channel = channel
        self.message = message
    }
}

/// Why a broadcast could not be made or a publish failed.
///
/// Match the ``kind``; ``description`` adds the reason:
///
/// ```swift
/// do {
///     try await broadcast.publish(room, message)
/// } catch let error as BroadcastError where error.kind == .unavailable {
///     try await ws.send(json: ["error": error.description])   // PostgreSQL is down: tell the client
/// }
/// ```
///
/// Two errors are equal when their kind and reason are; compare ``kind`` to match a case whatever its
/// reason. New kinds may be added: a `switch` over kinds needs a `default`.
public struct BroadcastError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What went wrong, without the details: compare it with `==`.
    public struct Kind: Sendable, Hashable, CustomStringConvertible {
        private enum Base: String, Sendable, Hashable {
            case invalidURL, unavailable
        }
        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// The URL is not `memory://` or `postgres://user:password@host:port/database`.
        public static let invalidURL = Kind(.invalidURL)
        /// The backend cannot be reached (for example PostgreSQL is down); nothing was published.
        public static let unavailable = Kind(.unavailable)

        /// The kind's name, as in `BroadcastError.Kind.unavailable`.
        public var description: String { base.rawValue }

        fileprivate var summary: String {
            switch base {
            case .invalidURL: "invalid broadcast URL"
            case .unavailable: "broadcast backend unavailable"
            }
        }
    }

    /// What went wrong.
    public let kind: Kind
    /// Why, in a few words (``description`` puts the kind before them).
    public let reason: String

    private init(_ kind: Kind, reason: String) {
        self.kind = kind
        self.reason = reason
    }

    /// The URL cannot be used; `reason` says why (and quotes the URL).
    public static func invalidURL(_ reason: String) -> BroadcastError { BroadcastError(.invalidURL, reason: reason) }

    /// The backend cannot be reached (for example PostgreSQL is down); the message was not published.
    public static func unavailable(_ reason: String) -> BroadcastError { BroadcastError(.unavailable, reason: reason) }

    /// One line for logs and clients, such as `broadcast backend unavailable: PostgreSQL is unreachable`.
    public var description: String { "\(kind.summary): \(reason)" }
}
