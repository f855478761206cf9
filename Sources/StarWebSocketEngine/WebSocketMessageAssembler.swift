package import NIOCore
package import Star

/// Reassembles data frames into messages: fragmentation rules, the size limit, and UTF-8
/// validation of text as it arrives (fragment by fragment). A value type without I/O.
package struct WebSocketMessageAssembler {
    /// Why a frame sequence is not acceptable, with the close code to send.
    package struct Failure: Error, Equatable {
        /// The close code to send.
        package let code: WebSocketCloseCode
        /// The close reason to send.
        package let reason: String
        /// Creates a failure.
        package init(code: WebSocketCloseCode, reason: String) {
            self.code = code
            self.reason = reason
        }
    }

    private enum Kind { case text, binary }

    package let maxMessageSize: Int
    /// The negotiated permessage-deflate, if any.
    package let deflate: PerMessageDeflate?
    private var kind: Kind?
    /// Whether the message in progress is compressed (its first frame had RSV1).
    private var compressed = false
    private var buffer = ByteBuffer()
    /// Bytes of `buffer` already known to be valid UTF-8 (uncompressed text only).
    private var validatedUpTo = 0

    /// Creates an assembler of messages of at most `maxMessageSize` bytes, and at most 4 GiB − 1
    /// (what one `ByteBuffer` holds: a longer message is refused with 1009, not a stopped process).
    package init(maxMessageSize: Int, deflate: PerMessageDeflate? = nil) {
        self.maxMessageSize = min(maxMessageSize, Int(UInt32.max))
        self.deflate = deflate
    }

    /// Takes one data frame (text, binary or continuation); returns a message when `fin` ends one.
    /// `compressed` is the frame's RSV1, allowed only on a message's first frame with deflate negotiated.
    /// `data` is the payload as it arrived: masked with `maskKey` (its four bytes in network order) when there is one (a client's frame).
    package mutating func append(text isText: Bool?, fin: Bool, compressed rsv1: Bool = false, data: ByteBuffer,
                                 maskKey: UInt32? = nil) throws(Failure) -> WebSocketMessage? {
        if rsv1 {
            guard deflate != nil, isText != nil else {
                throw Failure(code: .protocolError, reason: "RSV1 set without permessage-deflate or on a continuation")
            }
        }
        if let maskKey, isText == true, fin, !rsv1, kind == nil {
            // The most common frame, a whole masked text message: unmasked straight into its String.
            guard data.readableBytes <= maxMessageSize else { throw tooBig() }
            guard let string = data.unmaskedString(key: maskKey) else { throw Self.invalidUTF8 }
            return .text(string)
        }
        let data = maskKey.map { data.unmasked(key: $0) } ?? data
        switch (isText, kind) {
        case (nil, nil):
            throw Failure(code: .protocolError, reason: "continuation frame without a message")
        case (.some, .some):
            throw Failure(code: .protocolError, reason: "new message before the last one ended")
        case (.some(let text), nil):
            guard data.readableBytes <= maxMessageSize else { throw tooBig() }
            if fin {  // the common case: one frame, one message, no copy
                return try Self.message(text: text, rsv1 ? inflate(data) : data)
            }
            kind = text ? .text : .binary
            compressed = rsv1
            buffer = data
            validatedUpTo = 0
        case (nil, .some):
            guard buffer.readableBytes + data.readableBytes <= maxMessageSize else { throw tooBig() }
            var data = data
            buffer.writeBuffer(&data)
        }
        if compressed {
            guard fin else { return nil }
            defer { kind = nil; compressed = false; buffer = ByteBuffer() }
            return try Self.message(text: kind == .text, inflate(buffer))
        }
        if kind == .text { try validatePrefix(final: fin) }
        guard fin else { return nil }
        defer { kind = nil; buffer = ByteBuffer() }
        switch kind {
        case .text: return .text(String(buffer: buffer))
        default: return .binary(buffer)
        }
    }

    private func inflate(_ data: ByteBuffer) throws(Failure) -> ByteBuffer {
        // `append` checked that deflate was negotiated before a compressed message gets here.
        try deflate!.inflate(data, limit: maxMessageSize, allocator: ByteBufferAllocator())
    }

    private static let invalidUTF8 = Failure(code: .invalidFramePayloadData, reason: "invalid UTF-8 in text message")

    private func tooBig() -> Failure {
        Failure(code: .messageTooBig, reason: "message larger than \(maxMessageSize) bytes")
    }

    private static func message(text: Bool, _ data: ByteBuffer) throws(Failure) -> WebSocketMessage {
        guard text else { return .binary(data) }
        guard let string = String(validating: data.readableBytesView, as: UTF8.self) else { throw invalidUTF8 }
        return .text(string)
    }

    /// Validates the complete UTF-8 sequences received so far; an incomplete sequence at the end is
    /// left for the next fragment, and must not remain when the message ends.
    private mutating func validatePrefix(final: Bool) throws(Failure) {
        let bytes = buffer.readableBytesView
        var end = bytes.endIndex
        if !final {
            // Step back over an unfinished sequence: at most three bytes after its lead byte.
            var index = end
            var steps = 0
            while index > bytes.startIndex + validatedUpTo, steps < 4 {
                index -= 1
                steps += 1
                let byte = bytes[index]
                if byte & 0xC0 != 0x80 {
                    let needed = byte >= 0xF0 ? 4 : byte >= 0xE0 ? 3 : byte >= 0xC0 ? 2 : 1
                    if index + needed > end { end = index }
                    break
                }
            }
        }
        let slice = bytes[(bytes.startIndex + validatedUpTo)..<end]
        guard String(validating: slice, as: UTF8.self) != nil else { throw Self.invalidUTF8 }
        validatedUpTo = end - bytes.startIndex
    }
}
