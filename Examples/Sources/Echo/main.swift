// Echoes every message back as it came: text as text, binary as binary, empty ones too.
// The Autobahn conformance run in `.ci/run` plays against this server.
import Star
import StarServer
import StarWebSocket

@concurrent func echo(ws: WebSocket) async throws {
    try await ws.connect()
    for try await message in ws.messages {
        try await ws.send(message)
    }
}

let app = App(
    routes: [Route("/echo", .get, echo, name: "echo")],
    components: [WebSocketComponent()]  // 16 MiB messages: the server's default (--ws-max-size)
)
try await app.main()
