public import HTTPTypes
public import NIOCore
public import Star
import Foundation
import Synchronization

extension TestClient {
    /// Sends a request and returns once the response's head is ready, with its body still coming:
    /// for Server-Sent Events and other bodies that do not end.
    ///
    /// ```swift
    /// let feed = await client.stream(.get, "/notes/events")
    /// #expect(feed.headers[.contentType] == "text/event-stream; charset=utf-8")
    /// let first = try await feed.nextEvent()
    /// feed.cancel()  // as a browser closing the page: the handler's stream is cancelled
    /// ```
    ///
    /// - Parameters:
    ///   - method: The method (`GET` by default).
    ///   - target: The path and query (`/notes/events`).
    ///   - headers: Extra header fields (`Last-Event-ID`, …).
    ///   - body: The request body.
    ///   - timeout: How long each `next…` call may wait before it throws ``TestTimeout``.
    public func stream(
        _ method: HTTPRequest.Method = .get, _ target: String, headers: HTTPFields = [:],
        body: ByteBuffer = ByteBuffer(), timeout: Duration? = .seconds(5)
    ) async -> TestStreamedResponse {
        var fields = defaultHeaders
        fields.append(contentsOf: headers)
        let head = HTTPRequest(method: method, scheme: "http", authority: "testserver", path: target, headerFields: fields)
        let response = await app.respond(to: Request(head: head, body: body, clientAddress: "testclient:0"))
            ?? Response(status: .internalServerError)
        return TestStreamedResponse(method == .head ? Self.headOnly(response) : response, timeout: timeout)
    }
}

/// A response whose body a test reads as it arrives, chunk by chunk or event by event.
///
/// The handler's stream runs in a task of its own until it ends or ``cancel()`` is called (also when
/// this object goes away), which is what a client that disconnects looks like to the handler.
public final class TestStreamedResponse: Sendable {
    /// The response as the app returned it (its body is the stream being read).
    public let response: Response
    /// How long each `next…` call may wait.
    public let timeout: Duration?
    private let chunks = MessageQueue<Result<ByteBuffer, any Error>>()
    private let task: Task<Void, Never>
    /// Text received but not yet parsed into events.
    private let pending = Mutex("")

    init(_ response: Response, timeout: Duration?) {
        self.response = response
        self.timeout = timeout
        let chunks = self.chunks
        task = Task {
            do {
                try await response.body.write(to: QueueWriter(queue: chunks))
            } catch {
                chunks.push(.failure(error))
            }
            chunks.finish()
        }
    }

    deinit { task.cancel() }

    /// The status.
    public var status: HTTPResponse.Status { response.status }
    /// The header fields.
    public var headers: HTTPFields { response.headers }

    /// The next chunk the handler wrote; `nil` once the body ended. Throws the handler's error,
    /// or ``TestTimeout`` when nothing arrives in time.
    public func nextChunk() async throws -> ByteBuffer? {
        try await chunks.next(timeout: timeout)?.get()
    }

    /// The next Server-Sent Event of a `text/event-stream` body (comments are skipped); `nil` once
    /// the body ended.
    public func nextEvent() async throws -> ServerSentEvent? {
        while true {
            if let event = pending.withLock({ ServerSentEventParser.takeEvent(from: &$0) }) { return event }
            guard let chunk = try await nextChunk() else { return nil }
            pending.withLock { $0 += String(buffer: chunk) }
        }
    }

    /// Ends the handler's stream, as a client going away would.
    public func cancel() {
        task.cancel()
    }
}

/// Hands each written chunk to the test.
private struct QueueWriter: ResponseBodyWriter {
    let queue: MessageQueue<Result<ByteBuffer, any Error>>

    func write(_ chunk: ByteBuffer) async throws {
        try Task.checkCancellation()
        queue.push(.success(chunk))
    }
}

/// Reads events out of `text/event-stream` text, as an `EventSource` does.
enum ServerSentEventParser {
    /// Removes the first complete event from `text` and returns it; `nil` while none is complete.
    /// Blocks without data (comments, a lone `retry:`) are skipped, as a browser dispatches none.
    static func takeEvent(from text: inout String) -> ServerSentEvent? {
        let normalized = text.replacingOccurrences(of: "\r\n", with: "\n").replacingOccurrences(of: "\r", with: "\n")
        text = normalized
        while let end = text.range(of: "\n\n") {
            let block = text[..<end.lowerBound]
            text.removeSubrange(..<end.upperBound)
            var data: [Substring] = []
            var event = ServerSentEvent(data: "")
            for line in block.split(separator: "\n", omittingEmptySubsequences: false) where !line.hasPrefix(":") {
                let colon = line.firstIndex(of: ":") ?? line.endIndex
                let field = line[..<colon]
                var value = colon < line.endIndex ? line[line.index(after: colon)...] : ""
                if value.first == " " { value = value.dropFirst() }
                switch field {
                case "data": data.append(value)
                case "event": event.event = String(value)
                case "id": event.id = String(value)
                case "retry": event.retry = Int(value).map { .milliseconds($0) }
                default: break
                }
            }
            guard !data.isEmpty else { continue }
            event.data = data.joined(separator: "\n")
            return event
        }
        return nil
    }
}
