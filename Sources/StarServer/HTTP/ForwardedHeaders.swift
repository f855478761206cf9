import HTTPTypes
import Star

/// `X-Forwarded-For`, `X-Forwarded-Proto` and `Forwarded` (RFC 7239), honoured only when the
/// peer is a trusted proxy (`--forwarded-allow-ips`).
enum ForwardedHeaders {
    private enum Names {
        static let forwarded = HTTPField.Name("Forwarded")!
        static let forwardedFor = HTTPField.Name("X-Forwarded-For")!
        static let forwardedProto = HTTPField.Name("X-Forwarded-Proto")!
    }

    /// The request with the scheme a trusted proxy reported, and the client address it reported.
    ///
    /// - Parameter trusted: What ``trusts(_:configuration:)`` said of this connection's peer.
    /// The request is taken, not copied: setting the scheme on a copy that shares its pseudo-header
    /// storage with the caller's would copy that storage (one allocation per request, heaptrack).
    static func apply(to request: consuming HTTPRequest, clientAddress: String?, scheme: String,
                      trusted: Bool) -> (request: HTTPRequest, clientAddress: String?) {
        var request = request
        request.scheme = scheme
        guard trusted else {
            return (request, clientAddress)
        }
        var client = clientAddress
        if let forwarded = request.headerFields[Names.forwarded], let element = forwarded.split(separator: ",").last {
            for pair in element.split(separator: ";") {
                let parts = pair.split(separator: "=", maxSplits: 1).map { $0.trimmed(of: " \"") }
                guard parts.count == 2 else { continue }
                switch parts[0].lowercased() {
                case "for": client = parts[1]
                case "proto": request.scheme = parts[1].lowercased()
                default: break
                }
            }
        } else {
            if let list = request.headerFields[Names.forwardedFor],
                let nearest = list.split(separator: ",").last
            {
                client = nearest.trimmed(of: " ")
            }
            if let proto = request.headerFields[Names.forwardedProto] {
                request.scheme = proto.split(separator: ",").last.map { $0.trimmed(of: " ").lowercased() }
            }
        }
        return (request, client)
    }

    /// Whether a peer's forwarding headers count: proxy headers are on and the peer is in
    /// `--forwarded-allow-ips`. Decided once per connection.
    static func trusts(_ address: String?, configuration: ServerConfiguration) -> Bool {
        configuration.proxyHeaders && isTrusted(address, configuration.forwardedAllowIPs)
    }

    /// Whether `address` ("host:port", "[v6]:port", or a socket path) is one of `allowed`, by its host
    /// or whole. Compares slices: no string is made per connection (this runs for every one).
    private static func isTrusted(_ address: String?, _ allowed: [String]) -> Bool {
        if allowed.contains("*") { return true }
        guard let address else { return false }
        let host = address.hasPrefix("[") ? address.dropFirst().prefix { $0 != "]" }
            : address.lastIndex(of: ":").map { address[..<$0] } ?? address[...]
        return allowed.contains { $0 == host || $0 == address }
    }
}
