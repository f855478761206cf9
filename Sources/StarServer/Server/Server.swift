import CoreMetrics
import HTTPTypes
import Logging
public import NIOCore
import NIOHTTP1
import NIOPosix
public import ServiceLifecycle
public import Star
import StarWebSocketNIO
import Synchronization

/// Serves an `App` over HTTP/1.1 and HTTP/2 (and WebSockets over both) on SwiftNIO.
///
/// ```swift
/// let server = Server(app: app, configuration: ServerConfiguration(port: 8080))
/// try await server.run()     // until graceful shutdown or cancellation
/// ```
///
/// Each accepted connection is served by one child task of a discarding task group; requests
/// on a connection are answered in order (pipelining included).
///
/// `Server` is a ServiceLifecycle `Service`: on graceful shutdown it stops accepting, lets
/// in-flight requests finish, closes idle keep-alive connections, and closes every WebSocket with
/// 1001 so that handlers see `WebSocketDisconnect` and return. Handlers still running after
/// ``ServerConfiguration/gracefulShutdownTimeout`` are cancelled, and those that ignore cancellation
/// are abandoned a second later: `run()` returns, whatever the `ServiceGroup`'s own settings.
public struct Server: Service, Sendable {
    /// The app served.
    public let app: App
    /// The listening and logging settings.
    public let configuration: ServerConfiguration
    private let eventLoopGroup: (any EventLoopGroup)?

    /// Creates a server; nothing happens until ``run(onListening:)``.
    ///
    /// - Parameters:
    ///   - app: The app to serve; ``run(onListening:)`` validates it first.
    ///   - configuration: Where to listen and how to behave.
    ///   - eventLoopGroup: The event loops to use; by default the server makes its own
    ///   with ``ServerConfiguration/threads`` threads and shuts them down when it stops.
    public init(app: App, configuration: ServerConfiguration = ServerConfiguration(),
                eventLoopGroup: (any EventLoopGroup)? = nil) {
        self.app = app
        self.configuration = configuration
        self.eventLoopGroup = eventLoopGroup
    }

    /// Serves until graceful shutdown or cancellation (the `Service` requirement).
    public func run() async throws {
        try await run(onListening: { _ in })
    }

    /// Validates the app, sets its log level (``ServerConfiguration/logLevel``), binds, and serves
    /// until graceful shutdown or cancellation.
    ///
    /// - Parameter onListening: Called once with the bound address (useful with port `0`).
    public func run(onListening: @escaping @Sendable (SocketAddress) -> Void) async throws {
        try app.validate()
        if let level = configuration.logLevel { app.setLogLevel(level) }
        let tls = try configuration.tls.map { try ServerTLS($0, http2: configuration.http2.enabled) }
        let ownGroup = eventLoopGroup == nil
            ? MultiThreadedEventLoopGroup(numberOfThreads: configuration.threads ?? AvailableCPUs.count) : nil
        let group = eventLoopGroup ?? ownGroup!
        let serving = Task { try await serve(on: group, tls: tls, onListening: onListening) }
        guard let outcome = await Self.outcome(of: serving, timeout: configuration.gracefulShutdownTimeout,
                                               grace: .seconds(1)) else {
            // A handler ignored cancellation past the graceful-shutdown timeout: stop waiting for it.
            // Its event loops stay up (it may still touch them); the process is about to exit.
            app.logger.warning("stopped with handlers still running: they ignored cancellation")
            return
        }
        try? await ownGroup?.shutdownGracefully()
        try outcome.get()
    }

