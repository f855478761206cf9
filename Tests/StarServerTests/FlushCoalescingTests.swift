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

/// ``EventLoopTaskExecutor`` flushes what a job wrote when the job returns.
@Suite struct FlushCoalescingTests {
    @Test func writesOfOneJobAreFlushedOnceWhenItReturns() async throws {
        let loop = NIOAsyncTestingEventLoop()
        let channel = NIOAsyncTestingChannel(loop: loop)
        let recorder = OutboundRecorder()
        try await channel.pipeline.addHandler(recorder)
        let executor = EventLoopTaskExecutor(loop)

        let task = Task(executorPreference: executor) {
            for size in 1...3 { executor.write(ByteBuffer(repeating: 0, count: size), to: channel) }
            await Task.yield()  // the job ends here: the flush goes out before the next job runs
            executor.write(ByteBuffer(repeating: 0, count: 4), to: channel)
        }
        let deadline = ContinuousClock.now + .seconds(10)
        while recorder.events.withLock({ $0.count }) < 6 && ContinuousClock.now < deadline {
            await loop.run()
            try await Task.sleep(for: .milliseconds(1))
        }
        await task.value
        #expect(recorder.events.withLock { $0 } == ["write 1", "write 2", "write 3", "flush", "write 4", "flush"])

        // Not from one of its jobs: flushed at once.
        executor.write(ByteBuffer(repeating: 0, count: 5), to: channel)
        await loop.run()
        #expect(recorder.events.withLock { $0 }.suffix(2) == ["write 5", "flush"])
        try await channel.close()
        await loop.shutdownGracefully()
    }
}
