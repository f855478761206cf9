import CoreMetrics
import HTTPTypes
import NIOCore
import NIOWebSocket
import Star
import Synchronization

/// The server's side of one WebSocket session as the app sees it (``WebSocketTransport``): the
/// bridge between the connection's task and ``WebSocketChannelHandler`` on the event loop.
///
/// Received messages wait here (at most `maxQueue`, then the handler stops reading the socket);
/// sends go straight to the channel, suspending while the channel is not writable. No actor and
/// no task per message: one lock guards the shared state.
///
/// Waiting receivers and senders are `UnsafeContinuation`s (a checked one allocates a canary
/// per suspension, one of the allocations per echoed message). Each is resumed exactly once:
/// it is removed from `receivers`/`writers` under the lock by whoever resumes it — `deliver`,
/// `finish`, `setWritable`, or the cancellation handler — and never resumed outside that removal.
final class WebSocketSession: WebSocketTransport {
    private struct State {
        // Small first capacities (NIO's default is 16 each): an idle session keeps them allocated.
        var messages = CircularBuffer<WebSocketMessage>(initialCapacity: 4)
        var receivers = CircularBuffer<UnsafeContinuation<Result<WebSocketMessage, any Error>, Never>>(initialCapacity: 1)
        var writers: [UnsafeContinuation<Void, any Error>] = []
        var writable = true
        var readingPaused = false
        var maxQueue = 32
        /// Set once the session ended; receives drain `messages` first, sends fail at once.
        var end: WebSocketDisconnect?
        var handler: NIOLoopBound<WebSocketChannelHandler>?
        var received = 0
        var sent = 0
        /// Graceful shutdown began before the pipeline switched: close with 1001 once it has.
        var shuttingDown = false
    }

    /// Counts for the access log: messages each way and the close code.
    struct Statistics {
        var received: Int
        var sent: Int
        var closeCode: WebSocketCloseCode?
    }

    /// The session's counts so far.
    var statistics: Statistics {
        state.withLock { Statistics(received: $0.received, sent: $0.sent, closeCode: $0.end?.code) }
    }

    let channel: any Channel
    let defaultOptions: WebSocketOptions
    private let metrics: ServerMetrics?
    /// The executor of the session's task when it runs on the channel's loop: sends then flush
    /// when the task suspends (``EventLoopTaskExecutor/write(_:to:)``).
    private let executor: EventLoopTaskExecutor?
    private let upgrade: @Sendable (HTTPFields, WebSocketOptions, WebSocketSession) async throws -> Void
    private let state = Mutex(State())

    /// Creates a session whose `accept` runs `upgrade` (which switches the channel's pipeline).
    init(channel: any Channel, defaultOptions: WebSocketOptions = WebSocketOptions(), metrics: ServerMetrics? = nil,
         executor: EventLoopTaskExecutor? = nil,
         upgrade: @escaping @Sendable (HTTPFields, WebSocketOptions, WebSocketSession) async throws -> Void) {
        self.channel = channel
        self.defaultOptions = defaultOptions
        self.metrics = metrics
        self.executor = executor
        self.upgrade = upgrade
    }

    // MARK: WebSocketTransport

    func accept(headers: HTTPFields, options: WebSocketOptions) async throws {
        state.withLock { $0.maxQueue = max(1, options.maxQueue) }
        try await upgrade(headers, options, self)
    }

    func receive() async throws -> WebSocketMessage {
        // Fast path: a message is already queued.
        let queued: Result<WebSocketMessage, any Error>? = state.withLock { Self.take(&$0) }
        if let queued { return try resumeReadingIfNeeded(after: queued) }
        let taken: Result<WebSocketMessage, any Error> = await withTaskCancellationHandler {
            await withUnsafeContinuation { (continuation: UnsafeContinuation<Result<WebSocketMessage, any Error>, Never>) in
                let immediate: Result<WebSocketMessage, any Error>? = state.withLock { state in
                    if let taken = Self.take(&state) { return taken }
                    if Task.isCancelled { return .failure(CancellationError()) }
                    state.receivers.append(continuation)
                    return nil
                }
                if let immediate { continuation.resume(returning: immediate) }
            }
        } onCancel: {
            let receivers = state.withLock { state in
                defer { state.receivers.removeAll() }
                return state.receivers
            }
            for receiver in receivers { receiver.resume(returning: .failure(CancellationError())) }
        }
        return try resumeReadingIfNeeded(after: taken)
    }

    /// Takes a queued message (or the end) under the lock; `nil` when the caller must wait.
    private static func take(_ state: inout State) -> Result<WebSocketMessage, any Error>? {
        if let message = state.messages.popFirst() { return .success(message) }
        if let end = state.end { return .failure(end) }
        return nil
    }

