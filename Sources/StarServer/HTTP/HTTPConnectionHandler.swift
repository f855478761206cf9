import HTTPTypes
import NIOCore
import NIOHTTP1
import NIOHTTPTypesHTTP1
import Star

/// One request as the connection handler hands it to the connection's task.
///
/// A class: the async frames that an open WebSocket keeps for its whole life hold it, and a
/// reference is one word where the value was ~190 bytes in each of them (see docs/decisions.md, "Memory").
final class ReceivedRequest: Sendable {
    /// The request: its body whole when it arrived with the head, else streaming in.
    let request: Request
    /// The version and keep-alive rules of HTTP/1.
    let version: HTTPVersion
    let keepAlive: Bool
    /// Whether the client asked for a WebSocket upgrade.
    let wantsWebSocket: Bool

    init(request: Request, version: HTTPVersion, keepAlive: Bool, wantsWebSocket: Bool) {
        self.request = request
        self.version = version
        self.keepAlive = keepAlive
        self.wantsWebSocket = wantsWebSocket
    }
}

/// Turns the parts of each request into a ``ReceivedRequest`` and writes responses. Lives on the
/// channel's event loop; the connection's task talks to it only through ``HTTPConnection``.
///
/// A body that arrives with its head (its end within the same burst of reads, up to
/// ``bufferedBodyLimit``) is delivered whole: the fast path. Any other body is delivered as a
/// ``RequestBodyStream`` that this handler feeds, and it stops reading the socket while the stream
/// holds its high-water mark unread, until the handler's task asks for more (backpressure to the
/// client). A request with `Expect: 100-continue` is delivered at once, and `100 Continue` is
/// written when the app first reads its body.
///
/// The same handler serves each HTTP/2 stream, behind NIO's HTTP/2-to-HTTP/1 codec: a stream is a
/// connection that carries one request (its version 2.0 is never kept alive). An extended CONNECT
/// with `:protocol websocket` (RFC 8441, reported by ``ExtendedConnectReader``) is delivered at once
/// as the `GET` of a WebSocket handshake, with reads held until the session takes the stream over.
final class HTTPConnectionHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    /// The most body bytes collected before a request is delivered with a streamed body instead.
    static let bufferedBodyLimit = 1 << 20

    private enum State {
        case idle
        /// A request whose body is being collected, to deliver it whole. `hasBody` is false for a
        /// request that declares none (its end follows its head, perhaps after a pipelining pause).
        case receiving(head: HTTPRequestHead, body: ByteBuffer, hasBody: Bool)
        /// The request was delivered; the rest of its body goes to the stream.
        case streaming(RequestBodyStream)
        /// A request was refused while its body still streams in; its remaining parts are ignored.
        case discarding
    }

    private let clientAddress: String?
    private let scheme: String
    private let settings: ConnectionSettings
    private var configuration: ServerConfiguration { settings.configuration }
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
    /// A streamed body holds its high-water mark unread: reads wait for the app (``bodyDemanded()``).
    private var bodyPaused = false
    /// A `read` that arrived while paused, to pass on once the app asks for more.
    private var readPending = false
    /// The version of a request whose client waits for `100 Continue` until the app reads its body.
    private var continueVersion: HTTPVersion?
    /// The `:protocol` of the HTTP/2 request whose head comes next (RFC 8441), from ``ExtendedConnectReader``.
    private var extendedConnectProtocol: String?
    private let readPolicy: ReadPolicy
    /// What arrived after a complete request while the app answers it (HTTP/1 pipelining), delivered in
    /// order once the response ends; reads are held while it holds anything. Made on first use.
    private var waiting: CircularBuffer<Waiting>?
    private enum Waiting {
        case part(HTTPServerRequestPart)
        case parseError(HTTPParserError)
        case inputClosed
    }
    /// The client closed its sending side (``ReadPolicy/readAhead``): the connection closes once the
    /// responses it is owed are out.
    private var inputClosed = false
    /// The response being written streams its body (``writeHead(of:version:keepAlive:)`` until its end).
    private var streamingResponse = false
    /// Reads asked for since a request after which llhttp parses nothing (an upgrade, a CONNECT)
    /// was delivered: bytes the client sends before its answer stay in the decoder, so the read
    /// after the request's own burst goes on and the next is held until the answer (the decoder
    /// keeps one burst at most).
    private var readsAfterUpgradeRequest: Int?

    /// How reads go while the app answers a request.
    ///
    /// NIO's `HTTPServerPipelineHandler`, which Star used before, held the socket's read from every
    /// complete request until its response ended: NIOPosix unregisters a socket whose read is held
    /// and registers it again afterwards, two `epoll_ctl` calls per request and per WebSocket
    /// handshake (strace) that a client waiting for its answer does not need.
    enum ReadPolicy {
        /// Reads go on: what a pipelining client sends meanwhile waits in ``waiting`` (reads are
        /// held only then), and the client's half-close (the channel allows remote half-closure)
        /// closes the connection after the responses it is owed. Cleartext HTTP/1.
        case readAhead
        /// Reads wait from a complete request until its response ends, as NIO's handler did. TLS:
        /// NIOSSL reports a client's ragged EOF as an error before the half-close, and this keeps
        /// such a client's response from being cut off by it.
        case holdWhileResponding
        /// A channel that carries one request: an HTTP/2 stream.
        case singleRequest
    }

    init(clientAddress: String?, scheme: String, settings: ConnectionSettings, readPolicy: ReadPolicy,
         requests: AsyncStream<ReceivedRequest>.Continuation) {
        self.clientAddress = clientAddress
        self.scheme = scheme
        self.settings = settings
        self.readPolicy = readPolicy
        self.requests = requests
        self.trustsProxy = ForwardedHeaders.trusts(clientAddress, configuration: settings.configuration)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        startWaiting(for: .head, within: configuration.headerReadTimeout, context: context)
    }

    /// A handler that leaves the pipeline (a WebSocket took the connection over, or HTTP/2 did)
    /// delivers no more requests.
    func handlerRemoved(context: ChannelHandlerContext) {
        readTimer?.task.cancel()
        readTimer = nil
        requests.finish()
        self.context = nil
        // The handlers that take over read on their own: a read held here goes on.
        if readPending {
            readPending = false
            context.read()
        }
        // A client that stopped sending before the switch will not send a WebSocket's close either.
        if inputClosed { context.close(promise: nil) }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ExtendedConnectReader.Event {
            extendedConnectProtocol = event.protocolName
        } else if case .readAhead = readPolicy, let event = event as? ChannelEvent, case .inputClosed = event {
            // Behind parts that wait it waits too; otherwise it counts at once (the response being
            // prepared says `Connection: close`).
            if hasWaiting { enqueue(.inputClosed) } else { clientStoppedSending(context: context) }
        } else {
            context.fireUserInboundEventTriggered(event)
        }
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
            let timedOut = HTTPError(.requestTimeout, detail: "The request body stopped arriving")
            if case .streaming(let stream) = state {
                // The app has the request: its read fails with the 408, which it answers (and the
                // connection closes after that response, its body unfinished).
                stream.finish(throwing: timedOut)
                state = .discarding
            } else {
                refuse(context: context, timedOut.status, timedOut.detail)
            }
        }
    }

    /// Waits for the rest of a body (or for more of it) within the request-body timeout.
    private func awaitBody(context: ChannelHandlerContext) {
        if let timeout = configuration.requestBodyTimeout { startWaiting(for: .body, within: timeout, context: context) }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        if waitsBehindResponse { return enqueue(.part(part)) }
        receive(part, context: context)
    }

    /// Whether what arrives now must wait: a complete request is being answered, or earlier parts
    /// already wait.
    private var waitsBehindResponse: Bool { hasWaiting || answeringCompleteRequest }

    /// Whether parts, a parse error or the client's half-closure wait behind a response.
    private var hasWaiting: Bool { !(waiting?.isEmpty ?? true) }

    /// Whether a response is being prepared for a request that has been read whole.
    private var answeringCompleteRequest: Bool {
        guard responding, case .idle = state else { return false }
        return true
    }

    private func enqueue(_ event: Waiting) {
        if waiting == nil { waiting = CircularBuffer(initialCapacity: 4) }
        waiting!.append(event)
    }

    /// Delivers what waited behind a response that ended, until a request is being answered again;
    /// lets a held read through once nothing waits.
    private func deliverWaiting(context: ChannelHandlerContext) {
        while !answeringCompleteRequest, let next = waiting?.popFirst() {
            switch next {
            case .part(let part): receive(part, context: context)
            case .parseError(let error): fail(error, context: context)
            case .inputClosed: clientStoppedSending(context: context)
            }
        }
        passHeldRead(context: context)
    }

    /// The client closed its sending side: a body it was sending is cut short, no request follows,
    /// and the connection closes after the response being prepared — at once if none is, or if the
    /// response streams (an event stream or a download to a client that left is cancelled, as
    /// before half-closure was allowed).
    private func clientStoppedSending(context: ChannelHandlerContext) {
        inputClosed = true
        switch state {
        case .streaming(let stream):
            stream.finish(throwing: ChannelError.eof)
            state = .discarding
        case .receiving:
            state = .discarding
        case .idle, .discarding:
            break
        }
        requests.finish()
        if !responding || streamingResponse { context.close(promise: nil) }
    }

    private func receive(_ part: HTTPServerRequestPart, context: ChannelHandlerContext) {
        switch (part, state) {
        case (.head(var head), _):
            readDeadline = nil
            continueVersion = nil
            if head.method == .CONNECT, let name = extendedConnectProtocol.take() {
                // RFC 8441: the stream itself is the WebSocket; it has no body to collect. Reads
                // wait until the session takes the stream over (or the denial closes it).
                head.method = .GET
                state = .discarding
                bodyPaused = true
                deliver(context: context, head: head, body: RequestBody(), extendedConnect: name)
                return
            }
            let length = head.headers.first(name: "content-length").flatMap(Int.init) ?? 0
            let hasBody = length > 0 || head.headers.contains(name: "transfer-encoding")
            state = .receiving(head: head, body: context.channel.allocator.buffer(capacity: 0), hasBody: hasBody)
            if hasBody {
                awaitBody(context: context)
                // The client sends the body only after `100 Continue` (RFC 9110 §10.1.1), which
                // waits for the app to read it (a route that refuses the body answers without it).
                if head.version.minor >= 1, head.headers.lists("100-continue", in: "expect") {
                    continueVersion = head.version
                    stream(context: context)
                }
            }
        case (.body(var part), .receiving(let head, var body, let hasBody)):
            state = .idle  // let `body` be uniquely referenced while we append
            body.writeBuffer(&part)
            state = .receiving(head: head, body: body, hasBody: hasBody)
            awaitBody(context: context)
            if body.readableBytes > Self.bufferedBodyLimit { stream(context: context) }
        case (.body(let part), .streaming(let stream)):
            if stream.yield(part) {
                awaitBody(context: context)
            } else {
                bodyPaused = true
                readDeadline = nil  // the app is behind, not the client
            }
        case (.end, .receiving(let head, let body, _)):
            readDeadline = nil
            state = .idle
            deliver(context: context, head: head, body: RequestBody(body))
        case (.end, .streaming(let stream)):
            readDeadline = nil
            state = .idle
            stream.finish()
            // Parts already read may end the body after reads were held: the next request needs them.
            resumeReading(context: context)
        case (.body, _), (.end, _):
            if case .discarding = state, case .end = part { state = .idle }
        }
    }

    /// The reads of this burst are done: a body still being collected is delivered as a stream now,
    /// so that the app starts while the rest arrives.
    func channelReadComplete(context: ChannelHandlerContext) {
        if case .receiving(_, _, hasBody: true) = state { stream(context: context) }
        context.fireChannelReadComplete()
    }

    /// Delivers the request being received with a streamed body, seeded with what arrived so far.
    private func stream(context: ChannelHandlerContext) {
        guard case .receiving(let head, let body, _) = state else { return }
        let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
        let eventLoop = context.eventLoop
        let stream = RequestBodyStream(demand: { eventLoop.execute { handler.value.bodyDemanded() } })
        if body.readableBytes > 0, !stream.yield(body) { bodyPaused = true }
        state = .streaming(stream)
        deliver(context: context, head: head, body: RequestBody(stream: stream))
    }

    /// The app reads the body: answer `Expect: 100-continue`, and read the socket again if paused.
    private func bodyDemanded() {
        guard let context, case .streaming = state else { return }
        if let version = continueVersion {
            continueVersion = nil
            context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: version, status: .continue))), promise: nil)
        }
        guard bodyPaused else { return }
        awaitBody(context: context)
        resumeReading(context: context)
    }

    /// Lets reads through again after a streamed body's pause, passing on one that was held.
    private func resumeReading(context: ChannelHandlerContext) {
        bodyPaused = false
        passHeldRead(context: context)
    }

    private func passHeldRead(context: ChannelHandlerContext) {
        if readPending && !holdsReads {
            readPending = false
            context.read()
        }
    }

    /// Whether reads wait: a streamed body holds its high-water mark unread, parts wait behind a
    /// response, bytes may wait in the decoder after an upgrade request, or
    /// (``ReadPolicy/holdWhileResponding``) a complete request is being answered.
    private var holdsReads: Bool {
        if bodyPaused || hasWaiting || (readsAfterUpgradeRequest ?? 0) > 1 { return true }
        guard case .holdWhileResponding = readPolicy else { return false }
        return answeringCompleteRequest
    }

    func read(context: ChannelHandlerContext) {
        if let reads = readsAfterUpgradeRequest { readsAfterUpgradeRequest = reads + 1 }
        if holdsReads { readPending = true } else { context.read() }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if case .streaming(let stream) = state { stream.finish(throwing: ChannelError.eof) }
        state = .idle
        waiting = nil
        requests.finish()
        context.fireChannelInactive()
    }

    /// NIO's parser refused the bytes: answer 431 for an oversized head, 400 otherwise, then close
    /// (after the responses owed to requests before them). Any other error closes the connection.
    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let parseError = error as? HTTPParserError, waitsBehindResponse { return enqueue(.parseError(parseError)) }
        fail(error, context: context)
    }

    private func fail(_ error: any Error, context: ChannelHandlerContext) {
        if case .streaming(let stream) = state {
            stream.finish(throwing: error)
            state = .discarding
        }
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

    private func deliver(context: ChannelHandlerContext, head: HTTPRequestHead, body: RequestBody,
                         extendedConnect: String? = nil) {
        let request: HTTPRequest
        do {
            request = try HTTPRequest(head, secure: false, splitCookie: false)
        } catch {
            refuse(context: context, .badRequest, "Malformed request")
            return
        }
        let upgrade = extendedConnect.map { $0.lowercased() == "websocket" } ?? head.headers.lists("websocket", in: "upgrade")
        // llhttp stops parsing after any request it takes for an upgrade (Upgrade plus
        // `Connection: upgrade`, or CONNECT): such a connection cannot carry another request.
        let parserStopped = head.method == .CONNECT
            || (head.headers.contains(name: "upgrade") && head.headers.lists("upgrade", in: "connection"))
        var forwarded = ForwardedHeaders.apply(to: consume request, clientAddress: clientAddress, scheme: scheme,
                                               trusted: trustsProxy)
        if upgrade { forwarded.request.scheme = forwarded.request.scheme == "https" ? "wss" : "ws" }
        if !configuration.rootPath.isEmpty, let path = forwarded.request.path, path.hasPrefix(configuration.rootPath) {
            let rest = path.dropFirst(configuration.rootPath.count)
            if rest.isEmpty || rest.first == "/" || rest.first == "?" {
                forwarded.request.path = rest.first == "/" ? String(rest) : "/" + rest
            }
        }
        responding = true
        if parserStopped { readsAfterUpgradeRequest = 0 }
        var delivered = Request(head: forwarded.request, body: body, clientAddress: forwarded.clientAddress,
                                rootPath: configuration.rootPath)
        delivered.httpVersion = Request.HTTPVersion(major: head.version.major, minor: head.version.minor)
        delivered.id = settings.app.makeRequestID()
        requests.yield(ReceivedRequest(
            request: delivered,
            version: head.version, keepAlive: head.isKeepAlive && !parserStopped, wantsWebSocket: upgrade
        ))
    }

    /// Answers an error before the app sees the request (or while its body streams in), then closes
    /// the connection: the rest of the request cannot be trusted to be read.
    private func refuse(context: ChannelHandlerContext, _ status: HTTPResponse.Status, _ detail: String) {
        state = .discarding
        let response = HTTPError(status, detail: detail).response
        write(response, version: .http1_1, keepAlive: false, headOnly: false, context: context)
    }

    /// Writes `101 Switching Protocols` with `headers`; must run on the event loop.
    func writeSwitchingProtocols(_ headers: HTTPHeaders) {
        guard let context else { return }
        responding = false
        readsAfterUpgradeRequest = nil
        let head = HTTPResponseHead(version: .http1_1, status: .switchingProtocols, headers: headers)
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }

    /// Writes the `200` that accepts a WebSocket over an HTTP/2 stream (RFC 8441 §5), without ending
    /// the stream: its DATA frames carry the session from now on. Must run on the event loop.
    func writeWebSocketAccepted(_ headers: HTTPHeaders) {
        guard let context else { return }
        responding = false
        let head = HTTPResponseHead(version: .http2, status: .ok, headers: headers)
        context.writeAndFlush(wrapOutboundOut(.head(head)), promise: nil)
    }

        /// Writes a response whose body is one buffer; must run on the event loop. Closes the connection
    /// unless `keepAlive`.
    func write(_ response: Response, version: HTTPVersion, keepAlive: Bool, headOnly: Bool) {
        guard let context else { return }
        write(response, version: version, keepAlive: keepAlive, headOnly: headOnly, context: context)
    }

    private func write(_ response: Response, version: HTTPVersion, keepAlive: Bool, headOnly: Bool, context: ChannelHandlerContext) {
        let body = response.body.buffer ?? ByteBuffer()
        let bodyAllowed = Self.bodyAllowed(response.status)
        context.write(wrapOutboundOut(.head(head(of: response, version: version, length: body.readableBytes, keepAlive: keepAlive))),
                      promise: nil)
        if bodyAllowed && !headOnly && body.readableBytes > 0 {
            context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        }
        end(keepAlive: keepAlive, context: context)
    }

    /// Writes the head of a response whose body streams; ``writeBodyPart(_:promise:)`` and
    /// ``endResponse(keepAlive:)`` (or ``abortResponse()``) follow. Must run on the event loop.
    func writeHead(of response: Response, version: HTTPVersion, keepAlive: Bool) {
        guard let context else { return }
        // A client that stopped sending gets no stream: its writer sees the connection close.
        if inputClosed { return context.close(promise: nil) }
        streamingResponse = true
        let head = head(of: response, version: version, length: response.body.contentLength, keepAlive: keepAlive)
        context.writeAndFlush(wrapOutboundOut(.head(head)), promise: nil)
    }

    /// Writes one chunk of a streamed body; `promise` completes once it is written to the socket.
    func writeBodyPart(_ chunk: ByteBuffer, promise: EventLoopPromise<Void>?) {
        guard let context else { promise?.fail(ChannelError.ioOnClosedChannel); return }
        context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(chunk))), promise: promise)
    }

    /// Ends a streamed response; closes the connection unless `keepAlive`.
    func endResponse(keepAlive: Bool) {
        guard let context else { return }
        end(keepAlive: keepAlive, context: context)
    }

    /// A streamed body failed midway: close the connection without ending it, so that the client
    /// sees it cut short (never a second response after part of one).
    func abortResponse() {
        responding = false
        streamingResponse = false
        context?.close(promise: nil)
    }

    private static func bodyAllowed(_ status: HTTPResponse.Status) -> Bool {
        status.code >= 200 && status.code != 204 && status.code != 304
    }

    /// The head to write: `Content-Length` when the length is known (none makes NIO chunk the body),
    /// and `Connection: close` unless the connection stays open.
    private func head(of response: Response, version: HTTPVersion, length: Int?, keepAlive: Bool) -> HTTPResponseHead {
        var head = HTTPResponseHead(response.head)
        head.version = version
        if Self.bodyAllowed(response.status) {
            if let length {
                head.headers.replaceOrAdd(name: "content-length", value: String(length))
            } else {
                head.headers.remove(name: "content-length")
            }
        }
        if !keepAlive || closeAfterResponse || inputClosed { head.headers.replaceOrAdd(name: "connection", value: "close") }
        return head
    }

    /// Writes the end of the response, then waits for the next request head (keep-alive timeout) or
    /// closes the connection.
    private func end(keepAlive: Bool, context: ChannelHandlerContext) {
        responding = false
        streamingResponse = false
        readsAfterUpgradeRequest = nil
        let keepAlive = keepAlive && !closeAfterResponse && !inputClosed
        // The timer starts first: a request that waited behind this response is delivered next,
        // and its head cancels the timer.
        if keepAlive { startWaiting(for: .head, within: configuration.keepAliveTimeout, context: context) }
        let done = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: done)
        if keepAlive {
            deliverWaiting(context: context)
        } else {
            let channel = context.channel
            done.futureResult.whenComplete { _ in channel.close(promise: nil) }
        }
    }
}
