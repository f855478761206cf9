package import NIOCore
package import NIOWebSocket

/// A frame as read from the peer (RFC 6455 §5.2): its header's fields and its payload as it came,
/// still masked when it has a key. ``WebSocketFrameParser`` makes it and
/// ``WebSocketStateMachine/received(_:now:)`` judges it.
///
/// The engine's own value rather than NIO's `WebSocketFrame`: that one keeps its payload in a
/// heap-allocated storage (one allocation per frame), and its masking key can only be made from
/// bytes through a generic initializer that NIO does not inline, whose four element reads allocated
/// four coroutine frames per frame here (heaptrack of 32 B echoes). This one is a few words and a
/// slice of the buffer that was read.
package struct WebSocketInboundFrame: Equatable {
    /// Whether this is the last frame of its message.
    package var fin: Bool
    /// The first reserved bit: permessage-deflate's "compressed".
    package var rsv1: Bool
    /// The second reserved bit (no extension here uses it).
    package var rsv2: Bool
    /// The third reserved bit (no extension here uses it).
    package var rsv3: Bool
    /// The frame's opcode; reserved values included (the state machine refuses them).
    package var opcode: WebSocketOpcode
    /// The masking key's four bytes in network order (a client's frame), or `nil` (a server's).
    package var maskKey: UInt32?
    /// The payload as it came: masked with ``maskKey`` when there is one.
    package var payload: ByteBuffer

    /// Creates a frame from its header's fields and its payload as it came.
    package init(fin: Bool, rsv1: Bool = false, rsv2: Bool = false, rsv3: Bool = false, opcode: WebSocketOpcode,
                 maskKey: UInt32? = nil, payload: ByteBuffer) {
        self.fin = fin
        self.rsv1 = rsv1
        self.rsv2 = rsv2
        self.rsv3 = rsv3
        self.opcode = opcode
        self.maskKey = maskKey
        self.payload = payload
    }

    /// The frame NIO's codec describes, its `data` taken as it would be on the wire (masked with
    /// its key when it has one): for in-memory transports and tests.
    package init(_ frame: WebSocketFrame) {
        self.init(fin: frame.fin, rsv1: frame.rsv1, rsv2: frame.rsv2, rsv3: frame.rsv3, opcode: frame.opcode,
                  maskKey: frame.maskKey?.networkRepresentation, payload: frame.data)
    }

    /// The payload unmasked into a new buffer, eight bytes at a time (the payload itself when the
    /// frame is not masked).
    ///
    /// NIO's `unmaskedData` copies the payload and then unmasks it one byte at a time with a modulo
    /// per byte, which capped large-message echo near 220 MB/s (issue #6). This does the copy and
    /// the XOR in one pass over 64-bit words.
    package var unmaskedPayload: ByteBuffer {
        guard let maskKey else { return payload }
        return payload.unmasked(key: maskKey)
    }
}

extension WebSocketMaskingKey {
    /// The key's four bytes in network order, as ``WebSocketInboundFrame/maskKey`` holds them.
    package var networkRepresentation: UInt32 {
        UInt32(self[0]) << 24 | UInt32(self[1]) << 16 | UInt32(self[2]) << 8 | UInt32(self[3])
    }
}
