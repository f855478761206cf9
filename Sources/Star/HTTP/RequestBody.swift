public import NIOCore

/// A request body: the bytes the client sends, which the transport reads as the handler asks for them.
///
/// A small body that arrived with its head is one buffer already; a large or slow one is a stream
/// that the server reads from the socket only as fast as the handler pulls it, so an upload of any
/// size never has to fit in memory. Iterate it, or collect it within a limit:
///
/// ```swift
/// func upload(request: Request) async throws -> String {
///     var count = 0
///     for try await chunk in request.body { count += chunk.readableBytes }
///     return "\(count) bytes"
/// }
///
/// func note(request: Request) async throws -> String {
///     String(buffer: try await request.body.collect(upTo: 64 * 1024))
/// }
/// ```
///
/// Past the route's body limit (`Route(…, maxBodySize:)`, else ``App/Configuration/maxBodySize``)
/// iterating or collecting throws `HTTPError(.contentTooLarge)`, which answers `413`. A body is
/// read once: after ``collect(upTo:)`` another `collect` returns the same bytes and iterating yields
/// them as one chunk; iterating a stream twice throws.
public struct RequestBody: Sendable, AsyncSequence {
    /// A chunk of the body, as the transport read it.
    public typealias Element = ByteBuffer

    private enum Storage: Sendable {
        case buffer(ByteBuffer)
        case stream(RequestBodyStream)
    }

    private let storage: Storage
    /// The most bytes the body may have: the route's limit, which the app sets before the handler runs.
    package var limit = Int.max

    /// A body that is one buffer (an empty one by default).
    public init(_ buffer: ByteBuffer = ByteBuffer()) {
        storage = .buffer(buffer)
    }

    /// A body that a transport streams in through `stream`.
    package init(stream: RequestBodyStream) {
        storage = .stream(stream)
    }

    /// The whole body when it is already in memory (it arrived with the head, or was collected);
    /// `nil` while it still streams in.
    public var buffer: ByteBuffer? {
        switch storage {
        case .buffer(let buffer): buffer
        case .stream(let stream): stream.collected
        }
    }

    /// The transport's stream, when the body is one.
    package var stream: RequestBodyStream? {
        if case .stream(let stream) = storage { stream } else { nil }
    }

    /// Reads the whole body into one buffer.
    ///
    /// - Parameter maxSize: The most bytes to accept (the route's limit applies too).
    /// - Throws: `HTTPError(.contentTooLarge)` past either limit; the transport's error when the
    ///   client goes away mid-body; `CancellationError` when the task is cancelled.
    public func collect(upTo maxSize: Int) async throws -> ByteBuffer {
        let limit = Swift.min(maxSize, self.limit)
        switch storage {
        case .buffer(let buffer):
            guard buffer.readableBytes <= limit else { throw Self.tooLarge(limit) }
            return buffer
        case .stream(let stream):
            if let collected = stream.collected {
                guard collected.readableBytes <= limit else { throw Self.tooLarge(limit) }
                return collected
            }
            var whole = ByteBuffer()
            var iterator = makeAsyncIterator(limit: limit)
            while var chunk = try await iterator.next() {
                if whole.readableBytes == 0 { whole = chunk } else { whole.writeBuffer(&chunk) }
            }
            stream.keep(whole)
            return whole
        }
    }

    /// Iterates the body's chunks.
    public func makeAsyncIterator() -> AsyncIterator {
        makeAsyncIterator(limit: limit)
    }

    private func makeAsyncIterator(limit: Int) -> AsyncIterator {
        switch storage {
        case .buffer(let buffer): AsyncIterator(source: .buffer(buffer), limit: limit)
        case .stream(let stream): AsyncIterator(source: stream.collected.map { .buffer($0) } ?? .stream(stream), limit: limit)
        }
    }

    /// Yields the body's chunks; throws `HTTPError(.contentTooLarge)` once more than the limit arrived.
    public struct AsyncIterator: AsyncIteratorProtocol {
        fileprivate enum Source {
            case buffer(ByteBuffer)
            case stream(RequestBodyStream)
            case done
        }

        fileprivate var source: Source
        private let limit: Int
        private var received = 0

        fileprivate init(source: Source, limit: Int) {
            self.source = source
            self.limit = limit
        }

        /// The next chunk, or `nil` at the end of the body.
        public mutating func next() async throws -> ByteBuffer? {
            let chunk: ByteBuffer?
            switch source {
            case .buffer(let buffer):
                source = .done
                chunk = buffer.readableBytes > 0 ? buffer : nil
            case .stream(let stream):
                chunk = try await stream.next()
                if chunk == nil { source = .done }
            case .done:
                return nil
            }
            guard let chunk else { return nil }
            received += chunk.readableBytes
            guard received <= limit else {
                source = .done
                throw RequestBody.tooLarge(limit)
            }
            return chunk
        }
    }

    static func tooLarge(_ limit: Int) -> HTTPError {
        HTTPError(.contentTooLarge, detail: "Request body is larger than \(limit) bytes")
    }
}
