import NIOHTTP1

extension HTTPHeaders {
    /// Whether the comma-separated field `name` lists `token`, both compared without regard to
    /// ASCII case: `Connection: keep-alive, Upgrade` lists `upgrade`.
    ///
    /// It reads the values in place. NIO's `self[canonicalForm:]` builds an array of substrings
    /// per call, and the handshake's three checks cost 12 allocations per connection.
    func lists(_ token: String, in name: String) -> Bool {
        for (field, value) in self where Self.equalIgnoringCase(field.utf8[...], name.utf8[...]) {
            var rest = value.utf8[...]
            while !rest.isEmpty {
                let comma = rest.firstIndex(of: UInt8(ascii: ",")) ?? rest.endIndex
                if Self.equalIgnoringCase(Self.trimmingBlanks(rest[..<comma]), token.utf8[...]) { return true }
                rest = comma == rest.endIndex ? rest[comma...] : rest[rest.index(after: comma)...]
            }
        }
        return false
    }

    private static func trimmingBlanks(_ bytes: Substring.UTF8View) -> Substring.UTF8View {
        var start = bytes.startIndex, end = bytes.endIndex
        while start < end, isBlank(bytes[start]) { start = bytes.index(after: start) }
        while end > start, isBlank(bytes[bytes.index(before: end)]) { end = bytes.index(before: end) }
        return bytes[start..<end]
    }

    private static func isBlank(_ byte: UInt8) -> Bool { byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") }

    private static func equalIgnoringCase(_ a: Substring.UTF8View, _ b: Substring.UTF8View) -> Bool {
        a.count == b.count && zip(a, b).allSatisfy { lowercase($0) == lowercase($1) }
    }

    private static func lowercase(_ byte: UInt8) -> UInt8 {
        byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z") ? byte | 0x20 : byte
    }
}
