import HTTPTypes
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPTypesHTTP1
import Star
import StarWebSocketEngine
import Synchronization

/// One accepted connection: its channel, and the requests its handler collects. Its `run`
/// is the connection's single structured task: it answers requests one at a time, in order.
///
/// An HTTP/2 stream is served by one too (``isHTTP2Stream``): a connection that carries one request.
/// A cleartext or TLS connection may turn out to speak HTTP/2 before its first request; then
/// ``HTTP2Connection/takeOver(_:settings:scheme:clientAddress:)`` ends its request loop and `run`
/// serves HTTP/2 instead.
struct HTTPConnection: Sendable {
    let channel: any Channel
    let requests: AsyncStream<ReceivedRequest>
    let handler: NIOLoopBound<HTTPConnectionHandler>
    /// The channel is an HTTP/2 stream, not a socket: one request, and graceful shutdown leaves it
    /// to finish (HTTP/2's GOAWAY says which streams will be served).
    var isHTTP2Stream = false
    let shutdown = ShutdownState()

    /// What graceful shutdown needs to know about a connection.
    final class ShutdownState: Sendable {
        struct State {
            var shuttingDown = false
            var busy = false
            var session: WebSocketSession?
            /// Ends when the channel closes: what a streamed response's writer races (see
            /// ``HTTPConnection/watchClose()``); `nil` while no response streams.
            var closeWatcher: AsyncStream<Never>.Continuation?
            /// The channel's close is watched (one callback per connection, on its first stream).
            var watchingClose = false
            var closed = false
            /// The connection speaks HTTP/2 (set before its request loop ends).
            var http2: HTTP2Connection?
        }
        let state = Mutex(State())
    }

    /// Graceful shutdown: an idle connection closes now, a busy one after its current response,
    /// and an open WebSocket session is closed with 1001 (its handler sees `WebSocketDisconnect`).
    func beginShutdown() {
        let (session, idle, http2) = shutdown.state.withLock { state in
            state.shuttingDown = true
            return (state.session, !state.busy, state.http2)
        }
        if let http2 {
            http2.beginShutdown()
        } else if let session {
            session.shutDown()
        } else if idle && !isHTTP2Stream {
            channel.close(promise: nil)
        }
    }

    /// Answers requests until the peer closes, a response closes the connection, or the task is cancelled.
    ///
    /// Its async frame, and ``serveWebSocket(_:_:)``'s, stay allocated for the whole life of a
    /// WebSocket (the connection's task is suspended under them), and Swift's task allocator keeps
    /// the 1 KiB slabs of the deepest chain a task ever reached. So this loop holds only the iterator and
    /// the request; judging a request and what follows the loop are never-inlined calls (context
    /// sizes and slabs measured: docs/decisions.md, "Memory").
    ///
    /// - Parameter overLimit: The server is past `--limit-concurrency`: answer 503 and close.
    func run(_ settings: ConnectionSettings, overLimit: Bool = false) async {
        var requests = self.requests.makeAsyncIterator()
        while let received = await requests.next() {
            if await serve(received, settings, overLimit: overLimit) { break }
        }
        await finishConnection(settings, overLimit: overLimit)
    }

    /// Answers one request: a well-formed handshake (checked here, once) goes to its route; a malformed
    /// one is answered by ``serveHTTP(_:_:overLimit:)`` without the app (which judges it again, on that
    /// rare path). Returns whether the connection is done.
    @inline(never)
    private func serve(_ received: ReceivedRequest, _ settings: ConnectionSettings, overLimit: Bool) async -> Bool {
        if !overLimit && Self.isWellFormedHandshake(received) {
            return await serveWebSocket(received, settings)
        }
        return await serveHTTP(received, settings, overLimit: overLimit)
    }

    @inline(never)
    private static func isWellFormedHandshake(_ received: ReceivedRequest) -> Bool {
        WebSocketHandshakeRules.isHandshake(received.request, wantsWebSocket: received.wantsWebSocket)
            && WebSocketHandshakeRules.check(received.request) == nil
    }

