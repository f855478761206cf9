import HTTPTypes
import Star
import StarTesting
import StarWebSocket
import Testing

/// A type whose keys Foundation's encoder would otherwise put in any order.
private struct Many: Codable, Sendable {
    var zeta = 1, alpha = 2, mike = 3, bravo = 4, yankee = 5, charlie = 6, xray = 7, delta = 8
}

/// A type with its own `encode(to:)`: its keys are sorted too.
private struct Custom: Encodable, Sendable {
    enum Keys: String, CodingKey { case second, first, third }
    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: Keys.self)
        try container.encode(2, forKey: .second)
        try container.encode(1, forKey: .first)
        try container.encode(3, forKey: .third)
    }
}

/// A plain function handler: no `@concurrent`.
private func plainHandler(query: QueryParams) async throws -> String {
    "plain \(query["name"] ?? "-")"
}

/// The request id that the app gave the request (what the access log and `request-id` metadata show).
private struct RequestIDProbe: Component {
    let value: String
    static func resolve(in context: RequestContext) async throws -> RequestIDProbe {
        RequestIDProbe(value: context.requestID)
    }
}

@Suite struct NewcomerTests {
    @Test func jsonKeysAreSortedInEveryResponse() async throws {
        let app = App(routes: [
            Route("/many", .get) { () async throws -> Many in Many() },
            Route("/custom", .get) { () async throws -> Custom in Custom() },
        ])
        let client = try TestClient(app)
        let expected = #"{"alpha":2,"bravo":4,"charlie":6,"delta":8,"mike":3,"xray":7,"yankee":5,"zeta":1}"#
        for _ in 0..<20 {
            #expect(await client.get("/many").text == expected)
            #expect(await client.get("/custom").text == #"{"first":1,"second":2,"third":3}"#)
        }
        #expect(String(decoding: try JSON.encode(["b": 1, "a": 2]), as: UTF8.self) == #"{"a":2,"b":1}"#)
    }

    @Test func webSocketJSONKeysAreSorted() async throws {
        @Sendable func send(ws: WebSocket) async throws { try await ws.send(json: Many()) }
        let app = App(routes: [Route("/ws", .get, send)], components: [WebSocketComponent()],
                      eventHooks: [WebSocketAutoHook()])
        let client = try TestClient(app)
        let ws = try await client.websocketConnect("/ws")
        #expect(try await ws.receiveText()
            == #"{"alpha":2,"bravo":4,"charlie":6,"delta":8,"mike":3,"xray":7,"yankee":5,"zeta":1}"#)
        await ws.close()
    }

    @Test func plainFunctionsAndClosuresAreHandlers() async throws {
        let app = App(routes: [
            Route("/plain", .get, plainHandler),
            Route("/closure", .get) { (path: PathParams) async throws -> String in "closure" },
        ])
        let client = try TestClient(app)
        #expect(await client.get("/plain?name=you").text == "plain you")
        #expect(await client.get("/closure").text == "closure")
    }

    @Test func requestIDsReadAsIDs() async throws {
        @Sendable func show(id: RequestIDProbe) async throws -> String { id.value }
        let client = try TestClient(App(routes: [Route("/id", .get, show)]))
        let first = await client.get("/id").text
        let second = await client.get("/id").text
        #expect(first.hasPrefix("req-") && first.count == 10)
        #expect(first != second)
    }
}