    /// The outcome of `task`, which serves until graceful shutdown. `task` is cancelled `timeout`
    /// after graceful shutdown begins, or as soon as the caller is cancelled, and then given `grace`
    /// to end, after which the wait ends with `nil`: a connection whose handler ignores cancellation
    /// cannot keep the server from stopping.
    private static func outcome(of task: Task<Void, any Error>, timeout: Duration,
                                grace: Duration) async -> Result<Void, any Error>? {
        let waiter = Mutex<CheckedContinuation<Result<Void, any Error>?, Never>?>(nil)
        let finish: @Sendable (Result<Void, any Error>?) -> Void = { outcome in
            waiter.withLock { $0.take() }?.resume(returning: outcome)
        }
        let stop: @Sendable () -> Void = {
            task.cancel()
            Task {
                try? await Task.sleep(for: grace)
                finish(nil)
            }
        }
        let deadline = Mutex<Task<Void, Never>?>(nil)
        defer { deadline.withLock { $0?.cancel() } }
        return await withGracefulShutdownHandler {
            await withTaskCancellationHandler {
                await withCheckedContinuation { continuation in
                    waiter.withLock { $0 = continuation }
                    Task { finish(await task.result) }
                }
            } onCancel: {
                stop()
            }
        } onGracefulShutdown: {
            let timer = Task {
                // Cancelled when the task ended first.
                guard (try? await Task.sleep(for: timeout)) != nil else { return }
                stop()
            }
            deadline.withLock { $0 = timer }
        }
    }

