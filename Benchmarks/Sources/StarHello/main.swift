// star-hello: the two benchmark routes on Star.
//
//   star-hello --port 8081 --no-access-log
//
// Options are `app.main()`'s own (`--host` defaults to 127.0.0.1); run-http.sh passes
// `--no-access-log` so no server logs a line per request.
import Star
import StarServer

struct Message: Encodable, Sendable {
    var message: String
}

@concurrent func plaintext() async -> String {
    "Hello, World!"
}

@concurrent func json() async -> Message {
    Message(message: "Hello, World!")
}

let app = App(routes: [
    Route("/plaintext", .get, plaintext, name: "plaintext"),
    Route("/json", .get, json, name: "json"),
])

try await app.main()
