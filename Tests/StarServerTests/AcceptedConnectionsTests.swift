import Testing

@testable import StarServer

/// The hand-over from the listening channel to the accept task (``AcceptedConnections``), with
/// numbers for connections.
@Suite struct AcceptedConnectionsTests {
    @Test func connectionsHandedOverBeforeTheWaitAreTakenInOneBatchInOrder() async {
        let accepted = AcceptedConnections<Int>()
        for connection in 1...3 { #expect(accepted.append(connection)) }
        var batch: [Int] = []
        #expect(await accepted.next(into: &batch))
        #expect(batch == [1, 2, 3])
    }

    @Test func aWaitingAcceptTaskWakesForTheNextConnection() async {
        let accepted = AcceptedConnections<Int>()
        let waiting = Task {
            var batch: [Int] = []
            let more = await accepted.next(into: &batch)
            return (more, batch)
        }
        // Hand over once the task is (very likely) waiting: the path every connection after a pause takes.
        try? await Task.sleep(for: .milliseconds(50))
        #expect(accepted.append(7))
        let (more, batch) = await waiting.value
        #expect(more)
        #expect(batch == [7])
    }

    @Test func finishingEndsTheWaitAfterWhatWasHandedOver() async {
        let accepted = AcceptedConnections<Int>()
        #expect(accepted.append(1))
        accepted.finish()
        #expect(!accepted.append(2), "a connection handed over after the end is refused (its caller closes it)")
        var batch: [Int] = []
        #expect(await accepted.next(into: &batch))
        #expect(batch == [1])
        batch.removeAll()
        #expect(await !accepted.next(into: &batch))
        #expect(batch.isEmpty)
    }

    @Test func cancellingTheAcceptTaskEndsItsWait() async {
        let accepted = AcceptedConnections<Int>()
        let waiting = Task {
            var batch: [Int] = []
            return await accepted.next(into: &batch)
        }
        waiting.cancel()
        #expect(await !waiting.value)
        #expect(!accepted.append(1))
    }
}
