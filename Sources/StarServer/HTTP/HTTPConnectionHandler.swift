import HTTPTypes
import NIOCore
import NIOHTTP1
import NIOHTTPTypesHTTP1
import Star

/// One complete request as the connection handler hands it to the connection's task.
struct ReceivedRequest: Sendable {
    /// The request with its whole body.
    var request: Request
    /// The version and keep-alive rules of HTTP/1.
    var version: HTTPVersion
    var keepAlive: Bool
    /// Whether the client asked for a WebSocket upgrade.
    var wantsWebSocket: Bool
}

/// Collects the parts of each request into a ``ReceivedRequest`` (enforcing the body limit
/// while the body streams in) and writes responses. Lives on the channel's event loop; the
/// connection's task talks to it only through ``HTTPConnection``.
final class HTTPConnectionHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private enum State {
        case idle
        case receiving(head: HTTPRequestHead, body: ByteBuffer)
        /// A request was refused while its body still streams in; its remaining parts are ignored.
        case discarding
    }

    private let clientAddress: String?
    private let scheme: String
    private let settings: ConnectionSettings
    private var configuration: ServerConfiguration { settings.configuration }
    private var maxBodySize: Int { settings.app.maxBodySize }
    private let requests: AsyncStream<ReceivedRequest>.Continuation
    private var state = State.idle
    private var context: ChannelHandlerContext?
    /// Whether the app is answering a request (its response not yet written).
    private var responding = false
    /// A parse error arrived while responding: close once the response is out.
    private var closeAfterResponse = false
    /// What the connection waits for from the client: a request head (the header-read timeout on a
    /// new connection, the keep-alive timeout between requests: past it the connection closes) or
    /// more of a request body (``ServerConfiguration/requestBodyTimeout`` since the last part: past
    /// it 408, then close).
    private enum Awaited { case head, body }
    /// Until when the connection waits for ``Awaited``; `nil` while the app has the request.
    private var readDeadline: (deadline: NIODeadline, awaited: Awaited)?
    /// The one timer that enforces ``readDeadline``. It is not rescheduled per request (that cost
    /// a heap insert and removal per response, measured at ~5 % of CPU): when it fires early it
    /// re-arms itself for the current deadline, and when there is none it lapses.
    private var readTimer: (task: Scheduled<Void>, due: NIODeadline)?
    /// Whether the peer is a trusted proxy whose forwarding headers count (fixed per connection).
    private let trustsProxy: Bool

    init(clientAddress: String?, scheme: String, settings: ConnectionSettings,
         requests: AsyncStream<ReceivedRequest>.Continuation) {
        self.clientAddress = clientAddress
        self.scheme = scheme
        self.settings = settings
        self.requests = requests
        self.trustsProxy = ForwardedHeaders.trusts(clientAddress, configuration: settings.configuration)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        startWaiting(for: .head, within: configuration.headerReadTimeout, context: context)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        readTimer?.task.cancel()
        readTimer = nil
        self.context = nil
    }

    private func startWaiting(for awaited: Awaited, within timeout: Duration, context: ChannelHandlerContext) {
        let deadline = NIODeadline.now() + TimeAmount(timeout)
        readDeadline = (deadline, awaited)
        // A timer due later than the new deadline (the header-read timer when the shorter
        // keep-alive timeout takes over) must not stand: re-arm it.
        if let timer = readTimer, timer.due <= deadline { return }
        armReadTimer(for: deadline, context: context)
    }

    private func armReadTimer(for deadline: NIODeadline, context: ChannelHandlerContext) {
        readTimer?.task.cancel()
        let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
        let task = context.eventLoop.scheduleTask(deadline: deadline) { handler.value.readTimerFired() }
        readTimer = (task, deadline)
    }

    private func readTimerFired() {
        readTimer = nil
        guard let context, let (deadline, awaited) = readDeadline else { return }
        guard deadline <= .now() else { return armReadTimer(for: deadline, context: context) }
        readDeadline = nil
        switch awaited {
        case .head:
            context.close(promise: nil)
        case .body:
            refuse(context: context, .requestTimeout, "The request body stopped arriving")
        }
    }

    /// Waits for the rest of a body (or for more of it) within the request-body timeout.
    private func awaitBody(context: ChannelHandlerContext) {
        if let timeout = configuration.requestBodyTimeout { startWaiting(for: .body, within: timeout, context: context) }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch (unwrapInboundIn(data), state) {
        case (.head(let head), _):
            readDeadline = nil
            let length = head.headers.first(name: "content-length").flatMap(Int.init)
            if let length, length > maxBodySize {
                refuse(context: context, .contentTooLarge, "Request body is larger than \(maxBodySize) bytes")
                return
            }
            state = .receiving(head: head, body: context.channel.allocator.buffer(capacity: 0))
            if (length ?? 0) > 0 || head.headers.contains(name: "transfer-encoding") {
                awaitBody(context: context)
                // The client waits for this before it sends the body (RFC 9110 §10.1.1); the body
                // fits the limit (a larger declared one was refused above), so ask for it.
                if head.version.minor >= 1, head.headers.lists("100-continue", in: "expect") {
                    context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .continue))),
                                          promise: nil)
                }
            }
        case (.body(var part), .receiving(let head, var body)):
            guard body.readableBytes + part.readableBytes <= maxBodySize else {
                refuse(context: context, .contentTooLarge, "Request body is larger than \(maxBodySize) bytes")
                return
            }
            state = .idle  // let `body` be uniquely referenced while we append
            body.writeBuffer(&part)
            state = .receiving(head: head, body: body)
            awaitBody(context: context)
        case (.end, .receiving(let head, let body)):
            readDeadline = nil
            state = .idle
            deliver(context: context, head: head, body: body)
        case (.body, _), (.end, _):
            if case .discarding = state, case .end = unwrapInboundIn(data) { state = .idle }
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        requests.finish()
        context.fireChannelInactive()
    }

    /// NIO's parser refused the bytes: answer 431 for an oversized head, 400 otherwise, then close.
    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let parseError = error as? HTTPParserError else {
            requests.finish()
            context.close(promise: nil)
            return
        }
        requests.finish()
        guard !responding else {
            closeAfterResponse = true
            return
        }
        if case .headerOverflow = parseError {
            refuse(context: context, .init(code: 431, reasonPhrase: "Request Header Fields Too Large"), "Request head too large")
        } else {
            refuse(context: context, .badRequest, "Malformed request")
        }
    }

    private func deliver(context: ChannelHandlerContext, head: HTTPRequestHead, body: ByteBuffer) {
        let request: HTTPRequest
        do {
            request = try HTTPRequest(head, secure: false, splitCookie: false)
        } catch {
            refuse(context: context, .badRequest, "Malformed request")
            return
        }
        let upgrade = head.headers.lists("websocket", in: "upgrade")
        // llhttp stops parsing after any request it takes for an upgrade (Upgrade plus
        // `Connection: upgrade`, or CONNECT): such a connection cannot carry another request.
        let parserStopped = head.method == .CONNECT
            || (head.headers.contains(name: "upgrade") && head.headers.lists("upgrade", in: "connection"))
        var forwarded = ForwardedHeaders.apply(to: request, clientAddress: clientAddress, scheme: scheme,
                                               trusted: trustsProxy)
        if upgrade { forwarded.request.scheme = forwarded.request.scheme == "https" ? "wss" : "ws" }
        if !configuration.rootPath.isEmpty, let path = forwarded.request.path, path.hasPrefix(configuration.rootPath) {
            let rest = path.dropFirst(configuration.rootPath.count)
            if rest.isEmpty || rest.first == "/" || rest.first == "?" {
                forwarded.request.path = rest.first == "/" ? String(rest) : "/" + rest
            }
        }
        responding = true
        requests.yield(ReceivedRequest(
            request: Request(head: forwarded.request, body: body, clientAddress: forwarded.clientAddress,
                             rootPath: configuration.rootPath),
            version: head.version, keepAlive: head.isKeepAlive && !parserStopped, wantsWebSocket: upgrade
        ))
    }

    /// Answers an error before the app sees the request, then closes the connection: the rest
    /// of the request cannot be trusted to be read.
    private func refuse(context: ChannelHandlerContext, _ status: HTTPResponse.Status, _ detail: String) {
        state = .discarding
        let response = HTTPError(status, detail: detail).response
        write(response, version: .http1_1, keepAlive: false, headOnly: false, context: context)
    }

    /// Writes `101 Switching Protocols` with `headers`; must run on the event loop.
    func writeSwitchingProtocols(_ headers: HTTPHeaders) {
        guard let context else { return }
        responding = false
        let head = HTTPResponseHead(version: .http1_1, status: .switchingProtocols, headers: headers)
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }

    /// Writes a response; must run on the event loop. Closes the connection unless `keepAlive`.
    func write(_ response: Response, version: HTTPVersion, keepAlive: Bool, headOnly: Bool) {
        guard let context else { return }
        responding = false
        let keepAlive = keepAlive && !closeAfterResponse
        // The timer starts before the write: writing the end lets the pipelining handler pass on a
        // request that is already waiting, whose head then cancels the timer.
        if keepAlive { startWaiting(for: .head, within: configuration.keepAliveTimeout, context: context) }
        write(response, version: version, keepAlive: keepAlive, headOnly: headOnly, context: context)
    }

    private func write(_ response: Response, version: HTTPVersion, keepAlive: Bool, headOnly: Bool, context: ChannelHandlerContext) {
        var head = HTTPResponseHead(response.head)
        head.version = version
        let status = response.status.code
        let bodyAllowed = status >= 200 && status != 204 && status != 304
        if bodyAllowed {
            head.headers.replaceOrAdd(name: "content-length", value: String(response.body.readableBytes))
        }
        if !keepAlive { head.headers.replaceOrAdd(name: "connection", value: "close") }
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        if bodyAllowed && !headOnly && response.body.readableBytes > 0 {
            context.write(wrapOutboundOut(.body(.byteBuffer(response.body))), promise: nil)
        }
        let done = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: done)
        if !keepAlive {
            let channel = context.channel
            done.futureResult.whenComplete { _ in channel.close(promise: nil) }
        }
    }
}
