/// A `ws://` or `wss://` URL taken apart: what the client connects to and what its handshake asks for.
struct WebSocketURL: Sendable, Equatable {
    /// `wss://`: the connection runs over TLS.
    var isSecure: Bool
    /// The host name or address (an IPv6 address without its brackets).
    var host: String
    var port: Int
    /// The request target: the path and the query, at least `/`.
    var target: String

    /// The `Host` header field: the port only when it is not the scheme's.
    var hostField: String {
        let name = host.contains(":") ? "[\(host)]" : host
        return port == (isSecure ? 443 : 80) ? name : "\(name):\(port)"
    }

    /// Parses `ws://host[:port][/path][?query]` and `wss://…` (and `http://`, `https://`, which a
    /// redirect may name); a fragment is dropped.
    init(_ text: String) throws(WebSocketClientError) {
        guard let schemeEnd = text.firstRange(of: "://") else { throw .invalidURL(text, "no scheme (ws:// or wss://)") }
        switch text[..<schemeEnd.lowerBound].lowercased() {
        case "ws", "http": isSecure = false
        case "wss", "https": isSecure = true
        default: throw .invalidURL(text, "the scheme must be ws or wss")
        }
        var rest = text[schemeEnd.upperBound...]
        if let hash = rest.firstIndex(of: "#") { rest = rest[..<hash] }
        let authorityEnd = rest.firstIndex { $0 == "/" || $0 == "?" } ?? rest.endIndex
        var authority = rest[..<authorityEnd]
        let path = rest[authorityEnd...]
        target = path.isEmpty ? "/" : path.first == "?" ? "/" + path : String(path)
        if let at = authority.lastIndex(of: "@") { authority = authority[authority.index(after: at)...] }  // user info: not sent
        var portText: Substring?
        if authority.first == "[" {
            guard let close = authority.firstIndex(of: "]") else { throw .invalidURL(text, "an unclosed IPv6 address") }
            host = String(authority[authority.index(after: authority.startIndex)..<close])
            let after = authority[authority.index(after: close)...]
            if !after.isEmpty {
                guard after.first == ":" else { throw .invalidURL(text, "bytes after the IPv6 address") }
                portText = after.dropFirst()
            }
        } else if let colon = authority.lastIndex(of: ":") {
            host = String(authority[..<colon])
            portText = authority[authority.index(after: colon)...]
        } else {
            host = String(authority)
        }
        guard !host.isEmpty else { throw .invalidURL(text, "no host") }
        if let portText {
            guard let port = Int(portText), (1...65535).contains(port) else { throw .invalidURL(text, "the port must be 1 to 65535") }
            self.port = port
        } else {
            port = isSecure ? 443 : 80
        }
    }

    /// Where a redirect's `Location` points from this URL: absolute, or a path on the same server.
    func resolving(_ location: String) throws(WebSocketClientError) -> WebSocketURL {
        if location.contains("://") { return try WebSocketURL(location) }
        guard location.hasPrefix("/") else { throw .invalidURL(location, "a redirect to a relative path") }
        var url = self
        url.target = location
        return url
    }
}
