import Star
import StarTesting
import StarWebSocket
import Synchronization
import Testing

struct Nice: Codable, Sendable, Equatable {
    let msg: String
    let count: Int
}

struct Boom: Error {}

/// Records what hooks and handlers saw.
final class Log: Sendable {
    private let lines = Mutex<[String]>([])
    func add(_ line: String) { lines.withLock { $0.append(line) } }
    var all: [String] { lines.withLock { $0 } }
}

struct ErrorSpy: EventHook {
    let log: Log
    func onError(_ error: any Error, context: RequestContext) async throws -> Response? {
        log.add("onError: \(error)")
        return nil
    }
}

@Suite struct WebSocketTests {
    @Sendable @concurrent static func welcome(path: PathParams, ws: WebSocket) async throws {
        for i in 0..<100 {
            try await ws.send(json: Nice(msg: "\(path["path"] ?? "") is nice", count: i))
            _ = try await ws.receive()
        }
    }

    @Test func seedGameWithAutoHook() async throws {
        let app = App(routes: [Route("/{+path}", .get, Self.welcome, name: "welcome_ws")],
                      components: [WebSocketComponent()], eventHooks: [WebSocketAutoHook()])
        let ws = try await TestClient(app).websocketConnect("/a/b")
        for i in 0..<100 {
            #expect(try await ws.receiveJSON(as: Nice.self) == Nice(msg: "a/b is nice", count: i))
            try await ws.send(text: "pong")
        }
        #expect(try await ws.waitForClose().code == .normalClosure)
    }

    @Test func standaloneRouteConnectsAndClosesItself() async throws {
        @Sendable @concurrent func handler(ws: WebSocket) async throws {
            #expect(ws.state == .connecting)
            try await ws.connect()
            #expect(ws.state == .connected)
            try await ws.send(text: "hi")
            _ = try await ws.recv()
            await ws.close(code: WebSocketCloseCode(4000), reason: "bye")
            #expect(ws.state == .closed)
            await ws.close()  // idempotent
        }
        let ws = try await TestClient(App(routes: [Route("/", .get, handler, standalone: true)])).websocketConnect("/")
        #expect(try await ws.receiveText() == "hi")
        try await ws.send(text: "x")
        let close = try await ws.waitForClose()
        #expect(close == WebSocketDisconnect(code: WebSocketCloseCode(4000), reason: "bye"))
    }

    @Test func plainGetToAWebSocketRouteIs426() async throws {
        let app = App(routes: [Route("/ws", .get, Self.welcome)], eventHooks: [WebSocketAutoHook()])
        let response = await (try TestClient(app)).get("/ws")
        #expect(response.status == .upgradeRequired)
        #expect(response.headers[.upgrade] == "websocket")
        #expect(try response.json([String: String].self)["detail"]?.contains("WebSocket") == true)
    }

    @Test func returningBeforeConnectDeniesWith403() async throws {
        @Sendable @concurrent func handler(ws: WebSocket) async {}
        do {
            _ = try await TestClient(App(routes: [Route("/", .get, handler)])).websocketConnect("/")
            Issue.record("expected a denial")
        } catch let denied as WebSocketDenied {
            #expect(denied.response.status == .forbidden)
        }
    }

    @Test func throwingBeforeConnectDeniesAndHooksSeeIt() async throws {
        @Sendable @concurrent func handler(ws: WebSocket) async throws { throw Boom() }
        let log = Log()
        do {
            _ = try await TestClient(App(routes: [Route("/", .get, handler)], eventHooks: [ErrorSpy(log: log)])).websocketConnect("/")
            Issue.record("expected a denial")
        } catch let denied as WebSocketDenied {
            #expect(denied.response.status == .forbidden)
        }
        #expect(log.all == ["onError: Boom()"])
    }

    @Test func customDenialResponse() async throws {
        @Sendable @concurrent func handler(ws: WebSocket, headers: Headers) async throws {
            guard headers["Authorization"] == "Bearer good" else {
                try ws.deny(try Response.json(["detail": "no token"], status: .unauthorized))
                return
            }
            try await ws.connect()
        }
        let client = try TestClient(App(routes: [Route("/", .get, handler)]))
        do {
            _ = try await client.websocketConnect("/")
            Issue.record("expected a denial")
        } catch let denied as WebSocketDenied {
            #expect(denied.response.status == .unauthorized)
            #expect(try denied.response.json([String: String].self) == ["detail": "no token"])
        }
        _ = try await client.websocketConnect("/", headers: [.authorization: "Bearer good"])
    }

    @Test func throwingAfterConnectClosesWith1011() async throws {
        let log = Log()
        @Sendable @concurrent func handler(ws: WebSocket) async throws {
            try await ws.connect()
            try await ws.send(text: "before")
            throw Boom()
        }
        let ws = try await TestClient(App(routes: [Route("/", .get, handler)], eventHooks: [ErrorSpy(log: log)])).websocketConnect("/")
        #expect(try await ws.receiveText() == "before")
        #expect(try await ws.waitForClose().code == .internalServerError)
        #expect(log.all == ["onError: Boom()"])
    }

