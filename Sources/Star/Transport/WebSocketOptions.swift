/// The per-app WebSocket settings that the transport enforces for a session.
public struct WebSocketOptions: Sendable, Equatable {
    /// The largest message accepted, in bytes; a larger one closes the session with 1009.
    public var maxMessageSize: Int
    /// How many received messages may wait for the handler before the transport stops reading
    /// the socket (the peer is then pushed back by TCP).
    public var maxQueue: Int
    /// How often the server pings an idle peer (a positive duration); `nil` disables pings.
    ///
    /// The server checks its sessions' timers (this one, ``pingTimeout`` and ``closeTimeout``) every
    /// tenth of the shortest of them, between 10 ms and 1 s: each fires at most that much late.
    public var pingInterval: Duration?
    /// How long the server waits for the pong before it closes with 1011 (a positive duration);
    /// `nil` waits forever.
    public var pingTimeout: Duration?
    /// How long the server waits for the peer's close frame after sending its own.
    public var closeTimeout: Duration
    /// The outbound bytes buffered before `send` suspends until the peer reads.
    public var writeBufferHighWater: Int
    /// Whether to negotiate permessage-deflate (RFC 7692) when the client offers it.
    public var perMessageDeflate: Bool = true

    /// Creates options with Uvicorn's defaults: 16 MiB messages, 32 queued, ping every 20 s with a 20 s timeout.
    public init(
        maxMessageSize: Int = 16 * 1024 * 1024,
        maxQueue: Int = 32,
        pingInterval: Duration? = .seconds(20),
        pingTimeout: Duration? = .seconds(20),
        closeTimeout: Duration = .seconds(10),
        writeBufferHighWater: Int = 1024 * 1024
    ) {
        self.maxMessageSize = maxMessageSize
        self.maxQueue = maxQueue
        self.pingInterval = pingInterval
        self.pingTimeout = pingTimeout
        self.closeTimeout = closeTimeout
        self.writeBufferHighWater = writeBufferHighWater
    }
}
