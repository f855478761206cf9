import Star
import StarServer
import StarWebSocket

/// A note in the demo's in-memory store.
struct Note: Codable, Sendable {
    var id: Int
    var text: String
}

/// The body of `POST /notes`.
struct NewNote: Decodable, Sendable {
    var text: String
}

/// The demo's store: one instance for the whole app, registered with `Provide`.
actor NoteStore {
    private var notes: [Int: Note] = [1: Note(id: 1, text: "Welcome to Star")]
    private var nextID = 2

    func all() -> [Note] { notes.values.sorted { $0.id < $1.id } }
    func note(_ id: Int) -> Note? { notes[id] }
    func add(_ text: String) -> Note {
        defer { nextID += 1 }
        let note = Note(id: nextID, text: text)
        notes[nextID] = note
        return note
    }
}

struct NotePath: Decodable, Sendable { var id: Int }

@concurrent func home(app: App) async throws -> [String: String] {
    ["service": "star-demo", "notes": try app.url(for: "notes:list"), "hello": try app.url(for: "hello", ["name": "you"])]
}

/// A plain `func`, without `@concurrent`: the compile check that such handlers work in a module
/// with `NonisolatedNonsendingByDefault` (this target turns it on).
func hello(path: PathParams) async -> String {
    "Hello, \(path["name"] ?? "world")!\n"
}

@concurrent func listNotes(store: NoteStore) async -> [Note] {
    await store.all()
}

@concurrent func showNote(path: Path<NotePath>, store: NoteStore) async throws -> Note {
    guard let note = await store.note(path.id) else { throw HTTPError(.notFound, detail: "No note \(path.id)") }
    return note
}

@concurrent func addNote(body: Body<NewNote>, store: NoteStore) async -> Response {
    let note = await store.add(body.text)
    return (try? Response.json(note, status: .created)) ?? Response(status: .internalServerError)
}

/// Echoes every message of the session back, prefixed with the room name: try it with
/// `websocat ws://127.0.0.1:8000/ws/lobby` or a browser's `new WebSocket(...)`.
@concurrent func room(path: PathParams, ws: WebSocket) async throws {
    try await ws.connect()
    let name = path["room"] ?? "?"
    try await ws.send(text: "welcome to \(name)")
    for try await message in ws.messages {
        switch message {
        case .text(let text): try await ws.send(text: "\(name): \(text)")
        case .binary: try await ws.send(message)
        }
    }
}

let app = App(
    routes: [
        Route("/", .get, home, name: "home"),
        Route("/hello/{name}", .get, hello, name: "hello"),
        Include("/notes", name: "notes", routes: [
            Route("/", .get, listNotes, name: "list"),
            Route("/", .post, addNote, name: "add"),
            Route("/{id}", .get, showNote, name: "detail"),
        ]),
        Route("/ws/{room}", .get, room, name: "room"),
    ],
    components: [Provide(NoteStore()), WebSocketComponent()]
)

try await app.main()