    private func serve(on group: any EventLoopGroup, tls: ServerTLS?, onListening: @Sendable (SocketAddress) -> Void) async throws {
        let configuration = self.configuration
        let metrics = ServerMetrics(factory: configuration.metricsFactory)
        // One executor per event loop, shared by its connections' tasks; the accept loop runs on the
        // listening channel's loop too: on Swift's global pool, every accepted connection cost two
        // thread switches (measured: 24,000 context switches in 2 s at 6,100 handshakes/s).
        var executors: [ObjectIdentifier: EventLoopTaskExecutor] = [:]
        if configuration.executor == .eventLoop {
            for loop in group.makeIterator() { executors[ObjectIdentifier(loop)] = EventLoopTaskExecutor(loop) }
        }
        let shared = ConnectionSettings(app: app, configuration: configuration, metrics: metrics, executors: executors)
        let accepted = AcceptedConnections<HTTPConnection>()
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: Int32(clamping: configuration.backlog))
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            // Up to 16 accepts per wake-up (NIO's default is 4): the accept task then starts a batch
            // of connections per resumption. 6,058 -> 8,666 handshakes/s (medians of 3, alternating).
            .serverChannelOption(.maxMessagesPerRead, value: 16)
            .serverChannelInitializer { [logger = app.logger] channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(AcceptPauseHandler(logger: logger))
                }
            }
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let connection = try Self.configure(channel, tls: tls, settings: shared)
                    guard accepted.append(connection) else { throw ChannelError.ioOnClosedChannel }
                }
            }
        let listeningChannel: any Channel
        if let path = configuration.unixSocket {
            listeningChannel = try await bootstrap.bind(unixDomainSocketPath: path, cleanupExistingSocketFile: true).get()
        } else {
            listeningChannel = try await bootstrap.bind(host: configuration.host, port: configuration.port).get()
        }
        listeningChannel.closeFuture.whenComplete { _ in accepted.finish() }
        let address = listeningChannel.localAddress
        if let address { onListening(address) }
        let scheme = tls == nil ? "http" : "https"
        let place = configuration.unixSocket.map { "unix:\($0)" }
            ?? "\(scheme)://\(configuration.host):\(address?.port ?? configuration.port)"
        app.logger.info("Star serving on \(place) (press Ctrl-C to quit)")
        app.logger.info("settings: \(configuration.summary(threads: eventLoopGroup == nil ? "\(configuration.threads ?? AvailableCPUs.count)" : "the given group"))")
        let open = OpenConnections()
        let trimmer = MemoryTrimmer.start(on: group.next(), open: open)
        defer { trimmer.cancel() }
        await withTaskExecutorPreference(shared.executor(for: listeningChannel.eventLoop)) {
            await withDiscardingTaskGroup { group in
                await withGracefulShutdownHandler {
                    var batch: [HTTPConnection] = []
                    while await accepted.next(into: &batch) {
                        for connection in batch {
                            let count = open.count.add(1, ordering: .relaxed).newValue
                            if count > open.peakSinceTrim.load(ordering: .relaxed) { open.peakSinceTrim.store(count, ordering: .relaxed) }
                            let overLimit = configuration.concurrencyLimit.map { count > $0 } ?? false
                            metrics.openConnections.increment()
                            group.addTask(executorPreference: shared.executor(for: connection.channel.eventLoop)) {
                                let key = open.add(connection)
                                defer {
                                    open.remove(key)
                                    open.count.subtract(1, ordering: .relaxed)
                                    metrics.openConnections.decrement()
                                }
                                await connection.run(shared, overLimit: overLimit)
                            }
                        }
                        batch.removeAll(keepingCapacity: true)
                    }
                    // Cancelled, or the listening channel closed: stop listening either way.
                    try? await listeningChannel.close()
                } onGracefulShutdown: {
                    listeningChannel.close(promise: nil)
                    open.beginShutdown()
                }
            }
        }
    }

    /// How connections size their reads until a WebSocket upgrade: NIO's adaptive sizing, starting
    /// at 1 KiB instead of NIO's 2 KiB. A handshake or a typical request fits, the size grows with
    /// larger reads, and a WebSocket keeps this first buffer for life (``WebSocketReceiveAllocator``).
    static let receiveAllocator = AdaptiveRecvByteBufferAllocator(minimum: 64, initial: WebSocketReceiveAllocator.largeThreshold, maximum: 65536)

    /// Sets a connection's options and builds its pipeline: TLS when configured, NIO's HTTP/1 codec,
    /// then our handler (which also keeps pipelined requests in order and answers parse errors: 400,
    /// or 431 for a large head). With HTTP/2 on, ``HTTPVersionSelector`` goes in front of the HTTP/1 handlers:
    /// on ALPN's `h2`, or the HTTP/2 preface on cleartext, ``HTTP2Connection`` takes over.
    ///
    /// The options are set here, synchronously, rather than as the bootstrap's child-channel options:
    /// NIO applies those through a chain of futures, 15 allocations per accepted connection.
    private static func configure(_ channel: any Channel, tls: ServerTLS?,
                                  settings: ConnectionSettings) throws -> HTTPConnection {
        if let options = channel.syncOptions {
            try options.setOption(.socketOption(.tcp_nodelay), value: 1)
            try options.setOption(.maxMessagesPerRead, value: 16)
            try options.setOption(.recvAllocator, value: Self.receiveAllocator)
            // A client's half-close is an event, not the end: HTTPConnectionHandler answers what it
            // owes first (it reads ahead while answering; see its ReadPolicy). Not with TLS, which
            // keeps NIO's rule of holding reads while answering.
            if tls == nil { try options.setOption(.allowRemoteHalfClosure, value: true) }
        }
        let (requests, continuation) = AsyncStream<ReceivedRequest>.makeStream()
        let clientAddress = channel.remoteAddress.map(Self.describe)
        let scheme = tls == nil ? "http" : "https"
        let handler = HTTPConnectionHandler(clientAddress: clientAddress, scheme: scheme, settings: settings,
                                            readPolicy: tls == nil ? .readAhead : .holdWhileResponding,
                                            requests: continuation)
        let connection = HTTPConnection(channel: channel, requests: requests, handler: NIOLoopBound(handler, eventLoop: channel.eventLoop))
        let sync = channel.pipeline.syncOperations
        try tls?.addHandler(to: sync)
        guard settings.configuration.http2.enabled else {
            try addHTTP1Codec(to: sync)
            try sync.addHandler(handler)
            return connection
        }
        try sync.addHandler(HTTPVersionSelector(
            mode: tls == nil ? .priorKnowledge : .alpn,
            switchToHTTP1: { try addHTTP1Codec(to: sync, before: handler) },
            switchToHTTP2: {
                try HTTP2Connection.takeOver(connection, settings: settings, scheme: scheme, clientAddress: clientAddress)
            }
        ))
        try sync.addHandler(handler)
        return connection
    }

    /// NIO's HTTP/1 codec, at the end of the pipeline or before `handler`.
    private static func addHTTP1Codec(to sync: ChannelPipeline.SynchronousOperations,
                                      before handler: HTTPConnectionHandler? = nil) throws {
        let position: ChannelPipeline.SynchronousOperations.Position = handler.map { .before($0) } ?? .last
        try sync.addHandlers([
            HTTPResponseEncoder(configuration: .init()),
            ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .forwardBytes)),
        ], position: position)
    }

    static func describe(_ address: SocketAddress) -> String {
        switch address {
        case .v4, .v6: "\(address.ipAddress ?? "?"):\(address.port ?? 0)"
        case .unixDomainSocket: address.pathname ?? "unix"
        }
    }
}

