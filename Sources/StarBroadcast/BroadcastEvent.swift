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

/// Why a publish or subscribe failed.
public struct BroadcastError: Error, Sendable, Equatable, CustomStringConvertible {
    public let description: String

    /// Creates an error with a message for logs and clients.
    public init(_ description: String) { self.description = description }

    /// The backend cannot be reached (for example PostgreSQL is down); the message was not published.
    public static func unavailable(_ reason: String) -> BroadcastError {
        BroadcastError("broadcast backend unavailable: \(reason)")
    }
}
