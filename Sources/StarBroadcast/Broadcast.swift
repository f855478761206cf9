public import Logging
import NIOCore
public import Star
import Synchronization

/// Publish/subscribe for WebSocket apps: every message published on a channel reaches every
/// subscriber of that channel — in this process with the `memory://` backend (the default), or
/// in every process that shares a PostgreSQL database with `postgres://…` (LISTEN/NOTIFY).
///
/// ```swift
/// @concurrent func chat(path: PathParams, ws: WebSocket, broadcast: Broadcast) async throws {
///     let room = path["room"] ?? "lobby"
///     try await broadcast.subscribe(to: room) { events in
///         try await ws.connect()  // after subscribing: the client misses nothing published once it is open
///         try await withThrowingDiscardingTaskGroup { group in
///             group.addTask { for await event in events { try await ws.send(event.message) } }
///             for try await message in ws.messages { try await broadcast.publish(room, message) }
///             group.cancelAll()
///         }
///     }
/// }
/// ```
///
/// Register it with ``BroadcastComponent``. The backend starts on first use.
public final class Broadcast: Sendable {
    private let backend: any BroadcastBackend
    private let hub: Hub
    private let started = Mutex<Task<Void, any Error>?>(nil)

    /// Creates a broadcast; nothing connects until the first publish or subscribe.
    ///
    /// - Parameters:
    ///   - url: `memory://` (one process) or `postgres://user:password@host:port/database`.
    ///   - logger: Where dropped events and backend outages are logged.
    /// - Throws: ``BroadcastError`` for a URL that is not one of these, and for a `postgres://` URL
    ///   when Star was built without its `PostgreSQL` package trait.
    public init(url: String = "memory://", logger: Logger = Logger(label: "star.broadcast")) throws(BroadcastError) {
        switch try BroadcastURL(url) {
        case .memory: backend = MemoryBackend()
        case .postgres(let settings):
            #if PostgreSQL
            backend = PostgresBackend(settings: settings, logger: logger)
            #else
            _ = settings
            throw BroadcastURL.postgresUnavailable(url)  // BroadcastURL refuses it first
            #endif
        }
        hub = Hub(logger: logger)
    }

    /// Publishes a message on `channel`; it reaches every subscriber of the channel, in every
    /// process of the backend, in the order this caller published.
    ///
    /// Never waits for subscribers. Throws ``BroadcastError/unavailable(_:)`` when the backend
    /// cannot be reached (for example while PostgreSQL restarts) instead of hanging.
    public func publish(_ channel: String, _ message: WebSocketMessage) async throws {
        try await start()
        try await backend.publish(BroadcastEvent(channel: channel, message: message))
    }

    /// Publishes a text message on `channel`.
    public func publish(_ channel: String, text: String) async throws {
        try await publish(channel, .text(text))
    }

    /// Publishes a binary message on `channel`.
    public func publish(_ channel: String, bytes: some Sequence<UInt8>) async throws {
        try await publish(channel, .binary(ByteBuffer(bytes: bytes)))
    }

    /// Publishes `value` encoded as JSON in a text message on `channel`.
    public func publish(_ channel: String, json value: some Encodable) async throws {
        try await publish(channel, .text(String(decoding: try JSON.encode(value), as: UTF8.self)))
    }

    /// Subscribes to `channels` for the duration of `body`: `body` iterates the events; leaving
    /// it (returning, throwing or being cancelled) unsubscribes.
    ///
    /// - Parameters:
    ///   - channels: One or more channel names.
    ///   - bufferSize: Events buffered for a slow consumer before the oldest is dropped (see
    ///     ``BroadcastSubscription``).
    ///   - isolation: The actor `body` runs on; the caller's, by default.
    ///   - body: Iterates the events; the subscription ends when it returns.
    public func subscribe<Result>(
        to channels: String..., bufferSize: Int = 256,
        isolation: isolated (any Actor)? = #isolation,
        _ body: (BroadcastSubscription) async throws -> Result
    ) async throws -> Result {
        try await start()
        let queue = hub.add(channels: Set(channels), bufferSize: bufferSize)
        defer { hub.remove(queue) }
        return try await body(BroadcastSubscription(queue: queue))
    }

    /// Ends every subscription (their sequences finish) and closes the backend's connections.
    public func shutdown() async {
        let task = started.withLock { $0 }
        hub.finishAll()
        if task != nil { await backend.shutdown() }
    }

    /// How many subscriptions are open in this process (for tests and diagnostics).
    public var subscriberCount: Int { hub.count }

    private func start() async throws {
        let task = started.withLock { task in
            if let task { return task }
            let backend = self.backend
            let hub = self.hub
            let new = Task { try await backend.start(deliver: { hub.deliver($0) }) }
            task = new
            return new
        }
        try await task.value
    }
}

/// The subscribers of this process, by channel.
private final class Hub: Sendable {
    private struct State {
        var byChannel: [String: [UInt64: SubscriberQueue]] = [:]
        var nextID: UInt64 = 0
        var count = 0
    }

    private let state = Mutex(State())
    private let logger: Logger

    init(logger: Logger) {
        self.logger = logger
    }

    var count: Int { state.withLock { $0.count } }

    func add(channels: Set<String>, bufferSize: Int) -> SubscriberQueue {
        state.withLock { state in
            state.nextID += 1
            state.count += 1
            let queue = SubscriberQueue(id: state.nextID, channels: channels, capacity: bufferSize)
            for channel in channels { state.byChannel[channel, default: [:]][queue.id] = queue }
            return queue
        }
    }

    func remove(_ queue: SubscriberQueue) {
        state.withLock { state in
            state.count -= 1
            for channel in queue.channels {
                state.byChannel[channel]?[queue.id] = nil
                if state.byChannel[channel]?.isEmpty == true { state.byChannel[channel] = nil }
            }
        }
        queue.finish()
    }

    func deliver(_ event: BroadcastEvent) {
        guard let subscribers = state.withLock({ $0.byChannel[event.channel] }) else { return }
        for queue in subscribers.values {
            if let dropped = queue.push(event), dropped == 1 || dropped % 1000 == 0 {
                logger.warning("broadcast: a slow subscriber of '\(event.channel)' fell behind; \(dropped) event(s) dropped so far")
            }
        }
    }

    func finishAll() {
        let all = state.withLock { state in
            defer { state.byChannel = [:] }
            return state.byChannel.values.flatMap(\.values)
        }
        for queue in all { queue.finish() }
    }
}