/// What every connection of one running server shares. Connections keep a reference to it
/// rather than copies of the app and configuration: with 10,000 idle WebSockets, each copy
/// of ``ServerConfiguration`` cost about 1 KiB.
final class ConnectionSettings: Sendable {
    let app: App
    let configuration: ServerConfiguration
    let metrics: ServerMetrics
    /// The executor of each event loop, for the tasks of its connections (none with `--executor global`).
    private let executors: [ObjectIdentifier: EventLoopTaskExecutor]
    /// Whether the app has a WebSocket route: only then does HTTP/2 advertise RFC 8441.
    let servesWebSockets: Bool
    /// Each event loop's ``WebSocketTicker``, made when the loop's first WebSocket opens.
    private let tickers = Mutex<[ObjectIdentifier: NIOLoopBound<WebSocketTicker>]>([:])

    init(app: App, configuration: ServerConfiguration, metrics: ServerMetrics,
         executors: [ObjectIdentifier: EventLoopTaskExecutor]) {
        self.app = app
        self.configuration = configuration
        self.metrics = metrics
        self.executors = executors
        self.servesWebSockets = (try? app.router.routes.contains { $0.isWebSocket }) ?? false
    }

    /// The executor for tasks of connections on `eventLoop`; `nil` for Swift's global executor.
    func executor(for eventLoop: any EventLoop) -> EventLoopTaskExecutor? {
        executors[ObjectIdentifier(eventLoop)]
    }

    /// The ticker of `eventLoop`; call it on that loop.
    func webSocketTicker(on eventLoop: any EventLoop) -> WebSocketTicker {
        tickers.withLock { tickers in
            if let ticker = tickers[ObjectIdentifier(eventLoop)] { return ticker.value }
            let ticker = WebSocketTicker(eventLoop: eventLoop)
            tickers[ObjectIdentifier(eventLoop)] = NIOLoopBound(ticker, eventLoop: eventLoop)
            return ticker
        }
    }
}

/// The connections being served: how many (for `--limit-concurrency` and ``MemoryTrimmer``),
/// and which, for graceful shutdown.
///
/// The registry replaces a ServiceLifecycle graceful-shutdown handler per connection: those live
/// in an array that keeps its peak capacity (0.39 MB after 10,000 connections, by heaptrack) and
/// is scanned to remove one. Here adding and removing are O(1), and the table shrinks with the count.
final class OpenConnections: Sendable {
    let count = Atomic<Int>(0)
    /// The most connections open at once since the last memory trim (for ``MemoryTrimmer``; only
    /// the accept loop raises it, so a plain load and store suffice).
    let peakSinceTrim = Atomic<Int>(0)

    private struct Registry {
        var connections: [UInt64: HTTPConnection] = [:]
        var lastKey: UInt64 = 0
        var shuttingDown = false
    }
    private let registry = Mutex(Registry())

    /// Registers `connection` until ``remove(_:)`` with the returned key; during graceful shutdown
    /// the connection begins shutting down at once.
    func add(_ connection: HTTPConnection) -> UInt64 {
        let (key, shuttingDown) = registry.withLock { registry in
            registry.lastKey += 1
            registry.connections[registry.lastKey] = connection
            return (registry.lastKey, registry.shuttingDown)
        }
        if shuttingDown { connection.beginShutdown() }
        return key
    }

    /// Forgets the connection registered under `key`.
    func remove(_ key: UInt64) {
        registry.withLock { registry in
            registry.connections[key] = nil
            // A dictionary keeps its capacity: rebuild it once it is three-quarters empty.
            if registry.connections.capacity > 64 && registry.connections.count < registry.connections.capacity / 4 {
                var smaller = [UInt64: HTTPConnection](minimumCapacity: registry.connections.count * 2)
                for (key, connection) in registry.connections { smaller[key] = connection }
                registry.connections = smaller
            }
        }
    }

    /// Graceful shutdown: every registered connection begins shutting down, and so does every
    /// connection registered from now on.
    func beginShutdown() {
        let connections = registry.withLock { registry in
            registry.shuttingDown = true
            return Array(registry.connections.values)
        }
        for connection in connections { connection.beginShutdown() }
    }
}
