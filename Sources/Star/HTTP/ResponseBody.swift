public import NIOCore

/// A response body: one buffer (the fast path), or a stream the handler writes as the client reads.
///
/// ```swift
/// func numbers() async throws -> Response {
///     Response(headers: [.contentType: "text/plain"], body: .stream { writer in
///         for n in 1...1_000_000 { try await writer.write(ByteBuffer(string: "\(n)\n")) }
///     })
/// }
/// ```
///
/// A stream's `write` suspends while the client is not reading (backpressure: memory stays bounded
/// however large the body), and throws once the client has gone away. Over HTTP/1.1 a stream without
/// a `contentLength` is sent chunked. If the closure throws, the server ends the connection without
/// finishing the body (the client sees it cut short, never a second response) and logs the error.
public struct ResponseBody: Sendable {
    /// Writes a streamed body's chunks, in order.
    public typealias Writer = @Sendable (any ResponseBodyWriter) async throws -> Void

    private enum Storage: Sendable {
        case buffer(ByteBuffer)
        case stream(contentLength: Int?, write: Writer)
    }

    private let storage: Storage

    /// A body of one buffer (an empty one by default).
    public init(_ buffer: ByteBuffer = ByteBuffer()) {
        storage = .buffer(buffer)
    }

    /// A body the handler writes as the client reads it.
    ///
    /// - Parameters:
    ///   - contentLength: The body's length, when known: sent as `Content-Length` (the writer must
    ///     write exactly that many bytes); otherwise the body is chunked.
    ///   - write: Writes the chunks; the body ends when it returns.
    public static func stream(contentLength: Int? = nil, _ write: @escaping Writer) -> ResponseBody {
        ResponseBody(storage: .stream(contentLength: contentLength, write: write))
    }

    private init(storage: Storage) {
        self.storage = storage
    }

    /// The whole body when it is one buffer; `nil` for a stream.
    public var buffer: ByteBuffer? {
        if case .buffer(let buffer) = storage { buffer } else { nil }
    }

    /// The body's length in bytes: the buffer's, or the stream's declared `contentLength`.
    public var contentLength: Int? {
        switch storage {
        case .buffer(let buffer): buffer.readableBytes
        case .stream(let length, _): length
        }
    }

    /// Writes the body to `writer`: the buffer in one write, or the stream's chunks.
    public func write(to writer: any ResponseBodyWriter) async throws {
        switch storage {
        case .buffer(let buffer): if buffer.readableBytes > 0 { try await writer.write(buffer) }
        case .stream(_, let write): try await write(writer)
        }
    }
}

/// Where a streamed ``ResponseBody`` goes: the transport's connection, or the test client's buffer.
public protocol ResponseBodyWriter: Sendable {
    /// Writes one chunk; suspends while the client is not reading, and throws once it is gone.
    func write(_ chunk: ByteBuffer) async throws
}

extension ResponseBodyWriter {
    /// Writes text as UTF-8.
    public func write(_ text: String) async throws {
        try await write(ByteBuffer(string: text))
    }
}
