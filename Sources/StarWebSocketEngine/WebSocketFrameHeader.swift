package import NIOCore
package import NIOWebSocket

extension ByteBuffer {
    /// The most bytes a frame header takes: 2, 8 bytes of 64-bit length, 4 of masking key.
    package static let maxWebSocketFrameHeaderSize = 14

    /// Writes a frame's header as it goes on the wire (RFC 6455 §5.2): FIN, RSV1, the opcode, the
    /// payload's `length` in the shortest of its three encodings, and `maskKey` (a client's frame,
    /// four bytes in network order) when there is one. The payload follows it, masked with that key.
    package mutating func writeWebSocketFrameHeader(fin: Bool = true, rsv1: Bool = false, opcode: WebSocketOpcode,
                                                    length: Int, maskKey: UInt32? = nil) {
        var first = UInt8(webSocketOpcode: opcode)
        if fin { first |= 0x80 }
        if rsv1 { first |= 0x40 }
        let maskBit: UInt8 = maskKey == nil ? 0 : 0x80
        switch length {
        case ..<126:
            writeMultipleIntegers(first, UInt8(length) | maskBit)
        case ..<65536:
            writeMultipleIntegers(first, 126 | maskBit, UInt16(length))
        default:
            writeMultipleIntegers(first, 127 | maskBit, UInt64(length))
        }
        if let maskKey { writeInteger(maskKey) }
    }
}
