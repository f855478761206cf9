import HTTPTypes
import Star
import StarTesting
import StarWebSocket
import Synchronization
import Testing

/// The in-memory client keeps the server's WebSocket contract: both ends run the server's engine.
@Suite struct InMemoryContractTests {
    /// Echoes until the peer leaves; remembers how the session ended.
    final class Ending: Sendable {
        let disconnect = Mutex<WebSocketDisconnect?>(nil)
    }

    @Test func aMessagePastTheLimitClosesWith1009() async throws {
        let ending = Ending()
        @Sendable @concurrent func echo(ws: WebSocket) async throws {
            do {
                while true { try await ws.send(try await ws.receive()) }
            } catch let disconnect as WebSocketDisconnect {
                ending.disconnect.withLock { $0 = disconnect }
            }
        }
        let app = App(routes: [Route("/", .get, echo)], components: [WebSocketComponent(maxMessageSize: 10)],
                      eventHooks: [WebSocketAutoHook()])
        let ws = try await TestClient(app).websocketConnect("/")
        try await ws.send(text: "0123456789")
        #expect(try await ws.receiveText() == "0123456789", "exactly the limit is fine")
        try await ws.send(text: "0123456789!")
        #expect(try await ws.waitForClose().code == .messageTooBig)
        await waitUntil { ending.disconnect.withLock { $0 } != nil }
        #expect(ending.disconnect.withLock { $0 }?.code == .messageTooBig)
        await #expect(throws: WebSocketDisconnect.self) { try await ws.send(text: "after the close") }
    }

    @Test func aCloseCodeThatMustNotBeSentIsRefusedWith1002() async throws {
        @Sendable @concurrent func wait(ws: WebSocket) async throws { _ = try await ws.receive() }
        let app = App(routes: [Route("/", .get, wait)], eventHooks: [WebSocketAutoHook()])
        for code: UInt16 in [1005, 1006, 999, 1016, 2999] where code != 1005 {
            let ws = try await TestClient(app).websocketConnect("/")
            await ws.close(code: WebSocketCloseCode(code))
            #expect(try await ws.waitForClose().code == .protocolError, "close code \(code)")
        }
        let ws = try await TestClient(app).websocketConnect("/")
        await ws.close(code: WebSocketCloseCode(4001), reason: "mine")
        #expect(try await ws.waitForClose() == WebSocketDisconnect(code: WebSocketCloseCode(4001)), "a valid code is echoed")
    }

