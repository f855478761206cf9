/// A parsed URI template such as `/users/{id}` or `/files/{+path}`.
///
/// `{name}` matches one path segment (no `/`); `{+name}` matches the rest of the path,
/// `/` included, and may only stand last. A segment is either all literal or one variable.
package struct URITemplate: Sendable, Hashable, CustomStringConvertible {
    /// One `/`-separated piece of a template.
    package enum Segment: Sendable, Hashable {
        /// Text that must match exactly.
        case literal(String)
        /// `{name}`: one segment.
        case variable(String)
        /// `{+name}`: the rest of the path.
        case rest(String)
    }

    /// The template as written.
    package let template: String
    /// The segments after the leading `/`.
    package let segments: [Segment]

    /// Parses a template, throwing ``RouteError`` when it is malformed.
    package init(_ template: String) throws(RouteError) {
        // Split on the `/` byte, as the router splits paths: splitting by Character would miss a `/`
        // that a combining mark follows (`/\u{301}`), and such a template could never match.
        guard template.utf8.first == UInt8(ascii: "/") else { throw .invalidTemplate(template, reason: "it must start with '/'") }
        self.template = template
        var segments: [Segment] = []
        var names: Set<String> = []
        for raw in template.utf8.dropFirst().split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false).map(Substring.init) {
            if segments.last.map({ if case .rest = $0 { true } else { false } }) == true {
                throw .invalidTemplate(template, reason: "'{+…}' must be the last segment")
            }
            let piece = String(raw)
            guard piece.contains("{") || piece.contains("}") else {
                segments.append(.literal(piece))
                continue
            }
            guard piece.hasPrefix("{"), piece.hasSuffix("}"), piece.count > 2,
                piece.dropFirst().dropLast().allSatisfy({ $0 != "{" && $0 != "}" })
            else { throw .invalidTemplate(template, reason: "'\(piece)' must be a whole segment like {name} or {+name}") }
            var name = String(piece.dropFirst().dropLast())
            let isRest = name.hasPrefix("+")
            if isRest { name.removeFirst() }
            guard !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }) else {
                throw .invalidTemplate(template, reason: "'\(name)' is not a valid variable name")
            }
            guard names.insert(name).inserted else { throw .invalidTemplate(template, reason: "'\(name)' appears twice") }
            segments.append(isRest ? .rest(name) : .variable(name))
        }
        self.segments = segments
    }

    /// The variable names in order.
    package var variableNames: [String] {
        segments.compactMap {
            switch $0 {
            case .literal: nil
            case .variable(let name), .rest(let name): name
            }
        }
    }

    package var description: String { template }

    /// Fills the template with values, percent-encoding them (`/` is kept in `{+…}` values).
    package func expand(_ values: [String: String]) throws(RouteError) -> String {
        var path = ""
        for segment in segments {
            path += "/"
            switch segment {
            case .literal(let text): path += text
            case .variable(let name):
                guard let value = values[name] else { throw .missingParameter(name, template: template) }
                path += PercentEncoding.encode(value, keepingSlash: false)
            case .rest(let name):
                guard let value = values[name] else { throw .missingParameter(name, template: template) }
                path += PercentEncoding.encode(value, keepingSlash: true)
            }
        }
        return path
    }
}

/// Percent-encoding and decoding of path segments and query components (RFC 3986).
enum PercentEncoding {
    private static func isUnreserved(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."),
            UInt8(ascii: "_"), UInt8(ascii: "~"):
            true
        default: false
        }
    }

    static func encode(_ text: String, keepingSlash: Bool) -> String {
        let hex = Array("0123456789ABCDEF".utf8)
        var out: [UInt8] = []
        for byte in text.utf8 {
            if isUnreserved(byte) || (keepingSlash && byte == UInt8(ascii: "/")) {
                out.append(byte)
            } else {
                out += [UInt8(ascii: "%"), hex[Int(byte >> 4)], hex[Int(byte & 0xF)]]
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Decodes `%XX` escapes (and `+` as space when `plusAsSpace`); invalid escapes stay as written.
    static func decode(_ text: Substring, plusAsSpace: Bool = false) -> String {
        guard text.utf8.contains(where: { $0 == UInt8(ascii: "%") || (plusAsSpace && $0 == UInt8(ascii: "+")) })
        else { return String(text) }
        let bytes = Array(text.utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var index = 0
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "%"), index + 2 < bytes.count,
                let high = hexValue(bytes[index + 1]), let low = hexValue(bytes[index + 2])
            {
                out.append(high << 4 | low)
                index += 3
            } else {
                out.append(plusAsSpace && byte == UInt8(ascii: "+") ? UInt8(ascii: " ") : byte)
                index += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
