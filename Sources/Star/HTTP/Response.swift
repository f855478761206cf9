public import HTTPTypes
public import NIOCore
import Foundation

/// An HTTP response: status, header fields and a body.
///
/// Return a `Response` from a handler for full control; Star renders other results
/// (`String`, bytes, `Encodable`, `Void`) into one.
public struct Response: Sendable {
    /// The status line and header fields.
    public var head: HTTPResponse
    /// The body: one buffer, or a stream the handler writes (``ResponseBody/stream(contentLength:_:)``).
    public var body: ResponseBody

    /// Creates a response whose body is one buffer. `Content-Length` is set by the transport from the body.
    public init(status: HTTPResponse.Status = .ok, headers: HTTPFields = [:], body: ByteBuffer = ByteBuffer()) {
        self.init(status: status, headers: headers, body: ResponseBody(body))
    }

    /// Creates a response with any body, such as a stream: `Response(body: .stream { writer in … })`.
    public init(status: HTTPResponse.Status = .ok, headers: HTTPFields = [:], body: ResponseBody) {
        self.head = HTTPResponse(status: status, headerFields: headers)
        self.body = body
    }

    /// The status.
    public var status: HTTPResponse.Status {
        get { head.status }
        set { head.status = newValue }
    }
    /// The header fields.
    public var headers: HTTPFields {
        get { head.headerFields }
        set { head.headerFields = newValue }
    }

    /// A `text/plain; charset=utf-8` response.
    public static func text(_ text: String, status: HTTPResponse.Status = .ok) -> Response {
        Response(status: status, headers: [.contentType: "text/plain; charset=utf-8"], body: ByteBuffer(string: text))
    }

    /// A `text/html; charset=utf-8` response.
    public static func html(_ html: String, status: HTTPResponse.Status = .ok) -> Response {
        Response(status: status, headers: [.contentType: "text/html; charset=utf-8"], body: ByteBuffer(string: html))
    }

    /// An `application/octet-stream` response.
    public static func bytes(_ bytes: some Sequence<UInt8>, status: HTTPResponse.Status = .ok) -> Response {
        Response(status: status, headers: [.contentType: "application/octet-stream"], body: ByteBuffer(bytes: bytes))
    }

    /// An `application/json` response with the value encoded by ``JSON/encode(_:)``.
    public static func json(_ value: some Encodable, status: HTTPResponse.Status = .ok) throws -> Response {
        Response(status: status, headers: [.contentType: "application/json"], body: ByteBuffer(bytes: try JSON.encode(value)))
    }
}

/// The JSON coding Star uses for bodies, responses and WebSocket messages.
public enum JSON {
    /// Encodes a value compactly, with object keys sorted and no escaping of `/`.
    ///
    /// Keys are sorted so that the same value always gives the same bytes: Foundation's encoder keeps
    /// a keyed container's keys in a dictionary, so without sorting their order changes from one
    /// encoding to the next (also for a type with its own `encode(to:)`), which makes responses hard
    /// to read and impossible to snapshot-test. Responses, ``Response/json(_:status:)`` and
    /// WebSocket `send(json:)` all go through here.
    public static func encode(_ value: some Encodable) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return Array(try encoder.encode(value))
    }

    /// Decodes a value from JSON bytes.
    public static func decode<T: Decodable>(_ type: T.Type, from bytes: some Collection<UInt8>) throws -> T {
        try JSONDecoder().decode(T.self, from: Data(bytes))
    }
}
