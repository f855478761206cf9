import HTTPTypes
import Logging
import NIOCore
import NIOHTTP1
import NIOWebSocket
import NIOHTTPTypesHTTP1
import Star
import Synchronization

/// One accepted connection: its channel, and the requests its handler collects. Its `run`
/// is the connection's single structured task: it answers requests one at a time, in order.
struct HTTPConnection: Sendable {
    let channel: any Channel
    let requests: AsyncStream<ReceivedRequest>
    let handler: NIOLoopBound<HTTPConnectionHandler>
    let shutdown = ShutdownState()

    /// What graceful shutdown needs to know about a connection.
    final class ShutdownState: Sendable {
        struct State {
            var shuttingDown = false
            var busy = false
            var session: WebSocketSession?
        }
        let state = Mutex(State())
    }

    /// Graceful shutdown: an idle connection closes now, a busy one after its current response,
    /// and an open WebSocket session is closed with 1001 (its handler sees `WebSocketDisconnect`).
    func beginShutdown() {
        let (session, idle) = shutdown.state.withLock { state in
            state.shuttingDown = true
            return (state.session, !state.busy)
        }
        if let session {
            session.shutDown()
        } else if idle {
            channel.close(promise: nil)
        }
    }

    /// Answers requests until the peer closes, a response closes the connection, or the task is cancelled.
    ///
    /// - Parameter overLimit: The server is past `--limit-concurrency`: answer 503 and close.
    func run(_ settings: ConnectionSettings, overLimit: Bool = false) async {
        for await received in requests {
            let done = if !overLimit && received.wantsWebSocket && received.request.method == .get
                && Self.checkHandshake(received.request) == nil {
                await serveWebSocket(received, settings)
            } else {
                await serveHTTP(received, settings, overLimit: overLimit)
            }
            if done { break }
        }
        // Cancelled (the server is stopping) with the connection still open: close it ourselves.
        if Task.isCancelled { try? await channel.close() }
        try? await channel.closeFuture.get()
    }

    // The two ways of serving a request are separate functions, never inlined into `run`: an idle
    // WebSocket keeps its task's async frames for as long as it is open, and frames that hold
    // only what a session needs keep that memory small (measured: 21.0 → 15.4 KiB per idle connection).

    /// Answers one HTTP request (or a refused handshake); returns whether the connection is done.
    @inline(never)
    private func serveHTTP(_ received: ReceivedRequest, _ settings: ConnectionSettings, overLimit: Bool) async -> Bool {
        shutdown.state.withLock { $0.busy = true }
        let start = ContinuousClock.now
        var received = received
        received.request.id = settings.app.makeRequestID()
        let response: Response
        if overLimit {
            response = HTTPError(.serviceUnavailable, detail: "Server busy: too many connections").response
        } else if received.wantsWebSocket && received.request.method == .get, let refusal = Self.checkHandshake(received.request) {
            response = refusal
        } else {
            response = await settings.app.respond(to: received.request) ?? Response(status: .internalServerError)
        }
        return finish(received, response, settings, overLimit: overLimit, since: start)
    }

    /// Runs a well-formed WebSocket handshake's route; returns whether the connection is done
    /// (always, unless the route denied the handshake with a keep-alive response).
    @inline(never)
    private func serveWebSocket(_ received: ReceivedRequest, _ settings: ConnectionSettings) async -> Bool {
        shutdown.state.withLock { $0.busy = true }
        let start = ContinuousClock.now
        var received = received
        received.request.id = settings.app.makeRequestID()
        let session = WebSocketSession(channel: channel, defaultOptions: settings.configuration.webSocket,
                                       metrics: settings.metrics, executor: settings.executor(for: channel.eventLoop),
                                       upgrade: upgrader(for: received.request.headers, settings))
        shutdown.state.withLock { $0.session = session }
        guard let denial = await settings.app.respond(to: received.request, webSocket: session) else {
            // Accepted, served and closed: the connection belonged to the WebSocket.
            settings.metrics.handshake(accepted: true)
            settings.metrics.closed(code: session.statistics.closeCode)
            if settings.configuration.accessLog { logSession(settings.app.logger, received, session, since: start) }
            return true
        }
        settings.metrics.handshake(accepted: false)
        return finish(received, denial, settings, overLimit: false, since: start)
    }

