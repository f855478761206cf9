// A chat: rooms at /ws/{room}, every message to everyone in the room — on every server process
// that shares the broadcast backend. A page to use it from a browser is at /.
//
//   swift run chat                                                  # one process, memory://
//   swift run chat --port 8001 --broadcast-url postgres://star:star@127.0.0.1:5432/star
//   swift run chat --port 8002 --broadcast-url postgres://star:star@127.0.0.1:5432/star
import Foundation
import Star
import StarBroadcast
import StarServer
import StarWebSocket

/// The page at `/`, read once at startup from the target's resources.
let page: String = {
    guard let url = Bundle.module.url(forResource: "index", withExtension: "html"),
          let html = try? String(contentsOf: url, encoding: .utf8) else { return "<p>index.html is missing</p>" }
    return html
}()

@concurrent func home() async -> Response {
    Response(status: .ok, headers: [.contentType: "text/html; charset=utf-8"], body: ByteBuffer(string: page))
}

/// Every text message a client sends goes to the room; every message of the room comes back to
/// the client, its own included. While the broadcast backend is down the sender gets
/// `{"error": …}` instead, and the socket stays open.
@concurrent func room(path: PathParams, ws: WebSocket, broadcast: Broadcast) async throws {
    let room = path["room"] ?? "lobby"
    // Subscribed before the handshake is answered: everything published once the client sees
    // the socket open reaches it.
    try await broadcast.subscribe(to: room) { events in
        try await ws.connect()
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask {
                for await event in events { try await ws.send(event.message) }
            }
            for try await message in ws.messages {
                do {
                    try await broadcast.publish(room, message)
                } catch let error as BroadcastError {
                    try await ws.send(json: ["error": error.description])
                }
            }
            group.cancelAll()
        }
    }
}

let app = App(
    routes: [
        Route("/", .get, home, name: "home"),
        Route("/ws/{room}", .get, room, name: "room"),
    ],
    components: [WebSocketComponent(), try BroadcastComponent()]
)
try await app.main()
