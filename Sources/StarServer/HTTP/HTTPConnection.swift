import HTTPTypes
import Logging
import NIOCore
import NIOHTTP1
import Star

/// One accepted connection: its channel, and the requests its handler collects. Its `run`
/// is the connection's single structured task: it answers requests one at a time, in order.
struct HTTPConnection: Sendable {
    let channel: any Channel
    let requests: AsyncStream<ReceivedRequest>
    let handler: NIOLoopBound<HTTPConnectionHandler>

    /// Answers requests until the peer closes, a response closes the connection, or the task is cancelled.
    func run(app: App, configuration: ServerConfiguration) async {
        for await received in requests {
            let start = ContinuousClock.now
            let response = await app.respond(to: received.request) ?? Response(status: .internalServerError)
            let keepAlive = received.keepAlive && !Task.isCancelled
            let handler = self.handler
            channel.eventLoop.execute {
                handler.value.write(response, version: received.version, keepAlive: keepAlive,
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

    private func logAccess(_ logger: Logger, _ received: ReceivedRequest, _ status: HTTPResponse.Status, since start: ContinuousClock.Instant) {
        let elapsed = ContinuousClock.now - start
        let micros = elapsed.components.seconds * 1_000_000 + elapsed.components.attoseconds / 1_000_000_000_000
        let request = received.request
        logger.info("\(request.clientAddress ?? "-") - \"\(request.method) \(request.target) HTTP/\(received.version.major).\(received.version.minor)\" \(status.code) \(status.reasonPhrase) \(micros / 1000).\(String(micros % 1000 + 1000).dropFirst())ms")
    }
}