    /// After the request loop: serve HTTP/2 if the connection chose it, else wait for the channel
    /// to close (closing it first when the task was cancelled: the server is stopping).
    @inline(never)
    private func finishConnection(_ settings: ConnectionSettings, overLimit: Bool) async {
        if let http2 = shutdown.state.withLock({ $0.http2 }) { return await serveHTTP2(http2, settings, overLimit: overLimit) }
        if Task.isCancelled { try? await channel.close() }
        try? await channel.closeFuture.get()
    }

    /// Serves the connection as HTTP/2, after it chose it; graceful shutdown may have begun meanwhile.
    @inline(never)
    private func serveHTTP2(_ http2: HTTP2Connection, _ settings: ConnectionSettings, overLimit: Bool) async {
        if shutdown.state.withLock({ $0.shuttingDown }) { http2.beginShutdown() }
        await http2.run(settings, overLimit: overLimit)
    }

    // The two ways of serving a request are separate functions, never inlined into `run`: an idle
    // WebSocket keeps its task's async frames for as long as it is open, and frames that hold
    // only what a session needs keep that memory small (measured: 21.0 → 15.4 KiB per idle connection).

    /// Answers one HTTP request — with `refusal` for a malformed handshake, 503 when over the
    /// limit, else the app's response; returns whether the connection is done.
    @inline(never)
    private func serveHTTP(_ received: ReceivedRequest, _ settings: ConnectionSettings,
                           overLimit: Bool) async -> Bool {
        shutdown.state.withLock { $0.busy = true }
        let start = ContinuousClock.now
        let response: Response
        if overLimit {
            response = HTTPError(.serviceUnavailable, detail: "Server busy: too many connections").response
        } else if WebSocketHandshakeRules.isHandshake(received.request, wantsWebSocket: received.wantsWebSocket),
                  let refusal = WebSocketHandshakeRules.check(received.request) {
            response = refusal.response
        } else {
            response = await settings.app.respond(to: received.request) ?? Response(status: .internalServerError)
        }
        if response.body.buffer == nil { return await finishStreaming(received, response, settings, since: start) }
        return finish(received, response, settings, overLimit: overLimit, since: start)
    }

    /// Writes a response whose body is a stream: the head, then the chunks its writer writes (each
    /// write waits while the socket's buffer is full), then the end. The writer is cancelled when the
    /// client goes away; when it throws, the connection is closed with the body unfinished (the
    /// client sees it cut short) and the error is logged. Returns whether the connection is done.
    @inline(never)
    private func finishStreaming(_ received: ReceivedRequest, _ response: Response, _ settings: ConnectionSettings,
                                 since start: ContinuousClock.Instant) async -> Bool {
        let stopping = shutdown.state.withLock { $0.shuttingDown }
        // HTTP/1.0 has no chunked encoding: a body of unknown length ends with the connection.
        let framed = received.version.minor >= 1 || response.body.contentLength != nil
        let reusable = received.keepAlive && framed && !stopping && !Task.isCancelled
            && (received.request.body.stream?.isFinished ?? true)
        settings.metrics.requestAnswered(status: response.status.code, duration: ContinuousClock.now - start)
        let handler = self.handler
        let version = received.version
        let headOnly = received.request.method == .head
        await run(on: channel.eventLoop) { handler.value.writeHead(of: response, version: version, keepAlive: reusable) }
        enum Ending { case written, failed(any Error), clientGone }
        let ending: Ending
        if headOnly {
            ending = .written
        } else {
            let writer = ConnectionBodyWriter(channel: channel, handler: handler)
            let closed = watchClose()
            defer { shutdown.state.withLock { $0.closeWatcher = nil } }
            ending = await withTaskGroup(of: Ending.self) { group in
                group.addTask {
                    do {
                        try await response.body.write(to: writer)
                        return .written
                    } catch {
                        return .failed(error)
                    }
                }
                group.addTask {
                    for await _ in closed {}  // ends when the channel closes, or when cancelled
                    return .clientGone
                }
                let first = await group.next() ?? .clientGone
                group.cancelAll()
                return first
            }
        }
        // Graceful shutdown may have begun while the body streamed: then this response is the last.
        let stoppingNow = shutdown.state.withLock { state in
            state.busy = false
            return state.shuttingDown
        }
        let keepAlive: Bool
        switch ending {
        case .written:
            keepAlive = reusable && !stoppingNow
            await run(on: channel.eventLoop) { handler.value.endResponse(keepAlive: keepAlive) }
        case .failed(let error):
            keepAlive = false
            if channel.isActive {
                settings.app.logger.error("streamed response failed: \(String(reflecting: error))",
                                          metadata: ["request-id": "\(received.request.id ?? "-")"])
            }
            await run(on: channel.eventLoop) { handler.value.abortResponse() }
        case .clientGone:
            keepAlive = false
        }
        if settings.configuration.accessLog {
            logAccess(settings.app.logger, received, response.status, since: start)
        }
        return !keepAlive
    }

