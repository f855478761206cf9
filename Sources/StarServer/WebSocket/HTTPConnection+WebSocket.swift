import HTTPTypes
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPTypesHTTP1
import NIOWebSocket
import Star
import StarWebSocketEngine
import StarWebSocketNIO
import Synchronization

/// The WebSocket half of a connection's task: running a handshake's route, the upgrade that
/// `connect()` performs (101, then the pipeline switched from HTTP to WebSocket frames), and the
/// session's access-log line.
extension HTTPConnection {
    /// Runs a well-formed WebSocket handshake's route; returns whether the connection is done
    /// (always, unless the route denied the handshake with a keep-alive response).
    ///
    /// An open session keeps this function's async frame: it holds the request, the session and
    /// the start time, and everything before and after the handler runs in never-inlined plain
    /// functions (their temporaries would otherwise live in this frame: 1,312 bytes, measured).
    @inline(never)
    func serveWebSocket(_ received: ReceivedRequest, _ settings: ConnectionSettings) async -> Bool {
        let start = ContinuousClock.now
        let session = beginWebSocket(received, settings)
        let denial = await settings.app.respond(to: received.request, webSocket: session)
        return endWebSocket(received, session, denial: denial, settings, since: start)
    }

    /// Opens the request's session (registered for graceful shutdown).
    @inline(never)
    private func beginWebSocket(_ received: ReceivedRequest, _ settings: ConnectionSettings) -> WebSocketSession {
        shutdown.state.withLock { $0.busy = true }
        let session = WebSocketSession(channel: channel, defaultOptions: settings.configuration.webSocket,
                                       metrics: settings.metrics, executor: settings.executor(for: channel.eventLoop),
                                       upgrade: upgrader(for: received.request.headers, settings))
        shutdown.state.withLock { $0.session = session }
        return session
    }

    /// After the route: an accepted session was served and closed (the connection belonged to the
    /// WebSocket); a denial is written as an HTTP response. Returns whether the connection is done.
    @inline(never)
    private func endWebSocket(_ received: ReceivedRequest, _ session: WebSocketSession, denial: Response?,
                              _ settings: ConnectionSettings, since start: ContinuousClock.Instant) -> Bool {
        guard let denial else {
            settings.metrics.handshake(accepted: true)
            settings.metrics.closed(code: session.mailbox.statistics.closeCode)
            if settings.configuration.accessLog { logSession(settings.app.logger, received, session, since: start) }
            return true
        }
        settings.metrics.handshake(accepted: false)
        return finish(received, denial, settings, overLimit: false, since: start)
    }

    /// What `connect()` runs: answer 101 and switch this channel from HTTP to WebSocket frames — or,
    /// on an HTTP/2 stream (RFC 8441), answer 200 and carry the frames in the stream's DATA frames.
    /// It keeps only the request's fields (shared with the request, not copied), not NIO's head.
    private func upgrader(for fields: HTTPFields, _ settings: ConnectionSettings)
        -> @Sendable (HTTPFields, WebSocketOptions, WebSocketSession) async throws -> Void
    {
        let channel = self.channel
        let handler = self.handler
        let overHTTP2 = isHTTP2Stream
        return { responseFields, options, session in
            let upgrade: @Sendable () throws -> Void = {
                var headers = HTTPHeaders()
                if !overHTTP2 {  // HTTP/2 has no key (RFC 8441 §5); run() checked this one before routing
                    headers.add(name: "Upgrade", value: "websocket")
                    headers.add(name: "Sec-WebSocket-Accept",
                                value: WebSocketHandshakeRules.acceptValue(forKey: fields[.secWebSocketKey] ?? ""))
                    headers.add(name: "Connection", value: "upgrade")
                }
                // The handler's fields (subprotocol, extras) go after the protocol's own.
                headers.add(contentsOf: HTTPHeaders(responseFields))
                let agreement = options.perMessageDeflate
                    ? PerMessageDeflate.negotiate(fields[values: .secWebSocketExtensions]) : nil
                if let agreement { headers.replaceOrAdd(name: "Sec-WebSocket-Extensions", value: agreement.responseHeader) }
                let ticker = settings.webSocketTicker(on: channel.eventLoop)
                let deflate = agreement.map(PerMessageDeflate.init)
                if overHTTP2 {
                    handler.value.writeWebSocketAccepted(headers)
                    try Self.switchStreamToWebSocket(channel, session: session, options: options, ticker: ticker, deflate: deflate)
                } else {
                    handler.value.writeSwitchingProtocols(headers)
                    try Self.switchToWebSocket(channel, session: session, options: options, ticker: ticker, deflate: deflate)
                }
            }
            // On the channel's loop (the default executor) the whole upgrade runs at once: no future,
            // no suspension.
            if channel.eventLoop.inEventLoop {
                try upgrade()
            } else {
                try await channel.eventLoop.submit(upgrade).get()
            }
        }
    }

