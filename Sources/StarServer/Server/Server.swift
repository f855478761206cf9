import HTTPTypes
import Logging
public import NIOCore
import NIOHTTP1
public import NIOPosix
public import Star
public import ServiceLifecycle

/// Serves an ``App`` over HTTP/1.1 on SwiftNIO.
///
/// ```swift
/// let server = Server(app: app, configuration: ServerConfiguration(port: 8080))
/// try await server.run()     // until the task is cancelled
/// ```
///
/// Each accepted connection is served by one child task of a discarding task group; requests
/// on a connection are answered in order (pipelining included).
///
/// `Server` is a ServiceLifecycle `Service`: on graceful shutdown it stops accepting, lets
/// in-flight requests finish, closes idle keep-alive connections, and closes every WebSocket with
/// 1001 so that handlers see `WebSocketDisconnect` and return.
public struct Server: Service, Sendable {
    /// The app served.
    public let app: App
    /// The listening and logging settings.
    public let configuration: ServerConfiguration
    /// The event loops that run the sockets.
    public let eventLoopGroup: any EventLoopGroup

    /// Creates a server; nothing happens until ``run(onListening:)``.
    public init(app: App, configuration: ServerConfiguration = ServerConfiguration(),
                eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) {
        self.app = app
        self.configuration = configuration
        self.eventLoopGroup = eventLoopGroup
    }

    /// Serves until graceful shutdown or cancellation (the `Service` requirement).
    public func run() async throws {
        try await run(onListening: { _ in })
    }

    /// Validates the app, binds, and serves until graceful shutdown or cancellation.
    ///
    /// - Parameter onListening: Called once with the bound address (useful with port `0`).
    public func run(onListening: @Sendable (SocketAddress) -> Void) async throws {
        try app.validate()
        let maxBodySize = app.configuration.maxBodySize
        let listener = try await ServerBootstrap(group: eventLoopGroup)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.maxMessagesPerRead, value: 16)
            .bind(host: configuration.host, port: configuration.port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try Self.configure(channel, maxBodySize: maxBodySize)
                }
            }
        let address = listener.channel.localAddress
        if let address { onListening(address) }
        app.logger.info("Star serving on http://\(configuration.host):\(address?.port ?? configuration.port) (press Ctrl-C to quit)")
        let listeningChannel = listener.channel
        try await listener.executeThenClose { connections in
            try await withThrowingDiscardingTaskGroup { group in
                try await withGracefulShutdownHandler {
                    for try await connection in connections {
                        group.addTask {
                            await withGracefulShutdownHandler {
                                await connection.run(app: app, configuration: configuration)
                            } onGracefulShutdown: {
                                connection.beginShutdown()
                            }
                        }
                    }
                } onGracefulShutdown: {
                    listeningChannel.close(promise: nil)
                }
            }
        }
    }

    /// Builds a connection's pipeline: NIO's HTTP/1 codec, pipelining assistance and error
    /// handling (a malformed request gets 400 and the connection closes), then our handler.
    private static func configure(_ channel: any Channel, maxBodySize: Int) throws -> HTTPConnection {
        let (requests, continuation) = AsyncStream<ReceivedRequest>.makeStream()
        let handler = HTTPConnectionHandler(
            maxBodySize: maxBodySize, clientAddress: channel.remoteAddress.map(Self.describe), requests: continuation
        )
        let sync = channel.pipeline.syncOperations
        try sync.addHandler(HTTPResponseEncoder(configuration: .init()))
        try sync.addHandler(ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .forwardBytes)))
        try sync.addHandler(HTTPServerPipelineHandler())
        try sync.addHandler(HTTPServerProtocolErrorHandler())
        try sync.addHandler(handler)
        return HTTPConnection(channel: channel, requests: requests, handler: NIOLoopBound(handler, eventLoop: channel.eventLoop))
    }

    static func describe(_ address: SocketAddress) -> String {
        switch address {
        case .v4, .v6: "\(address.ipAddress ?? "?"):\(address.port ?? 0)"
        case .unixDomainSocket: address.pathname ?? "unix"
        }
    }
}
