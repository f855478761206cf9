import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import Star
import StarServer
import Synchronization
import Testing

/// What the streaming routes saw, for the tests to read.
final class StreamProbe: Sendable {
    let written = Atomic<Int>(0)
    let ended = Mutex<String?>(nil)
}

let streamProbe = StreamProbe()

@concurrent func streamedDownload(query: QueryParams) async -> Response {
    let chunks = Int(query["chunks"] ?? "") ?? 64
    return Response(headers: [.contentType: "application/octet-stream"], body: .stream { writer in
        for index in 0..<chunks {
            try await writer.write(ByteBuffer(repeating: UInt8(index % 251), count: 64 * 1024))
            streamProbe.written.add(1, ordering: .relaxed)
        }
    })
}

@concurrent func failsMidStream() async -> Response {
    Response(body: .stream { writer in
        try await writer.write("first part|")
        throw HTTPError(.internalServerError)
    })
}

@concurrent func endlessEvents() async -> Response {
    .eventStream(keepAlive: nil) { events in
        try await events.send(data: "hello", id: "1")
        do {
            try await Task.sleep(for: .seconds(60))
        } catch {
            streamProbe.ended.withLock { $0 = "\(type(of: error))" }
            throw error
        }
    }
}

/// Reads the body as it comes, slowly, and answers how much it read.
@concurrent func countUpload(request: Request) async throws -> String {
    var bytes = 0
    for try await chunk in request.body { bytes += chunk.readableBytes }
    return "\(bytes)"
}

let streamingApp = App(routes: [
    Route("/download", .get, streamedDownload),
    Route("/fails", .get, failsMidStream),
    Route("/events", .get, endlessEvents),
    Route("/upload", .post, countUpload, maxBodySize: 64 << 20),
])

@Suite(.serialized) struct StreamingServerTests {
    @Test func aStreamedDownloadArrivesWholeAndChunked() async throws {
        try await withServer(streamingApp) { port in
            let response = try await HTTPClient.shared.execute(
                HTTPClientRequest(url: "http://127.0.0.1:\(port)/download?chunks=64"), timeout: .seconds(30))
            #expect(response.status == .ok)
            #expect(response.headers.first(name: "transfer-encoding") == "chunked")
            let body = try await response.body.collect(upTo: 8 << 20)
            #expect(body.readableBytes == 64 * 64 * 1024)
            #expect(body.getInteger(at: 64 * 1024 * 5, as: UInt8.self) == 5)
        }
    }

    @Test func aClientThatDoesNotReadHoldsTheWriterBack() async throws {
        try await withServer(streamingApp) { port in
            let socket = try RawSocket(port: port, receiveBuffer: 8 * 1024)
            let before = streamProbe.written.load(ordering: .relaxed)
            try socket.send("GET /download?chunks=200 HTTP/1.1\r\nHost: x\r\n\r\n")  // 12.5 MiB
            try await Task.sleep(for: .milliseconds(500))
            let stalled = streamProbe.written.load(ordering: .relaxed) - before
            try await Task.sleep(for: .milliseconds(300))
            let later = streamProbe.written.load(ordering: .relaxed) - before
            // What the kernel's socket buffers and NIO's high-water mark hold (~50 chunks here), then nothing.
            #expect(stalled > 0 && stalled < 150, "\(stalled) of 200 chunks of 64 KiB written to a client that reads nothing")
            #expect(later == stalled, "the writer waits while the client does not read (\(stalled) → \(later))")
            let received = await socket.readBytes(until: "\r\n0\r\n\r\n")
            #expect(received.count > 200 * 64 * 1024, "reading lets the writer go on to the end")
        }
    }

    @Test func aStreamThatThrowsCutsTheConnectionShort() async throws {
        try await withServer(streamingApp) { port in
            let socket = try RawSocket(port: port)
            try socket.send("GET /fails HTTP/1.1\r\nHost: x\r\n\r\n")
            let (text, closed) = await socket.read()
            #expect(closed && text.hasPrefix("HTTP/1.1 200 OK") && text.contains("first part|"))
            #expect(!text.hasSuffix("0\r\n\r\n"), "the chunked body is never ended: the client sees it cut short")
            #expect(text.occurrences(of: "HTTP/1.1") == 1, "never a second response after part of one")
        }
    }

    @Test func aClientThatLeavesCancelsTheEventStream() async throws {
        try await withServer(streamingApp) { port in
            streamProbe.ended.withLock { $0 = nil }
            let socket = try RawSocket(port: port)
            try socket.send("GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
            let (text, _) = await socket.read { $0.contains("data: hello\n\n") }
            #expect(text.contains("content-type: text/event-stream; charset=utf-8") || text.contains("Content-Type: text/event-stream"))
            #expect(text.contains("id: 1\ndata: hello\n\n"))
            socket.closeNow()
            for _ in 0..<200 where streamProbe.ended.withLock({ $0 }) == nil { try await Task.sleep(for: .milliseconds(10)) }
            #expect(streamProbe.ended.withLock { $0 } == "CancellationError")
        }
    }

    @Test func aLargeUploadStreamsThroughTheHandler() async throws {
        try await withServer(streamingApp) { port in
            var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/upload")
            request.method = .POST
            let chunk = ByteBuffer(repeating: 0x61, count: 256 * 1024)
            request.body = .stream(AsyncStream { continuation in
                for _ in 0..<64 { continuation.yield(chunk) }  // 16 MiB, chunked
                continuation.finish()
            }, length: .unknown)
            let response = try await HTTPClient.shared.execute(request, timeout: .seconds(60))
            #expect(response.status == .ok)
            #expect(try await String(buffer: response.body.collect(upTo: 1024)) == "\(16 << 20)")
        }
    }

    @Test func theConnectionServesTheNextRequestAfterAStreamedBody() async throws {
        try await withServer(streamingApp) { port in
            let socket = try RawSocket(port: port)
            let size = 3 << 20  // past the buffered limit and the stream's high-water mark: reads are held
            try socket.send("POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: \(size)\r\n\r\n"
                            + String(repeating: "z", count: size) + "GET /upload HTTP/1.1\r\nHost: x\r\n\r\n")
            let (text, closed) = await socket.read { $0.contains("HTTP/1.1 405") }
            #expect(!closed && text.hasPrefix("HTTP/1.1 200 OK") && text.contains("\r\n\r\n\(size)"), "\(text.prefix(200))")
            #expect(text.contains("HTTP/1.1 405"), "the request after the body is read and answered")
        }
    }

    @Test func expectContinueWaitsForTheHandlerToRead() async throws {
        try await withServer(streamingApp) { port in
            let socket = try RawSocket(port: port)
            try socket.send("POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
            let (interim, _) = await socket.read { $0.contains("\r\n\r\n") }
            #expect(interim == "HTTP/1.1 100 Continue\r\n\r\n")
            try socket.send("hello")
            let (final, _) = await socket.read { $0.hasSuffix("\r\n\r\n5") }
            #expect(final.hasPrefix("HTTP/1.1 200 OK"))

            let refused = try RawSocket(port: port)
            try refused.send("POST /download HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
            let (answer, _) = await refused.read { $0.contains("}") }
            #expect(answer.hasPrefix("HTTP/1.1 405"), "answered without the body: no 100 first (\(answer.prefix(40)))")
        }
    }
}
