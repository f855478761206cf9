import Synchronization

/// The hand-over from the listening channel to the accept task: connections the child-channel
/// initializer has set up (``HTTPConnection``s), waiting for the accept task to give each its child task.
///
/// It replaces `NIOAsyncChannel`'s accept path, which cost every connection a `submit` to run the
/// initializer, a chain of futures back to the listening loop, and a yield into an
/// `NIOAsyncSequenceProducer` (its lock, state machine and buffer) — 3.8 % of the server's time in a
/// handshake benchmark, on top of the task that serves the connection. Here the initializer appends
/// the connection to an array under a lock and, when the accept task is waiting, resumes it; the
/// accept task runs on the listening channel's loop, after the read batch that accepted the
/// connections, and takes all of them at once (two arrays swapped: no allocation per batch).
///
/// Accepting never pauses: the accept task only starts child tasks, and `--limit-concurrency`
/// answers 503 rather than leaving connections in the kernel's backlog.
final class AcceptedConnections<Connection: Sendable>: Sendable {
    private struct State {
        var ready: [Connection] = []
        var waiter: UnsafeContinuation<Void, Never>?
        var finished = false
    }
    private let state = Mutex(State())

    /// Hands over a connection the listening channel accepted; returns `false`, after which the
    /// caller closes it, once accepting has finished.
    func append(_ connection: Connection) -> Bool {
        let (accepted, waiter) = state.withLock { state -> (Bool, UnsafeContinuation<Void, Never>?) in
            guard !state.finished else { return (false, nil) }
            state.ready.append(connection)
            defer { state.waiter = nil }
            return (true, state.waiter)
        }
        waiter?.resume()
        return accepted
    }

    /// Ends accepting (the listening channel closed, or the accept task was cancelled): connections
    /// handed over before are still taken, then ``next(into:)`` returns `false`.
    func finish() {
        let waiter = state.withLock { state in
            state.finished = true
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume()
    }

    /// Waits until connections are ready and moves all of them into `batch`, which must be empty
    /// (its capacity is kept for the next batch); returns `false` when accepting has finished and
    /// none are left. One caller at a time: the accept task.
    func next(into batch: inout [Connection]) async -> Bool {
        assert(batch.isEmpty)
        while true {
            let taken = state.withLock { state -> Bool? in
                if !state.ready.isEmpty {
                    swap(&state.ready, &batch)
                    return true
                }
                return state.finished ? false : nil
            }
            if let taken { return taken }
            await withTaskCancellationHandler {
                await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
                    let resumeNow = state.withLock { state in
                        guard state.ready.isEmpty && !state.finished else { return true }
                        state.waiter = continuation
                        return false
                    }
                    if resumeNow { continuation.resume() }
                }
            } onCancel: {
                finish()
            }
        }
    }
}
