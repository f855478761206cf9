import NIOCore
import NIOHTTP2
import Synchronization

/// A connection that speaks HTTP/2. Each stream is served as an HTTP/1 connection that carries one
/// request: an ``HTTPConnection`` over the stream's channel, behind NIO's HTTP/2-to-HTTP/1 codec, so
/// that streams run the same `App.respond`, streamed bodies and WebSocket sessions as HTTP/1.1 —
/// with HTTP/2's flow control as their backpressure — each in a child task of this connection's task.
///
/// A class: every HTTP/1.1 connection's shutdown state has room for one (`nil` but for HTTP/2),
/// and a reference keeps that room to one word.
final class HTTP2Connection: Sendable {
    let channel: any Channel
    private let multiplexer: NIOHTTP2Handler.AsyncStreamMultiplexer<HTTPConnection>
    /// The streams being served, for graceful shutdown.
    private let streams = OpenConnections()

    private init(channel: any Channel, multiplexer: NIOHTTP2Handler.AsyncStreamMultiplexer<HTTPConnection>) {
        self.channel = channel
        self.multiplexer = multiplexer
    }

    /// Replaces the HTTP/1 handler of `connection` with HTTP/2's; on the event loop, before any
    /// HTTP/1 request was read. The connection's task then serves HTTP/2 (``HTTPConnection/run(_:overLimit:)``).
    static func takeOver(_ connection: HTTPConnection, settings: ConnectionSettings, scheme: String,
                         clientAddress: String?) throws {
        let channel = connection.channel
        let sync = channel.pipeline.syncOperations
        // HTTP/1's half-closure (see Server.configure) does not apply: a client's EOF ends HTTP/2.
        try channel.syncOptions?.setOption(.allowRemoteHalfClosure, value: false)
        let lifecycle = HTTP2ConnectionLifecycleHandler(idleTimeout: TimeAmount(settings.configuration.keepAliveTimeout))
        // Between the socket and NIO's HTTP/2 handler: one flush per burst, not one per stream.
        try sync.addHandler(HTTP2FlushCoalescer())
        let multiplexer = try sync.configureAsyncHTTP2Pipeline(
            mode: .server, streamDelegate: lifecycle.streamDelegate(on: channel.eventLoop), configuration: Self.configuration(settings)
        ) { stream in
            stream.eventLoop.makeCompletedFuture {
                try Self.configureStream(stream, settings: settings, scheme: scheme, clientAddress: clientAddress)
            }
        }
        try sync.addHandler(lifecycle)
        // A connection error (a flood, a malformed frame): NIO's handler sends GOAWAY, this closes.
        try sync.addHandler(NIOCloseOnErrorHandler())
        connection.shutdown.state.withLock { $0.http2 = HTTP2Connection(channel: channel, multiplexer: multiplexer) }
        // Last: its removal ends the HTTP/1 request loop, which then finds the HTTP/2 connection.
        sync.removeHandler(context: try sync.context(handlerType: HTTPConnectionHandler.self), promise: nil)
    }

    /// The connection's settings (what the server advertises) and limits: swift-nio-http2's own
    /// protections (rapid reset, CONTINUATION and control-frame floods, glitches) at their defaults.
    private static func configuration(_ settings: ConnectionSettings) -> NIOHTTP2Handler.Configuration {
        let options = settings.configuration.http2
        var configuration = NIOHTTP2Handler.Configuration()
        configuration.connection.initialSettings = [
            HTTP2Setting(parameter: .maxConcurrentStreams, value: options.maxConcurrentStreams),
            HTTP2Setting(parameter: .initialWindowSize, value: options.initialWindowSize),
            HTTP2Setting(parameter: .maxHeaderListSize, value: options.maxHeaderListSize),
        ]
        // RFC 8441: browsers read this setting as a promise that WebSockets work over this
        // connection, so it is sent only when the app has a WebSocket route.
        if settings.servesWebSockets {
            configuration.connection.initialSettings.append(HTTP2Setting(parameter: .enableConnectProtocol, value: 1))
        }
        configuration.stream.targetWindowSize = options.initialWindowSize
        return configuration
    }

    /// The pipeline of one stream: `:protocol` read for RFC 8441, NIO's codec, our request handler.
    private static func configureStream(_ stream: any Channel, settings: ConnectionSettings, scheme: String,
                                        clientAddress: String?) throws -> HTTPConnection {
        let (requests, continuation) = AsyncStream<ReceivedRequest>.makeStream()
        let handler = HTTPConnectionHandler(clientAddress: clientAddress, scheme: scheme, settings: settings,
                                            readPolicy: .singleRequest, requests: continuation)
        let sync = stream.pipeline.syncOperations
        try sync.addHandler(ExtendedConnectReader())
        try sync.addHandler(HTTP2FramePayloadToHTTP1ServerCodec())
        try sync.addHandler(handler)
        return HTTPConnection(channel: stream, requests: requests, handler: NIOLoopBound(handler, eventLoop: stream.eventLoop),
                              isHTTP2Stream: true)
    }

    /// Serves every stream the client opens, each in a child task, until the connection closes.
    func run(_ settings: ConnectionSettings, overLimit: Bool) async {
        let streams = self.streams
        await withDiscardingTaskGroup { group in
            do {
                for try await stream in multiplexer.inbound {
                    group.addTask(executorPreference: settings.executor(for: stream.channel.eventLoop)) {
                        let key = streams.add(stream)
                        defer { streams.remove(key) }
                        await stream.run(settings, overLimit: overLimit)
                    }
                }
            } catch {
                // The connection failed; its streams end with it.
            }
        }
        if Task.isCancelled { try? await channel.close() }
        try? await channel.closeFuture.get()
    }

    /// Graceful shutdown: GOAWAY, the connection closes once its open streams are done
    /// (``HTTP2ConnectionLifecycleHandler``), and every WebSocket stream closes with 1001.
    func beginShutdown() {
        channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        streams.beginShutdown()
    }
}