    /// Writes a response and logs it; returns whether the connection is done.
    private func finish(_ received: ReceivedRequest, _ response: Response, _ settings: ConnectionSettings,
                        overLimit: Bool, since start: ContinuousClock.Instant) -> Bool {
        // After a request that asked for an upgrade, NIO's parser stops: the connection cannot carry more requests.
        let stopping = shutdown.state.withLock { state in
            state.busy = false
            return state.shuttingDown
        }
        let keepAlive = received.keepAlive && !received.wantsWebSocket && !stopping && !overLimit && !Task.isCancelled
        // Counted before the write, so that a client that saw the response also sees the metric.
        settings.metrics.requestAnswered(status: response.status.code, duration: ContinuousClock.now - start)
        let handler = self.handler
        let version = received.version
        let headOnly = received.request.method == .head
        channel.eventLoop.execute {
            handler.value.write(response, version: version, keepAlive: keepAlive, headOnly: headOnly)
        }
        if settings.configuration.accessLog {
            logAccess(settings.app.logger, received, response.status, since: start)
        }
        return !keepAlive
    }

    /// A refusal for a WebSocket handshake that is malformed, or `nil` when it is well formed.
    static func checkHandshake(_ request: Request) -> Response? {
        guard request.headers[.secWebSocketVersion] == "13" else {
            return HTTPError(.upgradeRequired, detail: "Unsupported WebSocket version: use 13",
                             headers: [.secWebSocketVersion: "13"]).response
        }
        guard let key = request.headers[.secWebSocketKey], isWellFormedKey(key) else {
            return HTTPError(.badRequest, detail: "Missing or malformed Sec-WebSocket-Key").response
        }
        return nil
    }

