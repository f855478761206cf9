// The seed's first example: `WebSocketAutoHook` connects before the handler and closes after it.
import Star
import StarServer
import StarWebSocket

struct Nice: Encodable, Sendable {
    let msg: String
    let count: Int
}

/// A WebSocket endpoint used to play a terrible game of data ping pong.
@concurrent func welcomeWS(path: PathParams, ws: WebSocket) async throws {
    for i in 0..<100 {
        try await ws.send(json: Nice(msg: "\(path["path"] ?? "") is nice", count: i))
        _ = try await ws.receive()
    }
}

let app = App(
    routes: [Route("/{+path}", .get, welcomeWS, name: "welcome_ws")],
    components: [WebSocketComponent()],
    eventHooks: [WebSocketAutoHook()]
)
try await app.main()
