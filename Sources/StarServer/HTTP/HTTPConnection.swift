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
            // A well-formed handshake (checked here, once) goes to its route; a malformed one is
            // answered by serveHTTP without the app (which judges it again, on that rare path).
            // Keep this loop's frame as it is: the connection's task keeps it for the whole life of a
            // WebSocket, and one more branch holding a refusal across its await pushed the task's
            // frames into one more 1 KiB slab (heaptrack: 12.9 -> 13.9 KiB per idle connection).
            let done = if !overLimit && WebSocketHandshakeRules.isHandshake(received.request, wantsWebSocket: received.wantsWebSocket)
                && WebSocketHandshakeRules.check(received.request) == nil {
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

    /// Answers one HTTP request — with `refusal` for a malformed handshake, 503 when over the
    /// limit, else the app's response; returns whether the connection is done.
    @inline(never)
    private func serveHTTP(_ received: ReceivedRequest, _ settings: ConnectionSettings,
                           overLimit: Bool) async -> Bool {
        shutdown.state.withLock { $0.busy = true }
        let start = ContinuousClock.now
        var received = received
        received.request.id = settings.app.makeRequestID()
        let response: Response
        if overLimit {
            response = HTTPError(.serviceUnavailable, detail: "Server busy: too many connections").response
        } else if WebSocketHandshakeRules.isHandshake(received.request, wantsWebSocket: received.wantsWebSocket),
                  let refusal = WebSocketHandshakeRules.check(received.request) {
            response = refusal.response
        } else {
            response = await settings.app.respond(to: received.request) ?? Response(status: .internalServerError)
        }
        return finish(received, response, settings, overLimit: overLimit, since: start)
    }

    /// Writes a response and logs it; returns whether the connection is done.
    func finish(_ received: ReceivedRequest, _ response: Response, _ settings: ConnectionSettings,
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

    private func logAccess(_ logger: Logger, _ received: ReceivedRequest, _ status: HTTPResponse.Status, since start: ContinuousClock.Instant) {
        let request = received.request
        logger.info("\(request.clientAddress ?? "-") - \"\(request.method) \(request.target) HTTP/\(received.version.major).\(received.version.minor)\" \(status.code) \(status.reasonPhrase) \((ContinuousClock.now - start).millisecondsText)ms",
                    metadata: ["request-id": "\(request.id ?? "-")"])
    }
}
