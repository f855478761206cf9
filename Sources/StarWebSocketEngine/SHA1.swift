/// SHA-1 (FIPS 180-4) of a short message, for the handshake's `Sec-WebSocket-Accept` only
/// (RFC 6455 §4.2.2: a proof that the server read the key, not a security measure).
///
/// Our own rather than a library's: NIO's SHA-1 (`CNIOSHA1`) is not a product that other packages
/// may use, and swift-crypto would compile a second BoringSSL into every build for one hash per
/// handshake. NIO's server upgrader, which computed the value before, wrapped it in futures and
/// NIO header values (≈5 % of a handshake's CPU, perf). Tested against the standard's vectors and
/// against NIO's upgrader for random keys.
package enum SHA1 {
    /// The 20-byte digest of `message`.
    package static func digest(_ message: [UInt8]) -> [UInt8] {
        // The message, its 0x80 end mark, zeros and its length in bits fill whole 64-byte blocks.
        let blocks = (message.count + 8) / 64 + 1
        var state: (UInt32, UInt32, UInt32, UInt32, UInt32) = (0x6745_2301, 0xEFCD_AB89, 0x98BA_DCFE, 0x1032_5476, 0xC3D2_E1F0)
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: blocks * 64) { padded in
            withUnsafeTemporaryAllocation(of: UInt32.self, capacity: 80) { schedule in
                _ = padded.initialize(fromContentsOf: message)
                padded.baseAddress!.advanced(by: message.count).initialize(repeating: 0, count: blocks * 64 - message.count)
                padded[message.count] = 0x80
                let bitCount = UInt64(message.count) &* 8
                for index in 0..<8 { padded[blocks * 64 - 1 - index] = UInt8(truncatingIfNeeded: bitCount >> (8 * UInt64(index))) }
                for block in 0..<blocks {
                    for t in 0..<16 {
                        let i = block * 64 + 4 * t
                        schedule[t] = UInt32(padded[i]) << 24 | UInt32(padded[i + 1]) << 16 | UInt32(padded[i + 2]) << 8 | UInt32(padded[i + 3])
                    }
                    for t in 16..<80 {
                        schedule[t] = rotate(schedule[t - 3] ^ schedule[t - 8] ^ schedule[t - 14] ^ schedule[t - 16], by: 1)
                    }
                    var (a, b, c, d, e) = state
                    for t in 0..<80 {
                        let mixed: UInt32  // f(t) + K(t) of the standard's round t
                        switch t {
                        case 0..<20: mixed = ((b & c) | (~b & d)) &+ 0x5A82_7999
                        case 20..<40: mixed = (b ^ c ^ d) &+ 0x6ED9_EBA1
                        case 40..<60: mixed = ((b & c) | (b & d) | (c & d)) &+ 0x8F1B_BCDC
                        default: mixed = (b ^ c ^ d) &+ 0xCA62_C1D6
                        }
                        let next = rotate(a, by: 5) &+ mixed &+ e &+ schedule[t]
                        (e, d, c, b, a) = (d, c, rotate(b, by: 30), a, next)
                    }
                    state = (state.0 &+ a, state.1 &+ b, state.2 &+ c, state.3 &+ d, state.4 &+ e)
                }
            }
        }
        return [UInt8](unsafeUninitializedCapacity: 20) { output, count in
            for (index, word) in [state.0, state.1, state.2, state.3, state.4].enumerated() {
                for byte in 0..<4 { output[4 * index + byte] = UInt8(truncatingIfNeeded: word >> (24 - 8 * UInt32(byte))) }
            }
            count = 20
        }
    }

    private static func rotate(_ word: UInt32, by bits: UInt32) -> UInt32 {
        word << bits | word >> (32 - bits)
    }
}