    @Test func theClientsSendsWaitWhileTheHandlersQueueIsFull() async throws {
        let (go, letGo) = AsyncStream<Void>.makeStream()
        @Sendable @concurrent func slow(ws: WebSocket) async throws {
            for await _ in go { break }  // reads nothing until the test says
            for try await message in ws.messages { try await ws.send(message) }
        }
        let app = App(routes: [Route("/", .get, slow)], components: [WebSocketComponent(maxQueue: 2)],
                      eventHooks: [WebSocketAutoHook()])
        let ws = try await TestClient(app).websocketConnect("/")
        try await ws.send(text: "1")
        try await ws.send(text: "2")  // the queue is full now
        let third = Mutex(false)
        let sender = Task {
            try await ws.send(text: "3")
            third.withLock { $0 = true }
        }
        try await Task.sleep(for: .milliseconds(200))
        #expect(third.withLock { $0 } == false, "the third send waits for the handler")
        letGo.yield()
        for expected in ["1", "2", "3"] { #expect(try await ws.receiveText() == expected) }
        try await sender.value
        #expect(third.withLock { $0 })
    }

    @Test func oneCancelledClientSendLeavesTheOtherWaiting() async throws {
        let (go, letGo) = AsyncStream<Void>.makeStream()
        @Sendable @concurrent func slow(ws: WebSocket) async throws {
            for await _ in go { break }
            for try await message in ws.messages { try await ws.send(message) }
        }
        let app = App(routes: [Route("/", .get, slow)], components: [WebSocketComponent(maxQueue: 1)],
                      eventHooks: [WebSocketAutoHook()])
        let ws = try await TestClient(app).websocketConnect("/")
        try await ws.send(text: "first")  // fills the queue
        let cancelled = Task { try await ws.send(text: "cancelled") }
        let kept = Task { try await ws.send(text: "kept") }
        try await Task.sleep(for: .milliseconds(100))
        cancelled.cancel()
        await #expect(throws: CancellationError.self) { try await cancelled.value }
        letGo.yield()
        try await kept.value
        #expect(try await ws.receiveText() == "first")
        #expect(try await ws.receiveText() == "kept")
    }

    @Test func oneCancelledReceiverLeavesTheOthersWorking() async throws {
        let outcome = Mutex<[String]>([])
        @Sendable @concurrent func twoReaders(ws: WebSocket) async throws {
            let cancelled = Task { try await ws.receive() }
            let kept = Task { try await ws.receive() }
            try await Task.sleep(for: .milliseconds(100))  // both wait
            cancelled.cancel()
            if case .failure(let error) = await cancelled.result, error is CancellationError {
                outcome.withLock { $0.append("cancelled") }
            }
            try await ws.send(text: "ready")
            if case .text(let text) = try await kept.value { outcome.withLock { $0.append("kept: \(text)") } }
        }
        let app = App(routes: [Route("/", .get, twoReaders)], eventHooks: [WebSocketAutoHook()])
        let ws = try await TestClient(app).websocketConnect("/")
        #expect(try await ws.receiveText() == "ready")
        try await ws.send(text: "hello")
        #expect(try await ws.waitForClose().code == .normalClosure)
        #expect(outcome.withLock { $0 } == ["cancelled", "kept: hello"])
    }

    @Test func aMalformedHandshakeIsRefusedBeforeTheApp() async throws {
        let reached = Mutex(false)
        @Sendable @concurrent func handler(ws: WebSocket) async throws {
            reached.withLock { $0 = true }
            try await ws.connect()
        }
        let client = try TestClient(App(routes: [Route("/", .get, handler)]))
        let version = await #expect(throws: WebSocketDenied.self) {
            _ = try await client.websocketConnect("/", headers: [.secWebSocketVersion: "8"])
        }
        #expect(version?.response.status == .upgradeRequired)
        #expect(version?.response.headers[.secWebSocketVersion] == "13")
        let key = await #expect(throws: WebSocketDenied.self) {
            _ = try await client.websocketConnect("/", headers: [.secWebSocketKey: "not-a-key"])
        }
        #expect(key?.response.status == .badRequest)
        #expect(reached.withLock { $0 } == false, "the handler never ran")
        _ = try await client.websocketConnect("/")
        #expect(reached.withLock { $0 })
    }

    @Test func thePingTimeoutFiresWhenTheTestAdvancesTheClock() async throws {
        @Sendable @concurrent func idle(ws: WebSocket) async throws { _ = try await ws.receive() }
        let app = App(routes: [Route("/", .get, idle)],
                      components: [WebSocketComponent(pingInterval: .seconds(20), pingTimeout: .seconds(20))],
                      eventHooks: [WebSocketAutoHook()])
        let client = try TestClient(app)
        let answering = try await client.websocketConnect("/")
        let silent = try await client.websocketConnect("/", respondsToPings: false)
        client.clock.advance(by: .seconds(39))
        await #expect(throws: TestTimeout.self) { _ = try await silent.receive(timeout: .milliseconds(50)) }
        client.clock.advance(by: .seconds(1))
        let closed = try await silent.waitForClose()
        #expect(closed == WebSocketDisconnect(code: .internalServerError, reason: "keepalive ping timeout"))
        client.clock.advance(by: .seconds(120))
        await #expect(throws: TestTimeout.self) { _ = try await answering.receive(timeout: .milliseconds(50)) }
        try await answering.send(text: "still here")  // the answering client's session is still open
        #expect(try await answering.waitForClose().code == .normalClosure)
        #expect(client.clock.now == .seconds(160))
    }
}

/// Polls `condition` (up to 5 s) for state another task sets.
func waitUntil(_ condition: @Sendable () -> Bool) async {
    for _ in 0..<500 where !condition() { try? await Task.sleep(for: .milliseconds(10)) }
}
