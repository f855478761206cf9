// A server for the outside-peer tests in Tests/Peers (Python `websockets` and raw sockets):
// one route per row of the WebSocket contract that a client can observe.
// Run: swift run ws-test-server --port 8765 (keepalive: ping every 0.5 s, 0.5 s timeout;
// STAR_TEST_KEEPALIVE=off disables it).
import Star
import StarServer
import StarWebSocket
import Foundation
import Synchronization

/// What the handlers observed, read back through `GET /events`.
final class Events: Sendable {
    private let lines = Mutex<[String]>([])
    func add(_ line: String) { lines.withLock { $0.append(line) } }
    var all: [String] { lines.withLock { $0 } }
}

struct Failure: Error {}

@concurrent func echo(ws: WebSocket) async throws {
    try await ws.connect()
    for try await message in ws.messages { try await ws.send(message) }
}

/// Sends a tick every 20 ms and never receives; records how sending ended.
@concurrent func sendOnly(ws: WebSocket, events: Events) async throws {
    try await ws.connect()
    var count = 0
    do {
        while true {
            try await ws.send(text: "tick \(count)")
            count += 1
            try await Task.sleep(for: .milliseconds(20))
        }
    } catch let disconnect as WebSocketDisconnect {
        events.add("send-only: send threw WebSocketDisconnect(\(disconnect.code.rawValue)) after \(count) ticks")
        throw disconnect
    }
}

/// Denies with a custom response unless `?token=secret`.
@concurrent func guarded(ws: WebSocket, query: QueryParams) async throws {
    guard query["token"] == "secret" else {
        try ws.deny(try Response.json(["detail": "bad token"], status: .unauthorized))
        return
    }
    try await ws.connect()
    try await ws.send(text: "welcome")
}

/// Picks `chat.v2` or `chat.v1` when offered; otherwise connects without a subprotocol.
@concurrent func subprotocol(ws: WebSocket) async throws {
    let chosen = ["chat.v2", "chat.v1"].first { ws.subprotocols.contains($0) }
    try await ws.connect(subprotocol: chosen, headers: [HTTPField.Name("X-Star")!: "yes"])
    try await ws.send(text: chosen ?? "none")
    _ = try await ws.receive()
}

@concurrent func throwBefore(ws: WebSocket) async throws { throw Failure() }

@concurrent func throwAfter(ws: WebSocket) async throws {
    try await ws.connect()
    try await ws.send(text: "about to fail")
    throw Failure()
}

/// Connects and waits for messages, recording how the session ended (used for keepalive tests).
@concurrent func idle(ws: WebSocket, events: Events) async throws {
    try await ws.connect()
    do {
        while true { _ = try await ws.receive() }
    } catch let disconnect as WebSocketDisconnect {
        events.add("idle: receive threw WebSocketDisconnect(\(disconnect.code.rawValue), \(disconnect.reason))")
    }
}

/// Sends one message and returns: the server closes with 1000.
@concurrent func hello(ws: WebSocket) async throws {
    try await ws.connect()
    try await ws.send(text: "hello")
}

@concurrent func listEvents(events: Events) async -> [String] { events.all }

/// Counts the messages `/flood` managed to send.
final class FloodCounter: Sendable {
    let sent = Atomic<Int>(0)
}

/// Sends 64 KiB binary messages as fast as `send` allows: against a client that never reads,
/// `send` must suspend once the outbound buffer is full, so the count stops growing. Records how
/// sending ended (a suspended send must still end when the keepalive gives up on the peer).
@concurrent func flood(ws: WebSocket, counter: FloodCounter, events: Events) async throws {
    try await ws.connect()
    let payload = [UInt8](repeating: 0x2A, count: 64 * 1024)
    var count = 0
    do {
        while true {
            try await ws.send(bytes: payload)
            counter.sent.add(1, ordering: .relaxed)
            count += 1
        }
    } catch let disconnect as WebSocketDisconnect {
        events.add("flood: send threw WebSocketDisconnect(\(disconnect.code.rawValue), \(disconnect.reason)) after \(count) messages")
        throw disconnect
    }
}

@concurrent func floodCount(counter: FloodCounter) async -> [String: Int] {
    ["sent": counter.sent.load(ordering: .relaxed)]
}

