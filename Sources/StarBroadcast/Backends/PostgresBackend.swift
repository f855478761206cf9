#if PostgreSQL
import Foundation
import Logging
import NIOCore
import PostgresNIO
import Star
import Synchronization

/// Carries events between processes through PostgreSQL's LISTEN/NOTIFY.
///
/// - Every process LISTENs on one PostgreSQL channel, `star_broadcast`, and keeps the events of
///   the channels it has subscribers for: one LISTEN per process however many rooms it serves.
/// - An event that fits a NOTIFY payload (under 8,000 bytes, text without NUL) travels inline; a
///   larger one is stored in the table `star_broadcast_messages` and its id is notified; listeners
///   read it from there (rows older than five minutes are deleted as new ones arrive).
/// - Two connections: one listens, one publishes, so that publishing never waits behind a fetch.
///   When either is lost, publishing throws ``BroadcastError/unavailable(_:)`` at once, and a
///   supervisor reconnects with backoff (100 ms doubling to 2 s), logging the outage and, once back,
///   its length: events published elsewhere during the gap are not delivered here.
final class PostgresBackend: BroadcastBackend {
    static let channel = "star_broadcast"
    /// NOTIFY refuses payloads of 8,000 bytes or more; leave room for the header.
    static let inlineLimit = 7_900
    /// How long a publish may take before it is reported as a failure.
    static let publishTimeout = Duration.seconds(5)

    private struct State {
        var listener: PostgresConnection?
        var publisher: PostgresConnection?
        var supervisor: Task<Void, Never>?
        var storedSinceCleanup = 0
    }

    private let settings: BroadcastURL.PostgresSettings
    private let logger: Logger
    private let state = Mutex(State())
    private let connectionIDs = Atomic<Int>(0)

    init(settings: BroadcastURL.PostgresSettings, logger: Logger) {
        self.settings = settings
        self.logger = logger
    }

    /// Starts the supervisor and waits for its first connection attempt (so that a publish right
    /// after startup finds the connection), but never fails: an unreachable database is logged
    /// and retried, and publishing reports it.
    func start(deliver: @escaping @Sendable (BroadcastEvent) -> Void) async throws {
        let (firstAttempt, attempted) = AsyncStream<Void>.makeStream()
        let supervisor = Task { await supervise(deliver: deliver, attempted: attempted) }
        state.withLock { $0.supervisor = supervisor }
        for await _ in firstAttempt { break }
    }

    func publish(_ event: BroadcastEvent) async throws {
        guard let connection = state.withLock({ $0.publisher }) else {
            throw BroadcastError.unavailable("PostgreSQL is unreachable")
        }
        do {
            try await Self.withTimeout(Self.publishTimeout) { [self] in
                if let payload = Self.inlinePayload(for: event) {
                    try await connection.query("SELECT pg_notify(\(Self.channel), \(payload))", logger: logger)
                } else {
                    try await store(event, on: connection)
                }
            }
        } catch {
            // The details stay in the log: what a handler may pass on to a client is the short reason.
            logger.debug("broadcast: publish failed: \(String(reflecting: error))")
            if connection.isClosed {
                // The listener may not have noticed yet: make the supervisor reconnect both.
                let listener = state.withLock { state in
                    state.publisher = nil
                    return state.listener
                }
                try? await listener?.close()
                throw BroadcastError.unavailable("PostgreSQL is unreachable")
            }
            throw (error as? BroadcastError) ?? BroadcastError.unavailable("PostgreSQL refused the message")
        }
    }

    func shutdown() async {
        let (supervisor, connections) = state.withLock { state in
            defer { state.listener = nil; state.publisher = nil; state.supervisor = nil }
            return (state.supervisor, [state.listener, state.publisher].compactMap { $0 })
        }
        supervisor?.cancel()
        for connection in connections { try? await connection.close() }
        await supervisor?.value
    }

    // MARK: The supervisor

    private func supervise(deliver: @escaping @Sendable (BroadcastEvent) -> Void, attempted: AsyncStream<Void>.Continuation) async {
        var delay = Duration.milliseconds(100)
        var lostAt: ContinuousClock.Instant?
        while !Task.isCancelled {
            var opened: [PostgresConnection] = []
            do {
                let listener = try await connect()
                opened.append(listener)
                let publisher = try await connect()
                opened.append(publisher)
                try await prepareTable(on: publisher)
                try await listener.listen(on: Self.channel) { notifications in
                    // LISTEN is in effect: from here on nothing published is missed.
                    state.withLock { state in
                        state.listener = listener
                        state.publisher = publisher
                    }
                    if let since = lostAt {
                        logger.warning("broadcast: PostgreSQL is back after \(Int(since.duration(to: .now) / .milliseconds(1))) ms; events published elsewhere meanwhile were not delivered here")
                    } else {
                        logger.info("broadcast: listening on PostgreSQL \(settings.host):\(settings.port)")
                    }
                    lostAt = nil
                    delay = .milliseconds(100)
                    attempted.yield()
                    for try await notification in notifications {
                        if let event = try await event(from: notification.payload, fetchingWith: listener) {
                            deliver(event)
                        }
                    }
                }
                throw BroadcastError.unavailable("the LISTEN connection ended")
            } catch {
                if Task.isCancelled { break }
                state.withLock { state in
                    state.listener = nil
                    state.publisher = nil
                }
                if lostAt == nil {
                    lostAt = .now
                    logger.error("broadcast: PostgreSQL unavailable (\(String(reflecting: error))); publishing fails until it is back; reconnecting")
                }
                for connection in opened { try? await connection.close() }
                attempted.yield()
                try? await Task.sleep(for: delay)
                delay = min(delay * 2, .seconds(2))
            }
        }
        attempted.finish()
    }

