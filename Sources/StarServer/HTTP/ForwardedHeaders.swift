import HTTPTypes
import Star

/// `X-Forwarded-For`, `X-Forwarded-Proto` and `Forwarded` (RFC 7239), honoured only when the
/// peer is a trusted proxy (`--forwarded-allow-ips`).
enum ForwardedHeaders {
    /// The request with the scheme a trusted proxy reported, and the client address it reported.
    static func apply(to request: HTTPRequest, clientAddress: String?, scheme: String,
                      configuration: ServerConfiguration) -> (request: HTTPRequest, clientAddress: String?) {
        var request = request
        request.scheme = scheme
        guard configuration.proxyHeaders, isTrusted(clientAddress, configuration.forwardedAllowIPs) else {
            return (request, clientAddress)
        }
        var client = clientAddress
        if let forwarded = request.headerFields[HTTPField.Name("Forwarded")!], let element = forwarded.split(separator: ",").last {
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
            if let list = request.headerFields[HTTPField.Name("X-Forwarded-For")!],
                let nearest = list.split(separator: ",").last
            {
                client = nearest.trimmed(of: " ")
            }
            if let proto = request.headerFields[HTTPField.Name("X-Forwarded-Proto")!] {
                request.scheme = proto.split(separator: ",").last.map { $0.trimmed(of: " ").lowercased() }
            }
        }
        return (request, client)
    }

    private static func isTrusted(_ address: String?, _ allowed: [String]) -> Bool {
        if allowed.contains("*") { return true }
        guard let address else { return false }
        let host = address.hasPrefix("[") ? String(address.dropFirst().prefix { $0 != "]" })
            : String(address.split(separator: ":").dropLast().joined(separator: ":"))
        return allowed.contains(host) || allowed.contains(address)
    }
}
