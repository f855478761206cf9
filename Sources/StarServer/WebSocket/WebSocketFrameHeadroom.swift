import NIOCore

extension ByteBufferAllocator {
    /// The most bytes a server frame's header takes: no mask, a 64-bit length (RFC 6455 §5.2).
    static let webSocketHeaderRoom = 10

    /// An empty buffer for an outgoing frame's payload that leaves room in front for the header.
    ///
    /// NIO's `WebSocketFrameEncoder` writes the header into that room when the payload buffer is
    /// uniquely owned; otherwise it sends the header from a buffer of its own, and the frame
    /// goes out as two pieces (`writev` instead of `write`).
    func webSocketPayloadBuffer(capacity: Int) -> ByteBuffer {
        var buffer = self.buffer(capacity: Self.webSocketHeaderRoom + capacity)
        buffer.moveWriterIndex(forwardBy: Self.webSocketHeaderRoom)
        buffer.moveReaderIndex(forwardBy: Self.webSocketHeaderRoom)
        return buffer
    }
}
