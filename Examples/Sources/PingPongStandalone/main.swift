// The seed's second example: no hook; a standalone route whose handler connects and closes itself.
import Star
import StarServer
import StarWebSocket

struct Nice: Encodable, Sendable {
    let msg: String
    let count: Int
}

/// A WebSocket endpoint used to play a terrible game of data ping pong.
@concurrent func welcomeWS(path: PathParams, ws: WebSocket) async throws {
    try await ws.connect()
    for i in 0..<100 {
        try await ws.send(json: Nice(msg: "\(path["path"] ?? "") is nice", count: i))
        _ = try await ws.recv()
    }
    await ws.close()
}

let app = App(
    routes: [Route("/{+path}", .get, welcomeWS, name: "welcome_ws", standalone: true)],
    components: [WebSocketComponent()]
)
try await app.main()
