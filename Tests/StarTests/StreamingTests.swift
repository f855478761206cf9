import NIOCore
import Star
import StarTesting
import Synchronization
import Testing

/// Streamed bodies, body limits per route, and Server-Sent Events, in memory.
@Suite struct StreamingTests {
    @concurrent static func count(request: Request) async throws -> String {
        var bytes = 0
        for try await chunk in request.body { bytes += chunk.readableBytes }
        return "\(bytes)"
    }

    @concurrent static func numbers() async -> Response {
        Response(headers: [.contentType: "text/plain"], body: .stream { writer in
            for n in 1...1_000 { try await writer.write("\(n)\n") }
        })
    }

    @concurrent static func sized() async -> Response {
        Response(body: .stream(contentLength: 6) { writer in
            try await writer.write("abc")
            try await writer.write("def")
        })
    }

    static let app = App(routes: [
        Route("/count", .post, count),
        Route("/upload", .post, count, name: "upload", maxBodySize: 4 << 20),
        Route("/numbers", .get, numbers),
        Route("/sized", .get, sized),
    ], configuration: .init(maxBodySize: 1024))

    @Test func aStreamedResponseIsReadToItsEnd() async throws {
        let client = try TestClient(Self.app)
        let response = await client.get("/numbers")
        #expect(response.status == .ok)
        let lines = response.text.split(separator: "\n")
        #expect(lines.count == 1_000 && lines.first == "1" && lines.last == "1000")
        #expect(response.response.body.buffer == nil && response.response.body.contentLength == nil)
    }

    @Test func headOfAStreamRunsNoWriterAndKeepsADeclaredLength() async throws {
        let client = try TestClient(Self.app)
        let sized = await client.head("/sized")
        #expect(sized.body.isEmpty && sized.headers[.contentLength] == "6")
        #expect(await client.get("/sized").text == "abcdef")
        #expect(await client.head("/numbers").headers[.contentLength] == nil, "unknown length: none")
    }

    @Test func eachRouteHasItsBodyLimit() async throws {
        let client = try TestClient(Self.app)
        #expect(await client.post("/count", body: ByteBuffer(repeating: 1, count: 1024)).text == "1024")
        let over = await client.post("/count", body: ByteBuffer(repeating: 1, count: 1025))
        #expect(over.status == .contentTooLarge, "the app's 1 KiB")
        #expect(await client.post("/upload", body: ByteBuffer(repeating: 1, count: 1 << 20)).text == "\(1 << 20)",
                "the upload route's own 4 MiB")
        let declared = await client.post("/upload", headers: [.contentLength: "\(5 << 20)"], body: ByteBuffer(repeating: 1, count: 8))
        #expect(declared.status == .contentTooLarge, "a declared length over the limit is refused before the handler")
    }

    @Test func collectingTwiceGivesTheSameBytes() async throws {
        @Sendable @concurrent func twice(request: Request) async throws -> String {
            let first = try await request.body.collect(upTo: 100)
            let second = try await request.body.collect(upTo: 100)
            return "\(String(buffer: first))|\(String(buffer: second))"
        }
        let client = try TestClient(App(routes: [Route("/", .post, twice)]))
        #expect(await client.post("/", body: ByteBuffer(string: "hello")).text == "hello|hello")
        let tooLarge = await client.post("/", body: ByteBuffer(repeating: 1, count: 101))
        #expect(tooLarge.status == .contentTooLarge, "collect(upTo:) is a limit too")
    }

    @Test func serverSentEventsAreFramedAsTheSpecSays() {
        #expect(ServerSentEvent(data: "hello").serialized == "data: hello\n\n")
        #expect(ServerSentEvent(data: "a\nb\r\nc\rd", event: "note", id: "7", retry: .seconds(3)).serialized
                == "id: 7\nevent: note\nretry: 3000\ndata: a\ndata: b\ndata: c\ndata: d\n\n")
        #expect(ServerSentEvent(data: "", event: "x\ny", id: "1\r2").serialized == "id: 1 2\nevent: x y\ndata: \n\n",
                "a line break in a field would start another field")
    }

    /// Sends the notes after `Last-Event-ID`, then waits; records that the client's leaving cancelled it.
    final class Feed: Sendable {
        let ended = Mutex<String?>(nil)
    }

    @Test func anEventStreamResumesAfterLastEventIDAndEndsWhenTheClientLeaves() async throws {
        let feed = Feed()
        @Sendable @concurrent func events(lastEventID: LastEventID) async -> Response {
            .eventStream(keepAlive: .milliseconds(50)) { events in
                let after = Int(lastEventID.value ?? "") ?? 0
                for id in (after + 1)...(after + 2) { try await events.send(data: "note \(id)\nsecond line", event: "note", id: "\(id)") }
                do {
                    try await Task.sleep(for: .seconds(60))
                    feed.ended.withLock { $0 = "slept" }
                } catch {
                    feed.ended.withLock { $0 = "\(type(of: error))" }
                    throw error
                }
            }
        }
        let client = try TestClient(App(routes: [Route("/events", .get, events)]))
        let stream = await client.stream(.get, "/events", headers: [.init("Last-Event-ID")!: "41"])
        #expect(stream.status == .ok && stream.headers[.contentType] == "text/event-stream; charset=utf-8")
        #expect(stream.headers[.cacheControl] == "no-cache")
        let first = try await stream.nextEvent()
        #expect(first == ServerSentEvent(data: "note 42\nsecond line", event: "note", id: "42"))
        #expect(try await stream.nextEvent()?.id == "43")
        let keepAlive = try await stream.nextChunk()
        #expect(keepAlive.map { String(buffer: $0) } == ": keep-alive\n\n", "a comment while no event is due")
        stream.cancel()
        for _ in 0..<100 where feed.ended.withLock({ $0 }) == nil { try await Task.sleep(for: .milliseconds(10)) }
        #expect(feed.ended.withLock { $0 } == "CancellationError", "the handler's wait is cancelled, never left hanging")
    }
}
