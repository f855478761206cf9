import NIOCore
@_spi(Transport) package import Star
import Synchronization

/// The app's side of one WebSocket session, shared by every transport: received messages waiting
/// for the handler (at most `maxQueue`, then the transport stops reading), senders waiting for the
/// outbound buffer to drain, and the end of the session.
///
/// Any number of tasks may receive and send at once. Each waits as one entry of a ``Waiters``
/// queue, so cancelling one receiver or sender resumes that one only; the others go on waiting.
/// No actor and no task per message: one lock guards the state, taken once per message each way.
///
/// A transport's session stores its mailbox inline (it is a non-copyable value, not an object),
/// and ``receive(readingCanResume:)`` inlines into the session's own `receive()`: measured
/// against a first version of the engine whose mailbox was an object with a callback, that is
/// 9 allocations fewer per handshake, and one async frame fewer — 1.2 KiB per idle WebSocket.
package struct WebSocketMailbox: ~Copyable, Sendable {
    /// The mailbox's fields, under its lock (`package` only so that a session can store the
    /// mailbox inline: its members stay internal).
    package struct State {
        // Small first capacity (NIO's default is 16): an idle session keeps it allocated.
        var messages = CircularBuffer<WebSocketMessage>(initialCapacity: 4)
        var receivers = Waiters<WebSocketMessage>()
        var writers = Waiters<Void>()
        var writable = true
        var readingPaused = false
        var maxQueue: Int
        /// Set once the session ended; receives drain `messages` first, sends fail at once.
        var end: WebSocketDisconnect?
        var received = 0
        var sent = 0
    }

    /// Counts for the access log: messages each way and the close code.
    package struct Statistics: Sendable {
        /// Messages delivered to the app.
        package var received: Int
        /// Messages the app sent.
        package var sent: Int
        /// The code the session ended with, once it ended.
        package var closeCode: WebSocketCloseCode?
    }

    private let state: Mutex<State>

    /// Creates a mailbox whose queue holds at most `maxQueue` messages.
    package init(maxQueue: Int = 32) {
        state = Mutex(State(maxQueue: max(1, maxQueue)))
    }

    /// Sets the queue bound (the options the handshake was accepted with).
    package func setMaxQueue(_ maxQueue: Int) {
        state.withLock { $0.maxQueue = max(1, maxQueue) }
    }

    /// The session's counts so far.
    package var statistics: Statistics {
        state.withLock { Statistics(received: $0.received, sent: $0.sent, closeCode: $0.end?.code) }
    }

    /// How the session ended, once it has.
    package var end: WebSocketDisconnect? { state.withLock { $0.end } }

    // MARK: The app's side

    /// The next message; throws the session's end once the queue is drained, or
    /// `CancellationError` when the waiting task is cancelled. `readingCanResume` runs (outside
    /// the lock) when this receive made room in a queue that ``deliver(_:)`` had reported full:
    /// the transport resumes reading there.
    @inlinable @inline(__always)
    package nonisolated(nonsending) func receive(readingCanResume: () -> Void) async throws -> WebSocketMessage {
        var resume = false
        let taken: Result<WebSocketMessage, any Error>
        if let queued = take(resume: &resume) {
            taken = queued
        } else {
            taken = await Waiters<WebSocketMessage>.suspend { id, continuation in
                takeOrWait(id: id, continuation, resume: &resume)
            } cancel: { id in
                stopWaiting(receiver: id)
            }
        }
        if resume { readingCanResume() }
        return try taken.get()
    }

    /// A queued message (or the end), or `nil` when the caller must wait.
    @usableFromInline
    func take(resume: inout Bool) -> Result<WebSocketMessage, any Error>? {
        state.withLock { Self.take(&$0, resume: &resume) }
    }

    /// A queued message (or the end), else the receiver is queued under `id`.
    @usableFromInline
    func takeOrWait(id: UInt64, _ continuation: Waiters<WebSocketMessage>.Continuation,
                    resume: inout Bool) -> Result<WebSocketMessage, any Error>? {
        state.withLock { state in
            if let ready = Self.take(&state, resume: &resume) { return ready }
            return state.receivers.enqueue(id: id, continuation)
        }
    }

    /// Takes a cancelled receiver out of the queue, if it still waits.
    @usableFromInline
    func stopWaiting(receiver id: UInt64) -> Waiters<WebSocketMessage>.Continuation? {
        state.withLock { $0.receivers.remove(id: id) }
    }

    /// Sets `resume` when reading was paused and the queue has room again.
    private static func take(_ state: inout State, resume: inout Bool) -> Result<WebSocketMessage, any Error>? {
        if let message = state.messages.popFirst() {
            if state.readingPaused, state.messages.count < state.maxQueue {
                state.readingPaused = false
                resume = true
            }
            return .success(message)
        }
        if let end = state.end { return .failure(end) }
        return nil
    }

    /// Waits until the transport can take one more message; throws the session's end once it
    /// ended, or `CancellationError` when the waiting task is cancelled.
    package nonisolated(nonsending) func reserveSend() async throws {
        if try !tryReserveSend() { try await waitUntilWritable() }
    }

    /// Counts one more message sent and tells whether the transport takes it now (the per-message
    /// path: no suspension); when `false`, the sender must ``waitUntilWritable()`` first.
    /// Throws the session's end once it ended.
    package func tryReserveSend() throws -> Bool {
        try state.withLock { state in
            if let end = state.end { throw end }
            state.sent += 1
            return state.writable
        }
    }

    /// Waits until the transport is writable again; throws the session's end once it ended, or
    /// `CancellationError` when the waiting task is cancelled.
    package nonisolated(nonsending) func waitUntilWritable() async throws {
        try await Waiters<Void>.suspend { id, continuation in
            state.withLock { state in
                if let end = state.end { return .failure(end) }
                if state.writable { return .success(()) }
                return state.writers.enqueue(id: id, continuation)
            }
        } cancel: { id in
            state.withLock { $0.writers.remove(id: id) }
        }.get()
    }

    // MARK: The transport's side

    /// Hands a received message to the longest-waiting receiver, or queues it; returns whether
    /// the queue is now full, so that the transport stops reading.
    package func deliver(_ message: WebSocketMessage) -> Bool {
        let (receiver, full): (Waiters<WebSocketMessage>.Continuation?, Bool) = state.withLock { state in
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

    /// Ends the session (the first end wins): waiting and later receives (after the queued
    /// messages) and all sends throw `end`.
    package func finish(_ end: WebSocketDisconnect) {
        let (receivers, writers) = state.withLock { state in
            guard state.end == nil else { return ([Waiters<WebSocketMessage>.Continuation](), [Waiters<Void>.Continuation]()) }
            state.end = end
            return (state.receivers.removeAll(), state.writers.removeAll())
        }
        for receiver in receivers { receiver.resume(returning: .failure(end)) }
        for writer in writers { writer.resume(returning: .failure(end)) }
    }

    /// Records whether the transport takes more messages, and wakes waiting senders when it does.
    package func setWritable(_ writable: Bool) {
        let writers: [Waiters<Void>.Continuation] = state.withLock { state in
            state.writable = writable
            return writable ? state.writers.removeAll() : []
        }
        for writer in writers { writer.resume(returning: .success(())) }
    }
}
