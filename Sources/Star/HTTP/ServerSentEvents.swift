import HTTPTypes
import NIOCore

/// One Server-Sent Event, as an `EventSource` in a browser receives it.
///
/// `data` may span lines (each becomes a `data:` field, and the browser joins them with `\n`).
/// Line breaks in `event` and `id` would start new fields, so they are replaced by spaces.
public struct ServerSentEvent: Sendable, Equatable {
    /// The event's data; the browser's `event.data`.
    public var data: String
    /// The event's type; the browser dispatches it to listeners of that name (`message` when `nil`).
    public var event: String?
    /// The event's id; a reconnecting browser sends the last one it received as `Last-Event-ID`.
    public var id: String?
    /// How long a browser waits before reconnecting after the stream ends.
    public var retry: Duration?

    /// Creates an event.
    public init(data: String, event: String? = nil, id: String? = nil, retry: Duration? = nil) {
        self.data = data
        self.event = event
        self.id = id
        self.retry = retry
    }

    /// The event in the `text/event-stream` format, ending with its blank line.
    public var serialized: String {
        var text = ""
        if let id { text += "id: \(Self.oneLine(id))\n" }
        if let event { text += "event: \(Self.oneLine(event))\n" }
        if let retry {
            let (seconds, attoseconds) = retry.components
            text += "retry: \(max(0, seconds * 1000 + attoseconds / 1_000_000_000_000_000))\n"
        }
        // Every line break of the spec (CRLF, CR, LF) ends a data line. Scanned as UTF-8 bytes: a
        // line break is never part of a longer UTF-8 sequence, and bytes are cheaper than characters.
        let bytes = data.utf8
        var start = bytes.startIndex
        var index = start
        while index < bytes.endIndex {
            let byte = bytes[index]
            guard byte == UInt8(ascii: "\n") || byte == UInt8(ascii: "\r") else {
                index = bytes.index(after: index)
                continue
            }
            text += "data: " + String(decoding: bytes[start..<index], as: UTF8.self) + "\n"
            index = bytes.index(after: index)
            if byte == UInt8(ascii: "\r"), index < bytes.endIndex, bytes[index] == UInt8(ascii: "\n") {
                index = bytes.index(after: index)
            }
            start = index
        }
        text += "data: " + String(decoding: bytes[start...], as: UTF8.self) + "\n\n"
        return text
    }

    private static func oneLine(_ text: String) -> String {
        String(text.map { $0 == "\n" || $0 == "\r" || $0 == "\r\n" || $0 == "\0" ? " " : $0 })
    }
}

/// Sends Server-Sent Events on a ``Response/eventStream(keepAlive:_:)`` response.
public struct EventStream: Sendable {
    private let writer: any ResponseBodyWriter

    init(writer: any ResponseBodyWriter) {
        self.writer = writer
    }

    /// Sends an event; suspends while the client is not reading, throws once it is gone.
    public func send(_ event: ServerSentEvent) async throws {
        try await writer.write(event.serialized)
    }

    /// Sends an event made of its fields.
    public func send(data: String, event: String? = nil, id: String? = nil) async throws {
        try await send(ServerSentEvent(data: data, event: event, id: id))
    }

    /// Sends a comment line (`: text`), which an `EventSource` ignores: a keep-alive, or a note for
    /// someone reading the stream with curl.
    public func comment(_ text: String) async throws {
        try await writer.write(": \(String(text.map { $0 == "\n" || $0 == "\r" || $0 == "\r\n" ? " " : $0 }))\n\n")
    }
}

extension Response {
    /// A `text/event-stream` response whose events `send` writes until it returns.
    ///
    /// ```swift
    /// func ticks(lastEventID: LastEventID) async throws -> Response {
    ///     .eventStream { events in
    ///         var n = Int(lastEventID.value ?? "") ?? 0
    ///         while true {
    ///             n += 1
    ///             try await events.send(data: "tick \(n)", id: "\(n)")
    ///             try await Task.sleep(for: .seconds(1))
    ///         }
    ///     }
    /// }
    /// ```
    ///
    /// When the client goes away the server cancels `send` (a send in progress throws), so a
    /// handler waiting for its next event never hangs on a closed connection.
    ///
    /// - Parameters:
    ///   - keepAlive: How often a comment line is sent while no event is (proxies close idle
    ///     connections; a dead client is noticed by the failed write); `nil` sends none.
    ///   - send: Sends the events; the stream ends when it returns.
    public static func eventStream(
        keepAlive: Duration? = .seconds(15),
        _ send: @escaping @Sendable (EventStream) async throws -> Void
    ) -> Response {
        let headers: HTTPFields = [
            .contentType: "text/event-stream; charset=utf-8",
            .cacheControl: "no-cache",
            HTTPField.Name("X-Accel-Buffering")!: "no",  // nginx: pass events on at once
        ]
        return Response(headers: headers, body: .stream { writer in
            let events = EventStream(writer: writer)
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await send(events) }
                if let keepAlive {
                    group.addTask {
                        while true {
                            try await Task.sleep(for: keepAlive)
                            try await events.comment("keep-alive")
                        }
                    }
                }
                try await group.next()  // the handler returned (or the first error)
                group.cancelAll()
            }
        })
    }
}

/// The `Last-Event-ID` header a reconnecting `EventSource` sends: the id of the last event it
/// received, to resume the feed after it. `nil` on a first connection.
public struct LastEventID: Component, Sendable {
    /// The id, or `nil` when the request has none.
    public let value: String?

    public static func resolve(in context: RequestContext) async throws -> LastEventID {
        LastEventID(value: context.request.headers[HTTPField.Name("Last-Event-ID")!])
    }
}
