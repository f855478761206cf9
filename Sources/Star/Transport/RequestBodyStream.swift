import NIOCore
import Synchronization

/// The transport's end of a streamed request body: the transport yields the parts it reads and
/// finishes the stream; the handler's ``RequestBody`` pulls them, one waiting task at a time.
///
/// The stream is bounded: once ``highWatermark`` bytes wait unread, ``yield(_:)`` tells the
/// transport to stop reading, and the stream calls `demand` when the reader has taken everything,
/// so the client is read only as fast as the handler consumes (TCP pushes back on it meanwhile).
/// `demand` is also called on the first read, which is when a transport answers
/// `Expect: 100-continue`.
package final class RequestBodyStream: Sendable {
    /// The unread bytes past which the transport should stop reading.
    package static let highWatermark = 256 * 1024

    private struct State {
        var parts = CircularBuffer<ByteBuffer>()
        var unread = 0
        /// `nil` while more may come; then the end, or the transport's error.
        var end: Result<Void, any Error>?
        var reader = Waiters<ByteBuffer?>()
        /// The transport stopped reading and waits for `demand`.
        var paused = false
        var started = false
        var collected: ByteBuffer?
    }

    private let state = Mutex(State())
    private let demand: @Sendable () -> Void

    /// Creates a stream; `demand` runs (on the reader's thread, outside any lock) when the reader
    /// first asks for the body, and each time it has taken every part after the transport paused.
    package init(demand: @escaping @Sendable () -> Void) {
        self.demand = demand
    }

    // MARK: The transport's side

    /// Adds a part the transport read. Returns `false` when the transport should stop reading
    /// until `demand` runs.
    package func yield(_ part: ByteBuffer) -> Bool {
        let (waiter, keepReading) = state.withLock { state -> (Waiters<ByteBuffer?>.Continuation?, Bool) in
            guard state.end == nil else { return (nil, true) }
            if let waiter = state.reader.popFirst() { return (waiter, true) }
            state.parts.append(part)
            state.unread += part.readableBytes
            if state.unread >= Self.highWatermark { state.paused = true }
            return (nil, !state.paused)
        }
        waiter?.resume(returning: .success(part))
        return keepReading
    }

    /// Ends the stream: normally (`error` is `nil`) once the last part was yielded, or with the
    /// transport's error (the client went away mid-body).
    package func finish(throwing error: (any Error)? = nil) {
        let waiter = state.withLock { state -> Waiters<ByteBuffer?>.Continuation? in
            guard state.end == nil else { return nil }
            state.end = error.map { .failure($0) } ?? .success(())
            return state.reader.popFirst()
        }
        waiter?.resume(returning: error.map { .failure($0) } ?? .success(nil))
    }

    /// Whether the transport has read the whole body (so the connection can carry another request).
    package var isFinished: Bool {
        state.withLock { state in
            if case .success = state.end { true } else { false }
        }
    }

    // MARK: The reader's side

    /// The body once ``RequestBody/collect(upTo:)`` has read it whole.
    var collected: ByteBuffer? { state.withLock { $0.collected } }

    /// Keeps the collected body, for a second `collect` or a later iteration.
    func keep(_ whole: ByteBuffer) {
        state.withLock { $0.collected = whole }
    }

    /// The next part, or `nil` at the end; waits while none is there.
    func next() async throws -> ByteBuffer? {
        try await Waiters<ByteBuffer?>.suspend { id, continuation in
            let (result, wake) = state.withLock { state -> (Result<ByteBuffer?, any Error>?, Bool) in
                var wake = !state.started
                state.started = true
                if let part = state.parts.popFirst() {
                    state.unread -= part.readableBytes
                    return (.success(part), wake)
                }
                switch state.end {
                case .success: return (.success(nil), wake)
                case .failure(let error): return (.failure(error), wake)
                case nil:
                    guard state.reader.isEmpty else { return (.failure(RequestBodyError()), false) }
                    // Nothing unread: a paused transport may read again.
                    if state.paused {
                        state.paused = false
                        wake = true
                    }
                    return (state.reader.enqueue(id: id, continuation), wake)
                }
            }
            // Outside the lock and before this task suspends: `demand` only schedules the
            // transport's next read.
            if wake { demand() }
            return result
        } cancel: { id in
            state.withLock { $0.reader.remove(id: id) }
        }.get()
    }
}

/// Two tasks read one request body at once.
struct RequestBodyError: Error, CustomStringConvertible {
    var description: String { "the request body is already being read by another task" }
}
