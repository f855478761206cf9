import NIOCore
import NIOEmbedded
@testable import StarServer
import Synchronization
import Testing

/// Records the outbound events that reach it, in order.
private final class OutboundRecorder: ChannelOutboundHandler, Sendable {
    typealias OutboundIn = ByteBuffer
    let events = Mutex<[String]>([])

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        events.withLock { $0.append("write \(unwrapOutboundIn(data).readableBytes)") }
        context.write(data, promise: promise)
    }

    func flush(context: ChannelHandlerContext) {
        events.withLock { $0.append("flush") }
        context.flush()
    }
}

/// ``EventLoopTaskExecutor`` flushes the channels a job wrote to when the job returns.
@Suite struct FlushCoalescingTests {
    /// Writes as a WebSocket session sends: unflushed when the running job will flush.
    private func send(_ size: Int, to channel: any Channel, with executor: EventLoopTaskExecutor) {
        if executor.flushWhenTheJobReturns(channel) {
            channel.write(ByteBuffer(repeating: 0, count: size), promise: nil)
        } else {
            channel.writeAndFlush(ByteBuffer(repeating: 0, count: size), promise: nil)
        }
    }

    @Test func writesOfOneJobAreFlushedOnceWhenItReturns() async throws {
        let loop = NIOAsyncTestingEventLoop()
        let channel = NIOAsyncTestingChannel(loop: loop)
        let recorder = OutboundRecorder()
        try await channel.pipeline.addHandler(recorder)
        let executor = EventLoopTaskExecutor(loop)

        let task = Task(executorPreference: executor) {
            for size in 1...3 { send(size, to: channel, with: executor) }
            await Task.yield()  // the job ends here: the flush goes out before the next job runs
            send(4, to: channel, with: executor)
        }
        let deadline = ContinuousClock.now + .seconds(10)
        while recorder.events.withLock({ $0.count }) < 6 && ContinuousClock.now < deadline {
            await loop.run()
            try await Task.sleep(for: .milliseconds(1))
        }
        await task.value
        #expect(recorder.events.withLock { $0 } == ["write 1", "write 2", "write 3", "flush", "write 4", "flush"])

        // Not from one of its jobs: flushed at once.
        #expect(!executor.flushWhenTheJobReturns(channel))
        send(5, to: channel, with: executor)
        await loop.run()
        #expect(recorder.events.withLock { $0 }.suffix(2) == ["write 5", "flush"])
        try await channel.close()
        await loop.shutdownGracefully()
    }
}

/// What the executor-order tests share with their tasks.
private final class Waiting: Sendable {
    /// What ran, in order: the tasks' steps and the loop's own closures.
    let log = Mutex<[String]>([])
    /// The tasks' continuations, by name, once they wait.
    let continuations = Mutex<[String: CheckedContinuation<Void, Never>]>([:])
}

/// ``EventLoopTaskExecutor`` runs the jobs resumed on its loop in the order they were resumed, and a
/// job that another job wakes waits behind the loop work queued before it (sessions that wake each
/// other never starve the loop).
@Suite struct ExecutorOrderTests {
    private let waiting = Waiting()

    /// Runs the testing loop's work until `done` holds (at most 10 s).
    private func pump(_ loop: NIOAsyncTestingEventLoop, until done: () -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(10)
        while !done() && ContinuousClock.now < deadline {
            await loop.run()
            try await Task.sleep(for: .milliseconds(1))
        }
        try #require(done())
    }

    /// A task on `executor` that waits until resumed under `name`, then logs `name` and runs `then`.
    private func waiter(_ name: String, on executor: EventLoopTaskExecutor,
                        then: @escaping @Sendable () -> Void = {}) -> Task<Void, Never> {
        Task(executorPreference: executor) { [waiting] in
            await withCheckedContinuation { continuation in waiting.continuations.withLock { $0[name] = continuation } }
            then()
            waiting.log.withLock { $0.append(name) }
        }
    }

    @Test func jobsResumedOnTheLoopRunInTheOrderTheyWereResumed() async throws {
        let loop = NIOAsyncTestingEventLoop()
        let executor = EventLoopTaskExecutor(loop)
        let names = ["a", "b", "c", "d", "e"]
        let tasks = names.map { waiter($0, on: executor) }
        try await pump(loop) { waiting.continuations.withLock { $0.count } == names.count }
        let resumable = waiting.continuations.withLock { $0 }
        // As a channel handler does: one read resumes several sessions, from the loop.
        loop.execute { for name in ["d", "a", "e", "b", "c"] { resumable[name]!.resume() } }
        try await pump(loop) { waiting.log.withLock { $0.count } == names.count }
        for task in tasks { await task.value }
        #expect(waiting.log.withLock { $0 } == ["d", "a", "e", "b", "c"])
        await loop.shutdownGracefully()
    }

    @Test func aJobMadeReadyByADrainedJobWaitsBehindTheLoopsOtherWork() async throws {
        let loop = NIOAsyncTestingEventLoop()
        let executor = EventLoopTaskExecutor(loop)
        let sleeper = waiter("sleeper", on: executor)
        let waker = waiter("waker", on: executor) { [waiting] in
            // Resumed from the loop: queues loop work, then wakes the sleeper (a session waking another).
            loop.execute { waiting.log.withLock { $0.append("loop work") } }
            waiting.continuations.withLock { $0["sleeper"] }!.resume()
        }
        try await pump(loop) { waiting.continuations.withLock { $0.count } == 2 }
        let wake = waiting.continuations.withLock { $0["waker"] }!
        loop.execute { wake.resume() }
        try await pump(loop) { waiting.log.withLock { $0.count } == 3 }
        await waker.value
        await sleeper.value
        #expect(waiting.log.withLock { $0 } == ["waker", "loop work", "sleeper"])
        await loop.shutdownGracefully()
    }
}

/// ``HTTP2FlushCoalescer``: the flushes of a burst reach the socket as one, and a close flushes first.
@Suite struct HTTP2FlushCoalescerTests {
    @Test func theFlushesOfABurstAreOneFlushAfterTheLoopsQueuedWork() throws {
        let recorder = OutboundRecorder()
        let channel = EmbeddedChannel(handlers: [recorder, HTTP2FlushCoalescer()])
        for size in 1...3 {
            channel.write(ByteBuffer(repeating: 0, count: size), promise: nil)
            channel.flush()
        }
        #expect(recorder.events.withLock { $0 } == ["write 1", "write 2", "write 3"], "writes pass at once, the flush waits")
        channel.embeddedEventLoop.run()
        #expect(recorder.events.withLock { $0 } == ["write 1", "write 2", "write 3", "flush"])
        channel.write(ByteBuffer(repeating: 0, count: 4), promise: nil)
        channel.flush()
        channel.embeddedEventLoop.run()
        #expect(recorder.events.withLock { $0 }.suffix(2) == ["write 4", "flush"])
        _ = try? channel.finish()
    }

    @Test func aCloseFlushesWhatWasWrittenFirst() throws {
        let recorder = OutboundRecorder()
        let channel = EmbeddedChannel(handlers: [recorder, HTTP2FlushCoalescer()])
        channel.write(ByteBuffer(repeating: 0, count: 7), promise: nil)
        channel.flush()
        channel.close(promise: nil)
        #expect(recorder.events.withLock { $0 } == ["write 7", "flush"])
        channel.embeddedEventLoop.run()
        #expect(recorder.events.withLock { $0 } == ["write 7", "flush"], "the queued flush finds nothing to do")
    }
}