    private func connect() async throws -> PostgresConnection {
        var configuration = PostgresConnection.Configuration(
            host: settings.host, port: settings.port, username: settings.username,
            password: settings.password, database: settings.database, tls: .disable
        )
        configuration.options.connectTimeout = .seconds(3)
        return try await PostgresConnection.connect(
            configuration: configuration, id: connectionIDs.add(1, ordering: .relaxed).newValue, logger: logger
        )
    }

    private func prepareTable(on connection: PostgresConnection) async throws {
        do {
            try await connection.query("""
                CREATE TABLE IF NOT EXISTS star_broadcast_messages (
                    id bigserial PRIMARY KEY, channel text NOT NULL, is_binary boolean NOT NULL,
                    body bytea NOT NULL, created_at timestamptz NOT NULL DEFAULT now())
                """, logger: logger)
        } catch {
            // Two processes creating it at once: one loses the race, and the table exists.
            logger.debug("broadcast: CREATE TABLE star_broadcast_messages: \(String(reflecting: error))")
        }
    }

    // MARK: Payloads

    /// `t<length>:<channel><text>` or `b<length>:<channel><base64>` when it fits a NOTIFY payload.
    static func inlinePayload(for event: BroadcastEvent) -> String? {
        let header = "\(event.channel.utf8.count):\(event.channel)"
        let payload: String
        switch event.message {
        case .text(let text):
            guard !text.utf8.contains(0) else { return nil }
            payload = "t" + header + text
        case .binary(let bytes):
            guard bytes.readableBytes < inlineLimit else { return nil }
            payload = "b" + header + Data(bytes.readableBytesView).base64EncodedString()
        }
        return payload.utf8.count <= inlineLimit ? payload : nil
    }

    /// Stores a large event and notifies `r<id>`.
    private func store(_ event: BroadcastEvent, on connection: PostgresConnection) async throws {
        let (isBinary, body): (Bool, ByteBuffer) = switch event.message {
        case .text(let text): (false, ByteBuffer(string: text))
        case .binary(let bytes): (true, bytes)
        }
        let rows = try await connection.query(
            "INSERT INTO star_broadcast_messages (channel, is_binary, body) VALUES (\(event.channel), \(isBinary), \(body)) RETURNING id",
            logger: logger)
        var id: Int64?
        for try await value in rows.decode(Int64.self) { id = value }
        guard let id else { throw BroadcastError.unavailable("PostgreSQL returned no id for the stored message") }
        try await connection.query("SELECT pg_notify(\(Self.channel), \("r\(id)"))", logger: logger)
        let cleanUp = state.withLock { state in
            state.storedSinceCleanup += 1
            defer { if state.storedSinceCleanup >= 64 { state.storedSinceCleanup = 0 } }
            return state.storedSinceCleanup >= 64
        }
        if cleanUp {
            try await connection.query("DELETE FROM star_broadcast_messages WHERE created_at < now() - interval '5 minutes'", logger: logger)
        }
    }

    /// The event a notification carries, reading stored ones from the table; `nil` (logged) for
    /// a payload that is not ours or a stored event that is gone.
    private func event(from payload: String, fetchingWith connection: PostgresConnection) async throws -> BroadcastEvent? {
        guard let kind = payload.first else { return nil }
        let rest = payload.dropFirst()
        if kind == "r" {
            guard let id = Int64(rest) else { return nil }
            let rows = try await connection.query(
                "SELECT channel, is_binary, body FROM star_broadcast_messages WHERE id = \(id)", logger: logger)
            for try await (channel, isBinary, body) in rows.decode((String, Bool, ByteBuffer).self) {
                return BroadcastEvent(channel: channel, message: isBinary ? .binary(body) : .text(String(buffer: body)))
            }
            logger.warning("broadcast: stored event \(id) is gone (older than five minutes?)")
            return nil
        }
        guard let colon = rest.firstIndex(of: ":"), let length = Int(rest[..<colon]) else {
            logger.debug("broadcast: ignoring a notification that is not Star's: \(payload.prefix(40))")
            return nil
        }
        let afterColon = rest.index(after: colon)
        let utf8 = rest.utf8
        guard let channelEnd = utf8.index(afterColon, offsetBy: length, limitedBy: utf8.endIndex) else { return nil }
        let channel = String(rest[afterColon..<channelEnd])
        let body = rest[channelEnd...]
        switch kind {
        case "t":
            return BroadcastEvent(channel: channel, message: .text(String(body)))
        case "b":
            guard let data = Data(base64Encoded: String(body)) else { return nil }
            return BroadcastEvent(channel: channel, message: .binary(ByteBuffer(bytes: data)))
        default:
            return nil
        }
    }

    /// Runs `operation`, or throws when `limit` passes first (the operation is left to finish
    /// on its own: a PostgreSQL query cannot be cancelled mid-flight).
    static func withTimeout(_ limit: Duration, _ operation: @escaping @Sendable () async throws -> Void) async throws {
        let outcome = Mutex<CheckedContinuation<Void, any Error>?>(nil)
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            outcome.withLock { $0 = continuation }
            let finish: @Sendable (Result<Void, any Error>) -> Void = { result in
                outcome.withLock { $0.take() }?.resume(with: result)
            }
            let timer = Task {
                try await Task.sleep(for: limit)
                finish(.failure(BroadcastError.unavailable("no answer from PostgreSQL within \(limit)")))
            }
            Task {
                do { try await operation(); finish(.success(())) } catch { finish(.failure(error)) }
                timer.cancel()
            }
        }
    }
}
#endif
