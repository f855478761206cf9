package import NIOCore
package import NIOWebSocket

extension WebSocketFrame {
    /// The payload unmasked into a new buffer, eight bytes at a time.
    ///
    /// NIO's `unmaskedData` copies the payload (it is a slice of the decoder's buffer) and then
    /// unmasks it one byte at a time with a modulo per byte, which capped large-message echo near
    /// 220 MB/s (issue #6). This does the copy and the XOR in one pass over 64-bit words.
    package var unmaskedPayload: ByteBuffer {
        guard let key = maskKey else { return data }
        return data.unmasked(key: key)
    }
}

extension ByteBuffer {
    /// The readable bytes XORed with `key`, in a new buffer.
    package func unmasked(key: WebSocketMaskingKey) -> ByteBuffer {
        var output = ByteBufferAllocator().buffer(capacity: readableBytes)
        output.writeMasked(self, key: key)
        return output
    }

    /// Writes `payload` XORed with `key` (masking and unmasking are the same operation), eight
    /// bytes at a time: the server's unmasking of what it reads, and the client's masking of what
    /// it sends.
    package mutating func writeMasked(_ payload: ByteBuffer, key: WebSocketMaskingKey) {
        let count = payload.readableBytes
        _ = payload.withUnsafeReadableBytes { source in
            writeWithUnsafeMutableBytes(minimumWritableBytes: count) { target in
                WebSocketMasking.xor(source, key: key, into: target)
                return count
            }
        }
    }

    /// The readable bytes XORed with `key`, as a `String` if they are valid UTF-8 (else `nil`).
    ///
    /// A masked text message becomes its `String` without a buffer of its own: the bytes are
    /// unmasked into temporary (stack) memory, validated there, and copied once into the string's
    /// storage. Unmasking into a new `ByteBuffer` first cost two allocations per message.
    package func unmaskedString(key: WebSocketMaskingKey) -> String? {
        withUnsafeReadableBytes { source in
            withUnsafeTemporaryAllocation(of: UInt8.self, capacity: source.count) { scratch in
                WebSocketMasking.xor(source, key: key, into: UnsafeMutableRawBufferPointer(scratch))
                return String(validating: UnsafeBufferPointer(scratch), as: UTF8.self)
            }
        }
    }
}

/// The XOR of WebSocket masking (RFC 6455 §5.3), shared by every path that masks or unmasks.
enum WebSocketMasking {
    /// Writes `source` XORed with `key` into the start of `target` (at least as large), eight bytes at a time.
    @inline(__always)
    static func xor(_ source: UnsafeRawBufferPointer, key: WebSocketMaskingKey, into target: UnsafeMutableRawBufferPointer) {
        let count = source.count
        let key32 = UInt32(key[0]) | UInt32(key[1]) << 8 | UInt32(key[2]) << 16 | UInt32(key[3]) << 24  // key byte i at bit 8·i
        let key64 = UInt64(key32) | UInt64(key32) << 32
        var index = 0
        while index + 8 <= count {
            let word = UInt64(littleEndian: source.loadUnaligned(fromByteOffset: index, as: UInt64.self))
            target.storeBytes(of: (word ^ key64).littleEndian, toByteOffset: index, as: UInt64.self)
            index += 8
        }
        while index < count {
            target[index] = source[index] ^ key[index % 4]
            index += 1
        }
    }
}
