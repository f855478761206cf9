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
    func run(app: App, configuration: ServerConfiguration, metrics: ServerMetrics, overLimit: Bool = false) async {
        for await incoming in requests {
            shutdown.state.withLock { $0.busy = true }
            let requestID = app.makeRequestID()
            var request = incoming
            request.request.id = requestID
            let received = request
            let start = ContinuousClock.now
            var response: Response
            if overLimit {
                response = HTTPError(.serviceUnavailable, detail: "Server busy: too many connections").response
            } else if received.wantsWebSocket && received.request.method == .get {
                if let refusal = Self.checkHandshake(received.request) {
                    response = refusal
                } else {
                    let webSocket = WebSocketSession(channel: channel, defaultOptions: configuration.webSocket,
                                                     metrics: metrics, upgrade: upgrader(for: received.head))
                    shutdown.state.withLock { $0.session = webSocket }
                    guard let answer = await app.respond(to: received.request, webSocket: webSocket) else {
                        // Accepted, served and closed: the connection belonged to the WebSocket.
                        metrics.handshake(accepted: true)
                        metrics.closed(code: webSocket.statistics.closeCode)
                        if configuration.accessLog { logSession(app.logger, received, webSocket, since: start) }
                        break
                    }
                    response = answer
                    metrics.handshake(accepted: false)
                }
            } else {
                response = await app.respond(to: received.request) ?? Response(status: .internalServerError)
            }
            // After a request that asked for an upgrade, NIO's parser stops: the connection cannot carry more requests.
            let stopping = shutdown.state.withLock { state in
                state.busy = false
                return state.shuttingDown
            }
            let keepAlive = received.keepAlive && !received.wantsWebSocket && !stopping && !overLimit && !Task.isCancelled
            // Counted before the write, so that a client that saw the response also sees the metric.
            metrics.requestAnswered(status: response.status.code, duration: ContinuousClock.now - start)
            let handler = self.handler
            let finalResponse = response
            channel.eventLoop.execute {
                handler.value.write(finalResponse, version: received.version, keepAlive: keepAlive,
                                    headOnly: received.request.method == .head)
            }
            if configuration.accessLog {
                logAccess(app.logger, received, response.status, since: start)
            }
            if !keepAlive { break }
        }
        // Cancelled (the server is stopping) with the connection still open: close it ourselves.
        if Task.isCancelled { try? await channel.close() }
        try? await channel.closeFuture.get()
    }

    /// A refusal for a WebSocket handshake that is malformed, or `nil` when it is well formed.
    static func checkHandshake(_ request: Request) -> Response? {
        guard request.headers[.secWebSocketVersion] == "13" else {
            return HTTPError(.upgradeRequired, detail: "Unsupported WebSocket version: use 13",
                             headers: [.secWebSocketVersion: "13"]).response
        }
        guard let key = request.headers[.secWebSocketKey], key.utf8.count == 24 else {
            return HTTPError(.badRequest, detail: "Missing or malformed Sec-WebSocket-Key").response
        }
        return nil
    }

    /// What `connect()` runs: answer 101 and switch this channel from HTTP to WebSocket frames.
    private func upgrader(for head: HTTPRequestHead)
        -> @Sendable (HTTPFields, WebSocketOptions, WebSocketSession) async throws -> Void
    {
        let channel = self.channel
        let handler = self.handler
        return { fields, options, session in
            try await channel.eventLoop.flatSubmit {
                Self.acceptKeyUpgrader.buildUpgradeResponse(
                    channel: channel, upgradeRequest: head, initialResponseHeaders: HTTPHeaders()
                ).flatMapThrowing { protocolHeaders in
                    // NIO returns only the protocol's own fields; the handler's (subprotocol, extras) go after them.
                    var headers = protocolHeaders
                    headers.add(contentsOf: HTTPHeaders(fields))
                    let agreement = options.perMessageDeflate
                        ? PerMessageDeflate.negotiate(head.headers[canonicalForm: "sec-websocket-extensions"].map(String.init)) : nil
                    if let agreement { headers.replaceOrAdd(name: "Sec-WebSocket-Extensions", value: agreement.responseHeader) }
                    handler.value.writeSwitchingProtocols(headers)
                    try Self.switchToWebSocket(channel, session: session, options: options,
                                               deflate: agreement.map(PerMessageDeflate.init))
                }
            }.get()
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
                                          deflate: PerMessageDeflate?) throws {
        let sync = channel.pipeline.syncOperations
        let handler = WebSocketChannelHandler(session: session, options: options, deflate: deflate)
        try sync.addHandler(WebSocketFrameEncoder())
        // NIO's decoder takes frames up to UInt32.max; a component may ask for more than that.
        try sync.addHandler(ByteToMessageHandler(WebSocketFrameDecoder(maxFrameSize: min(options.maxMessageSize, Int(UInt32.max)))))
        try sync.addHandler(handler)
        session.attach(NIOLoopBound(handler, eventLoop: channel.eventLoop))
        let high = max(options.writeBufferHighWater, 2)
        try channel.syncOptions?.setOption(.writeBufferWaterMark, value: ChannelOptions.Types.WriteBufferWaterMark(low: high / 2, high: high))
        _ = sync.removeHandler(context: try sync.context(handlerType: HTTPConnectionHandler.self))
        _ = sync.removeHandler(context: try sync.context(handlerType: HTTPServerPipelineHandler.self))
        _ = sync.removeHandler(context: try sync.context(handlerType: HTTPResponseEncoder.self))
        _ = sync.removeHandler(context: try sync.context(handlerType: ByteToMessageHandler<HTTPRequestDecoder>.self))
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
