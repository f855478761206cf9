import Star
import StarWebSocketEngine
import Testing

/// The mailbox every transport shares, and the waiter queue under it: cancelling one waiting
/// task resumes that one only.
@Suite struct WaitersTests {
    /// A session's mailbox is stored inline; tasks reach it through the session, here a box.
    final class Session: Sendable {
        let mailbox: WebSocketMailbox
        init(maxQueue: Int = 32) { mailbox = WebSocketMailbox(maxQueue: maxQueue) }
        func receive() async throws -> WebSocketMessage { try await mailbox.receive {} }
    }

    @Test func cancellingOneSenderLeavesTheOtherWaiting() async throws {
        let session = Session()
        session.mailbox.setWritable(false)
        let cancelled = Task { try await session.mailbox.reserveSend() }
        let kept = Task { try await session.mailbox.reserveSend() }
        try await Task.sleep(for: .milliseconds(50))
        cancelled.cancel()
        await #expect(throws: CancellationError.self) { try await cancelled.value }
        try await Task.sleep(for: .milliseconds(50))
        session.mailbox.setWritable(true)
        try await kept.value  // resumed by writability, not by the other's cancellation
        #expect(session.mailbox.statistics.sent == 2)
        #expect(session.mailbox.end == nil)
    }

    @Test func cancellingOneReceiverLeavesTheOthersInOrder() async throws {
        let session = Session()
        let first = Task { try await session.receive() }
        try await Task.sleep(for: .milliseconds(30))
        let cancelled = Task { try await session.receive() }
        try await Task.sleep(for: .milliseconds(30))
        let third = Task { try await session.receive() }
        try await Task.sleep(for: .milliseconds(30))
        cancelled.cancel()
        await #expect(throws: CancellationError.self) { try await cancelled.value }
        _ = session.mailbox.deliver(.text("a"))
        _ = session.mailbox.deliver(.text("b"))
        #expect(try await first.value == .text("a"))
        #expect(try await third.value == .text("b"))
    }

    @Test func theEndReachesEveryWaiterAfterTheQueuedMessages() async throws {
        let session = Session(maxQueue: 2)
        #expect(session.mailbox.deliver(.text("queued")) == false)
        #expect(session.mailbox.deliver(.text("full")) == true, "the second message fills a queue of two")
        session.mailbox.finish(WebSocketDisconnect(code: .goingAway))
        session.mailbox.finish(WebSocketDisconnect(code: .normalClosure))  // the first end wins
        var resumed = false
        #expect(try await session.mailbox.receive { resumed = true } == .text("queued"))
        #expect(resumed, "taking from the full queue lets the transport read again")
        #expect(try await session.receive() == .text("full"))
        await #expect(throws: WebSocketDisconnect(code: .goingAway)) { try await session.receive() }
        await #expect(throws: WebSocketDisconnect(code: .goingAway)) { try await session.mailbox.reserveSend() }
    }
}
