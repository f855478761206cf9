import NIOCore

/// Runs a connection's task — request handling, hooks, handlers, WebSocket sessions — on the
/// event loop that owns the connection's channel, so that a request and its response never
/// cross threads.
///
/// Without it, every request hops from the event loop to Swift's global executor and back:
/// two thread wake-ups per exchange, which measured as most of the server's CPU under load
/// (see docs/decisions.md, "Handlers run on the connection's event loop").
final class EventLoopTaskExecutor: TaskExecutor {
    let eventLoop: any EventLoop

    init(_ eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        eventLoop.execute { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }
}
