package import NIOCore
package import Star

/// Parsing and building close-frame payloads (RFC 6455 §5.5.1).
package enum WebSocketCloseFrame {
    /// The code and reason of a received close frame, or the failure to answer it with.
    package static func parse(_ payload: ByteBuffer) -> Result<(WebSocketCloseCode, String), WebSocketMessageAssembler.Failure> {
        var payload = payload
        switch payload.readableBytes {
        case 0: return .success((.noStatusReceived, ""))
        case 1: return .failure(.init(code: .protocolError, reason: "close frame with a one-byte payload"))
        default:
            let code = WebSocketCloseCode(payload.readInteger(as: UInt16.self)!)
            guard code.isValidOnWire else { return .failure(.init(code: .protocolError, reason: "invalid close code \(code)")) }
            guard let reason = String(validating: payload.readableBytesView, as: UTF8.self) else {
                return .failure(.init(code: .invalidFramePayloadData, reason: "close reason is not UTF-8"))
            }
            return .success((code, reason))
        }
    }

    /// A close payload: the code (omitted for 1005) and the reason cut to fit 125 bytes.
    package static func payload(code: WebSocketCloseCode, reason: String, allocator: ByteBufferAllocator) -> ByteBuffer {
        guard code != .noStatusReceived else { return allocator.buffer(capacity: 0) }
        // Codes that must never be sent (1005, 1006, 1015, unassigned ones) become 1000.
        let code = code.isValidOnWire ? code : .normalClosure
        var buffer = allocator.buffer(capacity: 2 + reason.utf8.count)
        buffer.writeInteger(code.rawValue)
        var utf8 = Array(reason.utf8.prefix(123))
        while !utf8.isEmpty, String(validating: utf8, as: UTF8.self) == nil { utf8.removeLast() }
        buffer.writeBytes(utf8)
        return buffer
    }
}
