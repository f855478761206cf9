import NIOCore

/// Runs a connection's task — request handling, hooks, handlers, WebSocket sessions — on the
/// event loop that owns the connection's channel, so that a request and its response never
/// cross threads.
///
/// Without it, every request hops from the event loop to Swift's global executor and back:
/// two thread wake-ups per exchange, which measured as most of the server's CPU under load
/// (see docs/decisions.md, "Handlers run on the connection's event loop").
///
/// It also coalesces flushes: a WebSocket message sent while one of its jobs runs is written at
/// once and flushed when the job returns — when the task suspends or ends — so that a handler
/// that sends several messages in a row hands them to the socket in one system call.
final class EventLoopTaskExecutor: TaskExecutor {
    let eventLoop: any EventLoop

    private struct Batch {
        /// Whether one of this executor's jobs is running.
        var running = false
        /// The channels written to by the running job, to flush when it returns.
        var unflushed: [any Channel] = []
    }
    private let batch: NIOLoopBoundBox<Batch>

    init(_ eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
        self.batch = NIOLoopBoundBox.makeBoxSendingValue(Batch(), eventLoop: eventLoop)
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        eventLoop.execute { self.run(job) }
    }

    private func run(_ job: UnownedJob) {
        batch.value.running = true
        job.runSynchronously(on: asUnownedTaskExecutor())
        batch.value.running = false
        guard !batch.value.unflushed.isEmpty else { return }
        // By index, without a copy: a copy would make the next `removeAll(keepingCapacity:)`
        // allocate a new buffer (one allocation per message). Nothing appends while flushing:
        // only a running job writes.
        var index = 0
        while index < batch.value.unflushed.count {
            batch.value.unflushed[index].flush()
            index += 1
        }
        batch.value.unflushed.removeAll(keepingCapacity: true)
    }

    /// Whether one of this executor's jobs is running on this thread (its loop); if so, `channel`
    /// is flushed when the job returns, and the caller writes to it without flushing.
    func flushWhenTheJobReturns(_ channel: any Channel) -> Bool {
        guard eventLoop.inEventLoop, batch.value.running else { return false }
        // Consecutive sends to one channel register it once; a fan-out flushes each channel once.
        if batch.value.unflushed.last !== channel { batch.value.unflushed.append(channel) }
        return true
    }
}