    /// After a message was taken: if reading was paused and the queue has room again, resume it.
    private func resumeReadingIfNeeded(after taken: Result<WebSocketMessage, any Error>) throws -> WebSocketMessage {
        let resume: NIOLoopBound<WebSocketChannelHandler>? = state.withLock { state in
            guard state.readingPaused, state.messages.count < state.maxQueue else { return nil }
            state.readingPaused = false
            return state.handler
        }
        if let resume { channel.eventLoop.execute { resume.value.resumeReading() } }
        return try taken.get()
    }

    func send(_ message: WebSocketMessage) async throws {
        let ready: Bool = try state.withLock { state in
            if let end = state.end { throw end }
            state.sent += 1
            return state.writable
        }
        if !ready {
            try await withTaskCancellationHandler {
                try await withUnsafeThrowingContinuation { (continuation: UnsafeContinuation<Void, any Error>) in
                    let immediate: Result<Void, any Error>? = state.withLock { state in
                        if let end = state.end { return .failure(end) }
                        if state.writable { return .success(()) }
                        if Task.isCancelled { return .failure(CancellationError()) }
                        state.writers.append(continuation)
                        return nil
                    }
                    if let immediate { continuation.resume(with: immediate) }
                }
            } onCancel: {
                let writers = state.withLock { state in
                    defer { state.writers.removeAll() }
                    return state.writers
                }
                for writer in writers { writer.resume(throwing: CancellationError()) }
            }
        }
        if let metrics {
            metrics.messagesOut.increment()
            metrics.bytesOut.increment(by: ServerMetrics.size(of: message))
        }
        let frame: WebSocketFrame
        switch message {
        case .text(let text):
            frame = WebSocketFrame(fin: true, opcode: .text, data: channel.allocator.buffer(string: text))
        case .binary(let bytes):
            frame = WebSocketFrame(fin: true, opcode: .binary, data: bytes)
        }
        if let executor {
            executor.write(frame, to: channel)
        } else {
            channel.writeAndFlush(frame, promise: nil)
        }
    }

    func close(code: WebSocketCloseCode, reason: String) async {
        let handler = state.withLock { $0.handler }
        if let handler {
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
        let handler = state.withLock { state in
            state.shuttingDown = true
            return state.handler
        }
        if let handler {
            channel.eventLoop.execute { handler.value.initiateClose(code: .goingAway, reason: "server shutting down") }
        }
    }

    // MARK: Called by WebSocketChannelHandler on the event loop

    /// Attaches the channel handler once the pipeline switched to WebSocket frames.
    func attach(_ handler: NIOLoopBound<WebSocketChannelHandler>) {
        let shuttingDown = state.withLock { state in
            state.handler = handler
            return state.shuttingDown
        }
        if shuttingDown {
            channel.eventLoop.execute { handler.value.initiateClose(code: .goingAway, reason: "server shutting down") }
        }
    }

    /// Forgets the channel handler once it left the pipeline (it holds this session too).
    func detach() {
        state.withLock { $0.handler = nil }
    }

    /// Hands a received message to a waiting receiver or queues it; returns whether the queue is
    /// full, so that the handler stops reading.
    func deliver(_ message: WebSocketMessage) -> Bool {
        if let metrics {
            metrics.messagesIn.increment()
            metrics.bytesIn.increment(by: ServerMetrics.size(of: message))
        }
        let (receiver, full): (UnsafeContinuation<Result<WebSocketMessage, any Error>, Never>?, Bool) = state.withLock { state in
            state.received += 1
            if let receiver = state.receivers.popFirst() { return (receiver, false) }
            state.messages.append(message)
            let full = state.messages.count >= state.maxQueue
            if full { state.readingPaused = true }
            return (nil, full)
        }
        receiver?.resume(returning: .success(message))
        return full
    }

    /// Ends the session: waiting and later receives (after the queued messages) and all sends throw `end`.
    func finish(_ end: WebSocketDisconnect) {
        let (receivers, writers): ([UnsafeContinuation<Result<WebSocketMessage, any Error>, Never>], [UnsafeContinuation<Void, any Error>]) =
            state.withLock { state in
                guard state.end == nil else { return ([], []) }
                state.end = end
                defer { state.receivers.removeAll(); state.writers.removeAll() }
                return (Array(state.receivers), state.writers)
            }
        for receiver in receivers { receiver.resume(returning: .failure(end)) }
        for writer in writers { writer.resume(throwing: end) }
    }

    /// Records the channel's writability and wakes suspended senders when it returns.
    func setWritable(_ writable: Bool) {
        let writers: [UnsafeContinuation<Void, any Error>] = state.withLock { state in
            state.writable = writable
            guard writable else { return [] }
            defer { state.writers.removeAll() }
            return state.writers
        }
        for writer in writers { writer.resume() }
    }
}
