import Crypto
import Foundation
import Star
import StarBroadcast
import StarFiles
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
    func after(_ id: Int) -> [Note] { all().filter { $0.id > id } }
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
    ["service": "star-demo", "page": try app.url(for: "static", ["path": ""]), "notes": try app.url(for: "notes:list"),
     "events": try app.url(for: "notes:events"), "hello": try app.url(for: "hello", ["name": "you"])]
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

@concurrent func addNote(body: Body<NewNote>, store: NoteStore, broadcast: Broadcast) async throws -> Response {
    let note = await store.add(body.text)
    try await broadcast.publish("notes", json: note)
    return try Response.json(note, status: .created)
}

/// The notes as they are created, as Server-Sent Events (`id` is the note's id). A browser that
/// reconnects sends `Last-Event-ID: N` and first gets the notes after N; a new one gets them all.
@concurrent func noteEvents(lastEventID: LastEventID, store: NoteStore, broadcast: Broadcast) async -> Response {
    .eventStream { events in
        // Subscribed before reading the store, so a note created meanwhile is not missed.
        try await broadcast.subscribe(to: "notes") { created in
            var last = Int(lastEventID.value ?? "") ?? 0
            for note in await store.after(last) {
                try await events.send(data: String(decoding: try JSON.encode(note), as: UTF8.self), event: "note", id: "\(note.id)")
                last = note.id
            }
            for await event in created {
                guard case .text(let json) = event.message, let note = try? JSON.decode(Note.self, from: Array(json.utf8)),
                      note.id > last else { continue }
                try await events.send(data: json, event: "note", id: "\(note.id)")
                last = note.id
            }
        }
    }
}

struct Upload: Encodable, Sendable {
    var bytes: Int
    var sha256: String
}

/// Streams the body through SHA-256 as it arrives (up to 1 GiB): the upload is never held in memory.
@concurrent func upload(request: Request) async throws -> Upload {
    var hash = SHA256()
    var bytes = 0
    for try await chunk in request.body {
        chunk.withUnsafeReadableBytes { hash.update(bufferPointer: $0) }
        bytes += chunk.readableBytes
    }
    return Upload(bytes: bytes, sha256: hash.finalize().map { String(format: "%02x", $0) }.joined())
}

/// The page and its assets, copied next to the executable (the target's resources).
let publicFolder = Bundle.module.resourceURL!.appendingPathComponent("Public").path

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
            Route("/events", .get, noteEvents, name: "events"),
            Route("/{id}", .get, showNote, name: "detail"),
        ]),
        Route("/upload", .post, upload, name: "upload", maxBodySize: 1 << 30),
        Route("/ws/{room}", .get, room, name: "room"),
        StaticFiles("/static", folder: publicFolder),
    ],
    components: [Provide(NoteStore()), WebSocketComponent(), try BroadcastComponent()],
    // Pages of any origin may read and add notes from a browser (a real app lists its origins).
    eventHooks: [CORSHook(allowedOrigins: ["*"], allowedMethods: [.get, .post], allowedHeaders: ["Content-Type"])]
)

try await app.main()
