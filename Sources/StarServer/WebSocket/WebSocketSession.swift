import CoreMetrics
import HTTPTypes
import NIOCore
import NIOWebSocket
import Star
import StarWebSocketEngine
import StarWebSocketNIO
import Synchronization

/// The server's side of one WebSocket session as the app sees it (``WebSocketTransport``): the
/// bridge between the connection's task and ``WebSocketChannelHandler`` on the event loop.
///
/// Received messages, waiting receivers and senders live in the engine's ``WebSocketMailbox``
/// (at most `maxQueue` messages, then the handler stops reading the socket); sends go to the
/// handler's `send(_:)` on the event loop once the mailbox has room for them.
final class WebSocketSession: WebSocketTransport, WebSocketChannelSession {
    private struct Link {
        var handler: NIOLoopBound<WebSocketChannelHandler>?
        /// Graceful shutdown began before the pipeline switched: close with 1001 once it has.
        var shuttingDown = false
    }

    let channel: any Channel
    let defaultOptions: WebSocketOptions
    /// Received messages, waiting tasks, and the session's end (stored inline: no object of its own).
    let mailbox: WebSocketMailbox
    private let metrics: ServerMetrics?
    /// The executor of the session's task when it runs on the channel's loop: sends then flush
    /// when the task suspends (``EventLoopTaskExecutor/flushWhenTheJobReturns(_:)``).
    private let executor: EventLoopTaskExecutor?
    private let upgrade: @Sendable (HTTPFields, WebSocketOptions, WebSocketSession) async throws -> Void
    private let link = Mutex(Link())

    /// Creates a session whose `accept` runs `upgrade` (which switches the channel's pipeline).
    init(channel: any Channel, defaultOptions: WebSocketOptions = WebSocketOptions(), metrics: ServerMetrics? = nil,
         executor: EventLoopTaskExecutor? = nil,
         upgrade: @escaping @Sendable (HTTPFields, WebSocketOptions, WebSocketSession) async throws -> Void) {
        self.channel = channel
        self.defaultOptions = defaultOptions
        self.metrics = metrics
        self.executor = executor
        self.upgrade = upgrade
        mailbox = WebSocketMailbox(maxQueue: defaultOptions.maxQueue)
    }

    // MARK: WebSocketTransport

    func accept(headers: HTTPFields, options: WebSocketOptions) async throws {
        mailbox.setMaxQueue(options.maxQueue)
        try await upgrade(headers, options, self)
    }

    nonisolated(nonsending) func receive() async throws -> WebSocketMessage {
        try await mailbox.receive {
            // The queue has room again: the handler may read the socket again.
            guard let handler = link.withLock({ $0.handler }) else { return }
            channel.eventLoop.execute { handler.value.resumeReading() }
        }
    }

    nonisolated(nonsending) func send(_ message: WebSocketMessage) async throws {
        if try !mailbox.tryReserveSend() { try await mailbox.waitUntilWritable() }
        if let metrics {
            metrics.messagesOut.increment()
            metrics.bytesOut.increment(by: ServerMetrics.size(of: message))
        }
        // Without a handler the socket is gone: the message is dropped, as a write to a closed channel is.
        guard let handler = link.withLock({ $0.handler }) else { return }
        if let executor, executor.flushWhenTheJobReturns(channel) {
            handler.value.send(message)
        } else {
            handler.sendAndFlush(message)
        }
    }

    func close(code: WebSocketCloseCode, reason: String) async {
        if let handler = link.withLock({ $0.handler }) {
            // On the channel's loop (the default executor), at once rather than as one more loop task.
            if channel.eventLoop.inEventLoop {
                handler.value.initiateClose(code: code, reason: reason)
            } else {
                channel.eventLoop.execute { handler.value.initiateClose(code: code, reason: reason) }
            }
        } else {
            channel.close(promise: nil)
        }
        try? await channel.closeFuture.get()
    }

    /// Starts closing with 1001 because the server is going down; does not wait.
    func shutDown() {
        let handler = link.withLock { link in
            link.shuttingDown = true
            return link.handler
        }
        if let handler {
            channel.eventLoop.execute { handler.value.initiateClose(code: .goingAway, reason: "server shutting down") }
        }
    }

    // MARK: Called by WebSocketChannelHandler on the event loop

    /// Attaches the channel handler once the pipeline switched to WebSocket frames.
    func attach(_ handler: NIOLoopBound<WebSocketChannelHandler>) {
        let shuttingDown = link.withLock { link in
            link.handler = handler
            return link.shuttingDown
        }
        if shuttingDown {
            channel.eventLoop.execute { handler.value.initiateClose(code: .goingAway, reason: "server shutting down") }
        }
    }

    /// Forgets the channel handler once it left the pipeline (it holds this session too).
    func detach() {
        link.withLock { $0.handler = nil }
    }

    /// Hands a received message to the app and counts it; returns whether the queue is full, so
    /// that the handler stops reading.
    func deliver(_ message: WebSocketMessage) -> Bool {
        if let metrics {
            metrics.messagesIn.increment()
            metrics.bytesIn.increment(by: ServerMetrics.size(of: message))
        }
        return mailbox.deliver(message)
    }

    func finish(_ end: WebSocketDisconnect) {
        mailbox.finish(end)
    }

    func setWritable(_ writable: Bool) {
        mailbox.setWritable(writable)
    }
}