    /// RFC 6455 §4.2.1: the key is 16 bytes in base64, that is 22 characters of the base64
    /// alphabet and `==`.
    static func isWellFormedKey(_ key: String) -> Bool {
        let bytes = key.utf8
        guard bytes.count == 24, bytes.suffix(2).elementsEqual("==".utf8) else { return false }
        return bytes.prefix(22).allSatisfy { byte in
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                 UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "+"), UInt8(ascii: "/"): true
            default: false
            }
        }
    }

    /// What `connect()` runs: answer 101 and switch this channel from HTTP to WebSocket frames.
    /// It keeps only the request's fields (shared with the request, not copied), not NIO's head.
    private func upgrader(for fields: HTTPFields, _ settings: ConnectionSettings)
        -> @Sendable (HTTPFields, WebSocketOptions, WebSocketSession) async throws -> Void
    {
        let channel = self.channel
        let handler = self.handler
        return { responseFields, options, session in
            let upgrade: @Sendable () -> EventLoopFuture<Void> = {
                // NIO's upgrader reads only the key and the version; it validates and answers with its own code.
                let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: "/", headers: HTTPHeaders([
                    ("Sec-WebSocket-Key", fields[.secWebSocketKey] ?? ""), ("Sec-WebSocket-Version", "13"),
                ]))
                return Self.acceptKeyUpgrader.buildUpgradeResponse(
                    channel: channel, upgradeRequest: head, initialResponseHeaders: HTTPHeaders()
                ).flatMapThrowing { protocolHeaders in
                    // NIO returns only the protocol's own fields; the handler's (subprotocol, extras) go after them.
                    var headers = protocolHeaders
                    headers.add(contentsOf: HTTPHeaders(responseFields))
                    let agreement = options.perMessageDeflate
                        ? PerMessageDeflate.negotiate(fields[values: .secWebSocketExtensions]) : nil
                    if let agreement { headers.replaceOrAdd(name: "Sec-WebSocket-Extensions", value: agreement.responseHeader) }
                    handler.value.writeSwitchingProtocols(headers)
                    try Self.switchToWebSocket(channel, session: session, options: options,
                                               ticker: settings.webSocketTicker(on: channel.eventLoop),
                                               deflate: agreement.map(PerMessageDeflate.init))
                }
            }
            // On the channel's loop (the default executor) the whole upgrade runs at once, without a hop.
            let done = channel.eventLoop.inEventLoop ? upgrade() : channel.eventLoop.flatSubmit(upgrade)
            try await done.get()
        }
    }

    /// Used only to validate the key and compute `Sec-WebSocket-Accept` with NIO's own code.
    private static let acceptKeyUpgrader = NIOWebSocketServerUpgrader(
        maxFrameSize: 1 << 14, automaticErrorHandling: false,
        shouldUpgrade: { channel, _ in channel.eventLoop.makeSucceededFuture(HTTPHeaders()) },
        upgradePipelineHandler: { channel, _ in channel.eventLoop.makeSucceededVoidFuture() }
    )

    /// Adds NIO's frame codec and our session handler, then removes the HTTP handlers; the HTTP
    /// decoder goes last so that bytes that came after the handshake reach the frame decoder.
    private static func switchToWebSocket(_ channel: any Channel, session: WebSocketSession, options: WebSocketOptions,
                                          ticker: WebSocketTicker, deflate: PerMessageDeflate?) throws {
        let sync = channel.pipeline.syncOperations
        let handler = WebSocketChannelHandler(session: session, options: options, ticker: ticker, deflate: deflate)
        try sync.addHandler(WebSocketFrameEncoder())
        // NIO's decoder takes frames up to UInt32.max; a component may ask for more than that.
        try sync.addHandler(ByteToMessageHandler(WebSocketFrameDecoder(maxFrameSize: min(options.maxMessageSize, Int(UInt32.max)))))
        try sync.addHandler(handler)
        session.attach(NIOLoopBound(handler, eventLoop: channel.eventLoop))
        let high = max(options.writeBufferHighWater, 2)
        try channel.syncOptions?.setOption(.writeBufferWaterMark, value: ChannelOptions.Types.WriteBufferWaterMark(low: high / 2, high: high))
        // One read per wake-up keeps NIO's pool of receive buffers at one, the small one (see WebSocketReceiveAllocator).
        try channel.syncOptions?.setOption(.maxMessagesPerRead, value: 1)
        try channel.syncOptions?.setOption(.recvAllocator, value: WebSocketReceiveAllocator())
        sync.removeHandler(context: try sync.context(handlerType: HTTPConnectionHandler.self), promise: nil)
        sync.removeHandler(context: try sync.context(handlerType: HTTPServerPipelineHandler.self), promise: nil)
        sync.removeHandler(context: try sync.context(handlerType: HTTPResponseEncoder.self), promise: nil)
        sync.removeHandler(context: try sync.context(handlerType: ByteToMessageHandler<HTTPRequestDecoder>.self), promise: nil)
    }

    private func logSession(_ logger: Logger, _ received: ReceivedRequest, _ session: WebSocketSession, since start: ContinuousClock.Instant) {
        let stats = session.statistics
        let request = received.request
        logger.info("\(request.clientAddress ?? "-") - \"WEBSOCKET \(request.target)\" closed \(stats.closeCode.map { "\($0.rawValue)" } ?? "-") after \((ContinuousClock.now - start).millisecondsText)ms, \(stats.received) messages in, \(stats.sent) out",
                    metadata: ["request-id": "\(request.id ?? "-")"])
    }

    private func logAccess(_ logger: Logger, _ received: ReceivedRequest, _ status: HTTPResponse.Status, since start: ContinuousClock.Instant) {
        let request = received.request
        logger.info("\(request.clientAddress ?? "-") - \"\(request.method) \(request.target) HTTP/\(received.version.major).\(received.version.minor)\" \(status.code) \(status.reasonPhrase) \((ContinuousClock.now - start).millisecondsText)ms",
                    metadata: ["request-id": "\(request.id ?? "-")"])
    }
}