    /// Adds our session handler (the session's codec: it cuts frames and writes them itself), then
    /// removes the HTTP handlers; the HTTP decoder goes last so that bytes that came after the
    /// handshake reach the session handler.
    private static func switchToWebSocket(_ channel: any Channel, session: WebSocketSession, options: WebSocketOptions,
                                          ticker: WebSocketTicker, deflate: PerMessageDeflate?) throws {
        let sync = channel.pipeline.syncOperations
        let handler = WebSocketChannelHandler(session: session, options: options, ticker: ticker, deflate: deflate,
                                              now: channel.eventLoop.now)
        try sync.addHandler(handler)
        session.attach(NIOLoopBound(handler, eventLoop: channel.eventLoop))
        let high = max(options.writeBufferHighWater, 2)
        try channel.syncOptions?.setOption(.writeBufferWaterMark, value: ChannelOptions.Types.WriteBufferWaterMark(low: high / 2, high: high))
        // One read per wake-up keeps NIO's pool of receive buffers at one, the small one (see WebSocketReceiveAllocator).
        try channel.syncOptions?.setOption(.maxMessagesPerRead, value: 1)
        try channel.syncOptions?.setOption(.recvAllocator, value: WebSocketReceiveAllocator())
        // HTTP/1's half-closure (see Server.configure) does not apply: a WebSocket peer's EOF is its end.
        try channel.syncOptions?.setOption(.allowRemoteHalfClosure, value: false)
        sync.removeHandler(context: try sync.context(handlerType: HTTPConnectionHandler.self), promise: nil)
        sync.removeHandler(context: try sync.context(handlerType: HTTPResponseEncoder.self), promise: nil)
        sync.removeHandler(context: try sync.context(handlerType: ByteToMessageHandler<HTTPRequestDecoder>.self), promise: nil)
    }

    /// The same for an HTTP/2 stream: the stream's DATA frames carry the WebSocket's bytes
    /// (``HTTP2WebSocketStreamHandler``, behind NIO's HTTP/2-to-HTTP/1 codec, which stays), and its
    /// flow control is the session's backpressure. A stream channel takes no socket options (NIO's
    /// stream channel traps on them); the read held since the request arrived is passed on.
    private static func switchStreamToWebSocket(_ channel: any Channel, session: WebSocketSession, options: WebSocketOptions,
                                                ticker: WebSocketTicker, deflate: PerMessageDeflate?) throws {
        let sync = channel.pipeline.syncOperations
        sync.removeHandler(context: try sync.context(handlerType: HTTPConnectionHandler.self), promise: nil)
        let handler = WebSocketChannelHandler(session: session, options: options, ticker: ticker, deflate: deflate,
                                              now: channel.eventLoop.now, endsStreamAfterCloseFrame: true)
        try sync.addHandler(HTTP2WebSocketStreamHandler())
        try sync.addHandler(handler)
        session.attach(NIOLoopBound(handler, eventLoop: channel.eventLoop))
        channel.read()
    }

    private func logSession(_ logger: Logger, _ received: ReceivedRequest, _ session: WebSocketSession, since start: ContinuousClock.Instant) {
        let stats = session.mailbox.statistics
        let request = received.request
        logger.info("\(request.clientAddress ?? "-") - \"WEBSOCKET \(request.target)\" closed \(stats.closeCode.map { "\($0.rawValue)" } ?? "-") after \((ContinuousClock.now - start).millisecondsText)ms, \(stats.received) messages in, \(stats.sent) out",
                    metadata: ["request-id": "\(request.id ?? "-")"])
    }
}
