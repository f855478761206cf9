package import NIOCore

extension ByteBuffer {
    /// The readable bytes XORed with `key` (a masking key's four bytes in network order), in a new buffer.
    package func unmasked(key: UInt32) -> ByteBuffer {
        var output = ByteBufferAllocator().buffer(capacity: readableBytes)
        output.writeMasked(self, key: key)
        return output
    }

    /// Writes `payload` XORed with `key` (masking and unmasking are the same operation), eight
    /// bytes at a time: the server's unmasking of what it reads, and the client's masking of what
    /// it sends.
    package mutating func writeMasked(_ payload: ByteBuffer, key: UInt32) {
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
    package func unmaskedString(key: UInt32) -> String? {
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
    static func xor(_ source: UnsafeRawBufferPointer, key: UInt32, into target: UnsafeMutableRawBufferPointer) {
        let count = source.count
        let key32 = key.byteSwapped  // words are read little-endian: key byte i goes at bit 8·i
        let key64 = UInt64(key32) | UInt64(key32) << 32
        var index = 0
        while index + 8 <= count {
            let word = UInt64(littleEndian: source.loadUnaligned(fromByteOffset: index, as: UInt64.self))
            target.storeBytes(of: (word ^ key64).littleEndian, toByteOffset: index, as: UInt64.self)
            index += 8
        }
        var rest = key64  // index is a multiple of eight: the key starts again at its first byte
        while index < count {
            target[index] = source[index] ^ UInt8(truncatingIfNeeded: rest)
            rest >>= 8
            index += 1
        }
    }
}