    /// A sequence that ends when the channel closes (or when the task iterating it is cancelled).
    /// The channel's close future gets one callback per connection, on its first streamed response,
    /// not one per response.
    private func watchClose() -> AsyncStream<Never> {
        let (closed, signal) = AsyncStream<Never>.makeStream()
        let (register, isClosed) = shutdown.state.withLock { state in
            defer { state.watchingClose = true }
            state.closeWatcher = signal
            return (!state.watchingClose, state.closed)
        }
        if isClosed { signal.finish() }
        if register {
            let shutdown = self.shutdown
            channel.closeFuture.whenComplete { _ in
                let watcher = shutdown.state.withLock { state in
                    state.closed = true
                    return state.closeWatcher
                }
                watcher?.finish()
            }
        }
        return closed
    }

    /// Runs `body` on the connection's event loop: at once when the task already runs there.
    private func run(on eventLoop: any EventLoop, _ body: @escaping @Sendable () -> Void) async {
        if eventLoop.inEventLoop { body() } else { eventLoop.execute(body) }
    }

    /// Writes a response and logs it; returns whether the connection is done.
    func finish(_ received: ReceivedRequest, _ response: Response, _ settings: ConnectionSettings,
                        overLimit: Bool, since start: ContinuousClock.Instant) -> Bool {
        // After a request that asked for an upgrade, NIO's parser stops: the connection cannot carry more requests.
        let stopping = shutdown.state.withLock { state in
            state.busy = false
            return state.shuttingDown
        }
        // A body the app did not read to its end is still arriving: the connection cannot carry another request.
        let keepAlive = received.keepAlive && !received.wantsWebSocket && !stopping && !overLimit && !Task.isCancelled
            && (received.request.body.stream?.isFinished ?? true)
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

    private func logAccess(_ logger: Logger, _ received: ReceivedRequest, _ status: HTTPResponse.Status, since start: ContinuousClock.Instant) {
        let request = received.request
        logger.info("\(request.clientAddress ?? "-") - \"\(request.method) \(request.target) \(request.httpVersion)\" \(status.code) \(status.reasonPhrase) \((ContinuousClock.now - start).millisecondsText)ms",
                    metadata: ["request-id": "\(request.id ?? "-")"])
    }
}

/// Writes a streamed response body to its connection. A write returns at once while the socket
/// takes more (NIO's writability: under its high-water mark), and otherwise waits until that chunk is
/// written, so a client that does not read holds the writer back instead of filling memory.
struct ConnectionBodyWriter: ResponseBodyWriter {
    let channel: any Channel
    let handler: NIOLoopBound<HTTPConnectionHandler>

    func write(_ chunk: ByteBuffer) async throws {
        guard chunk.readableBytes > 0 else { return }  // an empty chunk would end a chunked body
        let handler = self.handler
        // While the socket takes more, nothing waits: no promise (NIO's chunked encoder would combine
        // one per part of the chunk, a few allocations per write, ~5 % of an event stream's CPU).
        if channel.isWritable {
            if channel.eventLoop.inEventLoop {
                handler.value.writeBodyPart(chunk, promise: nil)
            } else {
                channel.eventLoop.execute { handler.value.writeBodyPart(chunk, promise: nil) }
            }
            return
        }
        // Past NIO's high-water mark, or closed: wait until this chunk is written (or fails).
        let promise = channel.eventLoop.makePromise(of: Void.self)
        if channel.eventLoop.inEventLoop {
            handler.value.writeBodyPart(chunk, promise: promise)
        } else {
            channel.eventLoop.execute { handler.value.writeBodyPart(chunk, promise: promise) }
        }
        try await promise.futureResult.get()
    }
}