    @Test func subprotocolChosenAndRefused() async throws {
        let log = Log()
        @Sendable @concurrent func handler(ws: WebSocket) async throws {
            if ws.subprotocols.contains("chat") {
                try await ws.connect(subprotocol: "chat")
            } else {
                do {
                    try await ws.connect(subprotocol: "chat")
                } catch let error as WebSocketHandshakeError where error.kind == .subprotocolNotOffered {
                    log.add("refused \(error.subprotocol ?? "?")")
                    try await ws.connect()
                }
            }
        }
        let client = try TestClient(App(routes: [Route("/", .get, handler)]))
        #expect(try await client.websocketConnect("/", subprotocols: ["x", "chat"]).subprotocol == "chat")
        #expect(try await client.websocketConnect("/", subprotocols: ["x"]).subprotocol == nil)
        #expect(log.all == ["refused chat"])
    }

    @Test func decidingAHandshakeTwiceIsAMatchableError() async throws {
        @Sendable @concurrent func handler(ws: WebSocket) async throws {
            try await ws.connect()
            var refused: [String] = []
            do { try await ws.connect() } catch let error as WebSocketHandshakeError where error.kind == .alreadyDecided {
                refused.append("connect")
            }
            do { try ws.deny() } catch let error as WebSocketHandshakeError where error.kind == .alreadyDecided {
                refused.append("deny")
            }
            try await ws.send(text: refused.joined(separator: " "))
        }
        let ws = try await TestClient(App(routes: [Route("/", .get, handler)])).websocketConnect("/")
        #expect(try await ws.receiveText() == "connect deny")
    }

    @Test func receivingBeforeConnectIsNotConnected() async throws {
        let log = Log()
        @Sendable @concurrent func handler(ws: WebSocket) async throws {
            do {
                _ = try await ws.receive()
            } catch let error as WebSocketMessageError {
                log.add("\(error.kind)")
                throw error
            }
        }
        let client = try TestClient(App(routes: [Route("/", .get, handler)]))
        let denied = await #expect(throws: WebSocketDenied.self) { try await client.websocketConnect("/") }
        #expect(denied?.response.status == .forbidden)
        #expect(log.all == ["notConnected"])
    }

    @Test func peerCloseEndsReceiveWithItsCode() async throws {
        let log = Log()
        @Sendable @concurrent func handler(ws: WebSocket) async throws {
            try await ws.connect()
            var received = 0
            for try await _ in ws.messages { received += 1 }
            log.add("messages ended after \(received)")
            do {
                _ = try await ws.receive()
            } catch let disconnect as WebSocketDisconnect {
                log.add("receive threw \(disconnect.code.rawValue) \(disconnect.reason)")
            }
            do {
                try await ws.send(text: "late")
            } catch let disconnect as WebSocketDisconnect {
                log.add("send threw \(disconnect.code.rawValue)")
            }
        }
        let ws = try await TestClient(App(routes: [Route("/", .get, handler)])).websocketConnect("/")
        try await ws.send(text: "a")
        try await ws.send(bytes: [])
        await ws.close(code: .goingAway, reason: "tab closed")
        _ = try await ws.waitForClose()
        #expect(log.all == ["messages ended after 2", "receive threw 1001 tab closed", "send threw 1001"])
    }

    @Test func emptyMessagesAreOrdinaryMessages() async throws {
        @Sendable @concurrent func echo(ws: WebSocket) async throws {
            try await ws.connect()
            for try await message in ws.messages { try await ws.send(message) }
        }
        let ws = try await TestClient(App(routes: [Route("/", .get, echo)])).websocketConnect("/")
        try await ws.send(text: "")
        try await ws.send(bytes: [])
        #expect(try await ws.receive() == .text(""))
        #expect(try await ws.receive() == .binary(ByteBuffer()))
    }

    @Test func typedReceivesAndJSON() async throws {
        @Sendable @concurrent func handler(ws: WebSocket) async throws {
            try await ws.connect()
            let nice = try await ws.receiveJSON(as: Nice.self)
            try await ws.send(json: Nice(msg: nice.msg.uppercased(), count: nice.count + 1))
            let bytes = try await ws.receiveBytes()
            try await ws.send(bytes: bytes.readableBytesView.reversed())
            do {
                _ = try await ws.receiveText()
            } catch let error as WebSocketMessageError where error == .expectedText {
                try await ws.send(text: "\(error.kind)")
            }
            do {
                _ = try await ws.receiveBytes()
            } catch let error as WebSocketMessageError where error.kind == .expectedBinary {
                try await ws.send(bytes: [9])
            }
        }
        let ws = try await TestClient(App(routes: [Route("/", .get, handler)])).websocketConnect("/")
        try await ws.send(json: Nice(msg: "hi", count: 1))
        #expect(try await ws.receiveJSON(as: Nice.self) == Nice(msg: "HI", count: 2))
        try await ws.send(bytes: [1, 2, 3])
        #expect(try await ws.receiveBytes() == [3, 2, 1])
        try await ws.send(bytes: [0])
        await #expect(throws: TestWebSocketError.expectedBinary) { try await ws.receiveBytes() }  // the handler's "expectedText"
        try await ws.send(text: "not bytes")
        let wrong = await #expect(throws: TestWebSocketError.self) { try await ws.receiveText() }
        #expect(wrong?.kind == .expectedText)
    }

