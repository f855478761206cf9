public import HTTPTypes
public import NIOCore

/// An HTTP request as a handler sees it: the head, the body, and where it came from.
///
/// `Request` is also a component: declare a parameter of this type to receive the current request.
public struct Request: Sendable {
    /// The request line and header fields.
    public var head: HTTPRequest
    /// The request body: in memory when it arrived with the head, else streaming in as it is read
    /// (``RequestBody``: iterate it or `collect(upTo:)` it).
    public var body: RequestBody
    /// The peer's address (`"127.0.0.1:53122"`), when the transport knows it; behind a trusted
    /// proxy, the address the proxy reported.
    public var clientAddress: String?
    /// The path prefix a proxy mounts the app under (`--root-path`), already removed from ``path``.
    public var rootPath: String
    /// The id in every log line about this request; the transport may set it (to log with the
    /// same id), otherwise the app assigns one.
    public var id: String?

    /// Creates a request from its parts.
    public init(head: HTTPRequest, body: RequestBody, clientAddress: String? = nil, rootPath: String = "") {
        self.head = head
        self.body = body
        self.clientAddress = clientAddress
        self.rootPath = rootPath
    }

    /// Creates a request whose body is one buffer (an empty one by default).
    public init(head: HTTPRequest, body: ByteBuffer = ByteBuffer(), clientAddress: String? = nil, rootPath: String = "") {
        self.init(head: head, body: RequestBody(body), clientAddress: clientAddress, rootPath: rootPath)
    }

    /// The request method.
    public var method: HTTPRequest.Method { head.method }
    /// The header fields.
    public var headers: HTTPFields { head.headerFields }
    /// The request target as sent: path and query string (`/users/1?full=true`).
    public var target: String { head.path ?? "/" }
    /// The path without the query string, percent-encoding kept as sent.
    public var path: String {
        let target = self.target
        guard let mark = target.firstIndex(of: "?") else { return target }
        return String(target[..<mark])
    }
    /// The query string without the `?`, or `""`.
    public var queryString: String {
        let target = self.target
        guard let mark = target.firstIndex(of: "?") else { return "" }
        return String(target[target.index(after: mark)...])
    }
    /// The scheme (`http`, `https`, `ws`, `wss`) the transport reports.
    public var scheme: String { head.scheme ?? "http" }
    /// The full URL: scheme, host (from `Host`), and target.
    public var url: String { "\(scheme)://\(head.authority ?? "localhost")\(target)" }

    /// The cookies of every `Cookie` field, by name; the first value wins when a name repeats.
    public var cookies: [String: String] {
        var cookies: [String: String] = [:]
        for field in headers[values: .cookie] {
            for pair in field.split(separator: ";") {
                let trimmed = pair.drop(while: { $0 == " " })
                guard let equals = trimmed.firstIndex(of: "=") else { continue }
                let name = String(trimmed[..<equals])
                if cookies[name] == nil {
                    cookies[name] = String(trimmed[trimmed.index(after: equals)...])
                }
            }
        }
        return cookies
    }
}
