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
    /// The HTTP version the request came over (``HTTPVersion/http1_1`` unless the transport says
    /// otherwise). A WebSocket opened over HTTP/2 (RFC 8441) reaches its handler as the same `GET`
    /// as over HTTP/1.1: this is how the handler can tell.
    public var httpVersion: HTTPVersion = .http1_1

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

    /// An HTTP version: `HTTP/1.0`, `HTTP/1.1` or `HTTP/2`.
    public struct HTTPVersion: Sendable, Hashable, CustomStringConvertible {
        /// The major version (`1`, `2`).
        public let major: Int
        /// The minor version (`0` or `1` for HTTP/1, `0` for HTTP/2).
        public let minor: Int

        /// Creates a version from its numbers.
        public init(major: Int, minor: Int) {
            self.major = major
            self.minor = minor
        }

        /// HTTP/1.0.
        public static let http1_0 = HTTPVersion(major: 1, minor: 0)
        /// HTTP/1.1.
        public static let http1_1 = HTTPVersion(major: 1, minor: 1)
        /// HTTP/2.
        public static let http2 = HTTPVersion(major: 2, minor: 0)

        /// `HTTP/1.1`, `HTTP/2`: as in an access log.
        public var description: String { major >= 2 ? "HTTP/\(major)" : "HTTP/\(major).\(minor)" }
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