/// Answers each message with `got N` until the session ends, and records how it ended, tagged
/// with `?tag=` (for the fault tests: a peer that resets mid-message, or a half-open peer, must
/// reach the handler as a `WebSocketDisconnect`).
@concurrent func watch(ws: WebSocket, query: QueryParams, events: Events) async throws {
    let tag = query["tag"] ?? "-"
    try await ws.connect()
    var count = 0
    do {
        while true {
            _ = try await ws.receive()
            count += 1
            try await ws.send(text: "got \(count)")
        }
    } catch let disconnect as WebSocketDisconnect {
        events.add("watch \(tag): ended with WebSocketDisconnect(\(disconnect.code.rawValue), \(disconnect.reason)) after \(count) messages")
    } catch {
        events.add("watch \(tag): ended with \(error) after \(count) messages")
    }
}

/// Connects, then never returns for `?seconds=` (default 60): it sleeps in 100 ms steps that
/// ignore cancellation, receives nothing and swallows every error: a handler that graceful
/// shutdown cannot end, for the shutdown-timeout test.
@concurrent func stubborn(ws: WebSocket, query: QueryParams, events: Events) async throws {
    let seconds = Double(query["seconds"] ?? "") ?? 60
    try await ws.connect()
    events.add("stubborn: connected")
    let end = ContinuousClock.now + .milliseconds(Int64(seconds * 1000))
    var sawCancellation = false
    while ContinuousClock.now < end {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(100)) { continuation.resume() }
        }
        if Task.isCancelled && !sawCancellation {
            sawCancellation = true
            events.add("stubborn: cancelled, ignoring it")
        }
    }
    events.add("stubborn: returned")
}

/// Connects, then throws on the first message it receives: the client sees 1011 every time.
@concurrent func throwOnMessage(ws: WebSocket) async throws {
    try await ws.connect()
    _ = try await ws.receive()
    throw Failure()
}

/// What the server saw of a request: for proxy-header and root-path tests.
struct RequestInfo: Codable, Sendable {
    let client: String
    let scheme: String
    let path: String
    let rootPath: String
    /// `HTTP/1.1`, `HTTP/2`: what the request came over.
    let httpVersion: String
}

@concurrent func info(request: Request) async -> RequestInfo {
    RequestInfo(client: request.clientAddress ?? "", scheme: request.scheme, path: request.path, rootPath: request.rootPath,
                httpVersion: request.httpVersion.description)
}

/// Sends the request info as JSON, then closes.
@concurrent func wsInfo(ws: WebSocket) async throws {
    try await ws.connect()
    let request = ws.request
    try await ws.send(json: RequestInfo(client: request.clientAddress ?? "", scheme: request.scheme,
                                        path: request.path, rootPath: request.rootPath,
                                        httpVersion: request.httpVersion.description))
}

/// Answers after `?ms=` milliseconds (default 1000): an in-flight request during shutdown.
@concurrent func slow(query: QueryParams) async throws -> String {
    try await Task.sleep(for: .milliseconds(Int(query["ms"] ?? "") ?? 1000))
    return "slow done"
}

let events = Events()
/// `STAR_TEST_KEEPALIVE=off` disables pings, for tests whose client never reads.
let keepalive = ProcessInfo.processInfo.environment["STAR_TEST_KEEPALIVE"] != "off"
let app = App(
    routes: [
        Route("/echo", .get, echo),
        Route("/send-only", .get, sendOnly),
        Route("/guarded", .get, guarded),
        Route("/subprotocol", .get, subprotocol),
        Route("/throw-before", .get, throwBefore),
        Route("/throw-after", .get, throwAfter),
        Route("/idle", .get, idle),
        Route("/hello", .get, hello),
        Route("/events", .get, listEvents),
        Route("/flood", .get, flood),
        Route("/info", .get, info),
        Route("/ws-info", .get, wsInfo),
        Route("/slow", .get, slow),
        Route("/flood-count", .get, floodCount),
        Route("/watch", .get, watch),
        Route("/stubborn", .get, stubborn),
        Route("/throw-on-message", .get, throwOnMessage),
    ],
    components: [
        WebSocketComponent(maxMessageSize: 1 << 20, pingInterval: keepalive ? .milliseconds(500) : .disabled, pingTimeout: .milliseconds(500)),
        Provide(events),
        Provide(FloodCounter()),
    ]
)
try await app.main()