    @Test func componentTimersKeepDisableOrReplaceTheServers() async throws {
        let server = WebSocketOptions(pingInterval: .seconds(20), pingTimeout: .seconds(20))
        let kept = WebSocketComponent().options(over: server)
        #expect(kept.pingInterval == .seconds(20) && kept.pingTimeout == .seconds(20), "nil keeps the server's")
        let off = WebSocketComponent(pingInterval: .disabled, pingTimeout: .disabled).options(over: server)
        #expect(off.pingInterval == nil && off.pingTimeout == nil)
        let set = WebSocketComponent(pingInterval: .seconds(5), pingTimeout: .milliseconds(1500)).options(over: server)
        #expect(set.pingInterval == .seconds(5) && set.pingTimeout == .milliseconds(1500))
        #expect(WebSocketComponent(pingInterval: .after(.seconds(1))).options(over: WebSocketOptions(pingInterval: nil)).pingInterval == .seconds(1))

        @Sendable @concurrent func handler(ws: WebSocket) async throws {
            try await ws.connect()
            try await ws.send(text: "\(ws.options.pingInterval == nil) \(ws.options.pingTimeout == .seconds(3))")
        }
        let app = App(routes: [Route("/", .get, handler)],
                      components: [WebSocketComponent(pingInterval: .disabled, pingTimeout: .seconds(3))])
        let ws = try await TestClient(app).websocketConnect("/")
        #expect(try await ws.receiveText() == "true true", "the session runs with the component's timers")
    }

    @Test func concurrentSendersAndAReceiverAtOnce() async throws {
        @Sendable @concurrent func handler(ws: WebSocket) async throws {
            try await ws.connect()
            try await withThrowingTaskGroup(of: Void.self) { group in
                for sender in 0..<4 {
                    group.addTask {
                        for i in 0..<50 { try await ws.send(text: "\(sender):\(i)") }
                    }
                }
                group.addTask {
                    let text = try await ws.receiveText()
                    try await ws.send(text: "got \(text)")
                }
                try await group.waitForAll()
            }
        }
        let ws = try await TestClient(App(routes: [Route("/", .get, handler)])).websocketConnect("/")
        try await ws.send(text: "ping")
        var next = [Int](repeating: 0, count: 4)
        var sawReply = false
        for _ in 0..<201 {
            let text = try await ws.receiveText()
            if text == "got ping" { sawReply = true; continue }
            let parts = text.split(separator: ":").compactMap { Int($0) }
            #expect(parts.count == 2 && parts[1] == next[parts[0]], "each sender's messages arrive in order")
            next[parts[0]] += 1
        }
        #expect(sawReply)
        #expect(next == [50, 50, 50, 50])
    }

    @Test func originAllowList() async throws {
        @Sendable @concurrent func handler(ws: WebSocket) async throws { try await ws.connect() }
        let app = App(routes: [Route("/", .get, handler)],
                      components: [WebSocketComponent(allowedOrigins: ["https://good.example"])])
        let client = try TestClient(app)
        _ = try await client.websocketConnect("/", headers: [.origin: "https://good.example"])
        do {
            _ = try await client.websocketConnect("/", headers: [.origin: "https://evil.example"])
            Issue.record("expected a denial")
        } catch let denied as WebSocketDenied {
            #expect(denied.response.status == .forbidden)
        }
    }

    @Test func hookAndHandlerShareOneWebSocket() async throws {
        struct Greeter: EventHook {
            func onRequest(_ context: RequestContext) async throws -> Response? {
                let ws = try await context.resolve(WebSocket.self)
                try await ws.connect()
                try await ws.send(text: "from hook")
                return nil
            }
        }
        @Sendable @concurrent func handler(ws: WebSocket) async throws {
            #expect(ws.state == .connected, "the hook connected this same instance")
            try await ws.send(text: "from handler")
        }
        let ws = try await TestClient(App(routes: [Route("/", .get, handler)], eventHooks: [Greeter()])).websocketConnect("/")
        #expect(try await ws.receiveText() == "from hook")
        #expect(try await ws.receiveText() == "from handler")
        #expect(try await ws.waitForClose().code == .normalClosure)
    }

    @Test func receiveTimesOutInsteadOfHanging() async throws {
        @Sendable @concurrent func handler(ws: WebSocket) async throws {
            try await ws.connect()
            _ = try await ws.receive()
        }
        let ws = try await TestClient(App(routes: [Route("/", .get, handler)])).websocketConnect("/")
        await #expect(throws: TestTimeout.self) { try await ws.receive(timeout: .milliseconds(50)) }
        await ws.close()
    }
}
