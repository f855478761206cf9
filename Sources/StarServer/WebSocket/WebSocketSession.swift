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
final class WebSocketSession: WebSocketTransport {
    private struct State {
        var messages = CircularBuffer<WebSocketMessage>()
        var receivers = CircularBuffer<CheckedContinuation<WebSocketMessage, any Error>>()
        var writers: [CheckedContinuation<Void, any Error>] = []
        var writable = true
        var readingPaused = false
        var maxQueue = 32
        /// Set once the session ended; receives drain `messages` first, sends fail at once.
        var end: WebSocketDisconnect?
        var handler: NIOLoopBound<WebSocketChannelHandler>?
        var received = 0
        var sent = 0
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
    private let upgrade: @Sendable (HTTPFields, WebSocketOptions, WebSocketSession) async throws -> Void
    private let state = Mutex(State())

    /// Creates a session whose `accept` runs `upgrade` (which switches the channel's pipeline).
    init(channel: any Channel, defaultOptions: WebSocketOptions = WebSocketOptions(), metrics: ServerMetrics? = nil,
         upgrade: @escaping @Sendable (HTTPFields, WebSocketOptions, WebSocketSession) async throws -> Void) {
        self.channel = channel
        self.defaultOptions = defaultOptions
        self.metrics = metrics
        self.upgrade = upgrade
    }

    // MARK: WebSocketTransport

    func accept(headers: HTTPFields, options: WebSocketOptions) async throws {
        state.withLock { $0.maxQueue = max(1, options.maxQueue) }
        try await upgrade(headers, options, self)
    }

    func receive() async throws -> WebSocketMessage {
        enum Next { case message(WebSocketMessage, resume: NIOLoopBound<WebSocketChannelHandler>?), end(WebSocketDisconnect), wait }
        let next: Next = state.withLock { state in
            if let message = state.messages.popFirst() {
                var resume: NIOLoopBound<WebSocketChannelHandler>?
                if state.readingPaused, state.messages.count < state.maxQueue {
                    state.readingPaused = false
                    resume = state.handler
                }
                return .message(message, resume: resume)
            }
            if let end = state.end { return .end(end) }
            return .wait
        }
        switch next {
        case .message(let message, let resume):
            if let resume { channel.eventLoop.execute { resume.value.resumeReading() } }
            return message
        case .end(let end):
            throw end
        case .wait:
            return try await withTaskCancellationHandler {
                try await withCheckedThrowingContinuation { continuation in
                    let immediate: Result<WebSocketMessage, any Error>? = state.withLock { state in
                        if let message = state.messages.popFirst() { return .success(message) }
                        if let end = state.end { return .failure(end) }
                        if Task.isCancelled { return .failure(CancellationError()) }
                        state.receivers.append(continuation)
                        return nil
                    }
                    if let immediate { continuation.resume(with: immediate) }
                }
            } onCancel: {
                let receivers = state.withLock { state in
                    defer { state.receivers.removeAll() }
                    return state.receivers
                }
                for receiver in receivers { receiver.resume(throwing: CancellationError()) }
            }
        }
    }

    func send(_ message: WebSocketMessage) async throws {
        let ready: Bool = try state.withLock { state in
            if let end = state.end { throw end }
            state.sent += 1
            return state.writable
        }
        if !ready {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let immediate: Result<Void, any Error>? = state.withLock { state in
                    if let end = state.end { return .failure(end) }
                    if state.writable { return .success(()) }
                    state.writers.append(continuation)
                    return nil
                }
                if let immediate { continuation.resume(with: immediate) }
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
        channel.writeAndFlush(frame, promise: nil)
    }

    func close(code: WebSocketCloseCode, reason: String) async {
        let handler = state.withLock { $0.handler }
        if let handler {
            channel.eventLoop.execute { handler.value.initiateClose(code: code, reason: reason) }
        } else {
            channel.close(promise: nil)
        }
        try? await channel.closeFuture.get()
    }

    /// Starts closing with 1001 because the server is going down; does not wait.
    func shutDown() {
        let handler = state.withLock { $0.handler }
        if let handler {
            channel.eventLoop.execute { handler.value.initiateClose(code: .goingAway, reason: "server shutting down") }
        }
    }

    // MARK: Called by WebSocketChannelHandler on the event loop

    /// Attaches the channel handler once the pipeline switched to WebSocket frames.
    func attach(_ handler: NIOLoopBound<WebSocketChannelHandler>) {
        state.withLock { $0.handler = handler }
    }

    /// Hands a received message to a waiting receiver or queues it; returns whether the queue is
    /// full, so that the handler stops reading.
    func deliver(_ message: WebSocketMessage) -> Bool {
        if let metrics {
            metrics.messagesIn.increment()
            metrics.bytesIn.increment(by: ServerMetrics.size(of: message))
        }
        let (receiver, full): (CheckedContinuation<WebSocketMessage, any Error>?, Bool) = state.withLock { state in
            state.received += 1
            if let receiver = state.receivers.popFirst() { return (receiver, false) }
            state.messages.append(message)
            let full = state.messages.count >= state.maxQueue
            if full { state.readingPaused = true }
            return (nil, full)
        }
        receiver?.resume(returning: message)
        return full
    }

    /// Ends the session: waiting and later receives (after the queued messages) and all sends throw `end`.
    func finish(_ end: WebSocketDisconnect) {
        let (receivers, writers): ([CheckedContinuation<WebSocketMessage, any Error>], [CheckedContinuation<Void, any Error>]) =
            state.withLock { state in
                guard state.end == nil else { return ([], []) }
                state.end = end
                defer { state.receivers.removeAll(); state.writers.removeAll() }
                return (Array(state.receivers), state.writers)
            }
        for receiver in receivers { receiver.resume(throwing: end) }
        for writer in writers { writer.resume(throwing: end) }
    }

    /// Records the channel's writability and wakes suspended senders when it returns.
    func setWritable(_ writable: Bool) {
        let writers: [CheckedContinuation<Void, any Error>] = state.withLock { state in
            state.writable = writable
            guard writable else { return [] }
            defer { state.writers.removeAll() }
            return state.writers
        }
        for writer in writers { writer.resume() }
    }
}
