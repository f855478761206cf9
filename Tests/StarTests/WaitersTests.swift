import Star
import StarWebSocketEngine
import Testing

/// The mailbox every transport shares, and the waiter queue under it: cancelling one waiting
/// task resumes that one only.
@Suite struct WaitersTests {
    @Test func cancellingOneSenderLeavesTheOtherWaiting() async throws {
        let mailbox = WebSocketMailbox { }
        mailbox.setWritable(false)
        let cancelled = Task { try await mailbox.reserveSend() }
        let kept = Task { try await mailbox.reserveSend() }
        try await Task.sleep(for: .milliseconds(50))
        cancelled.cancel()
        await #expect(throws: CancellationError.self) { try await cancelled.value }
        try await Task.sleep(for: .milliseconds(50))
        mailbox.setWritable(true)
        try await kept.value  // resumed by writability, not by the other's cancellation
        #expect(mailbox.statistics.sent == 2)
        #expect(mailbox.end == nil)
    }

    @Test func cancellingOneReceiverLeavesTheOthersInOrder() async throws {
        let mailbox = WebSocketMailbox { }
        let first = Task { try await mailbox.receive() }
        try await Task.sleep(for: .milliseconds(30))
        let cancelled = Task { try await mailbox.receive() }
        try await Task.sleep(for: .milliseconds(30))
        let third = Task { try await mailbox.receive() }
        try await Task.sleep(for: .milliseconds(30))
        cancelled.cancel()
        await #expect(throws: CancellationError.self) { try await cancelled.value }
        _ = mailbox.deliver(.text("a"))
        _ = mailbox.deliver(.text("b"))
        #expect(try await first.value == .text("a"))
        #expect(try await third.value == .text("b"))
    }

    @Test func theEndReachesEveryWaiterAfterTheQueuedMessages() async throws {
        let mailbox = WebSocketMailbox(maxQueue: 2) { }
        #expect(mailbox.deliver(.text("queued")) == false)
        #expect(mailbox.deliver(.text("full")) == true, "the second message fills a queue of two")
        mailbox.finish(WebSocketDisconnect(code: .goingAway))
        mailbox.finish(WebSocketDisconnect(code: .normalClosure))  // the first end wins
        #expect(try await mailbox.receive() == .text("queued"))
        #expect(try await mailbox.receive() == .text("full"))
        await #expect(throws: WebSocketDisconnect(code: .goingAway)) { try await mailbox.receive() }
        await #expect(throws: WebSocketDisconnect(code: .goingAway)) { try await mailbox.reserveSend() }
    }
}
