public import HTTPTypes

/// Cross-origin resource sharing: lets pages of other origins call the app from a browser.
///
/// ```swift
/// App(routes: routes, eventHooks: [
///     CORSHook(allowedOrigins: ["https://app.example.com"], allowedMethods: [.get, .post],
///              allowedHeaders: ["Authorization"], allowCredentials: true),
/// ])
/// ```
///
/// A preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) is answered before
/// routing: `204` with what it may do when the origin, the method and every requested header are
/// allowed, `400` saying which one is not otherwise (the browser then refuses the call). Every other
/// response to an allowed `Origin` — a handler's, an error, a 404 — gets `Access-Control-Allow-Origin`
/// (the origin itself when credentials are allowed or origins are listed, with `Vary: Origin`), and
/// the credentials and exposed headers it allows. Requests without `Origin` (curl, same-origin GETs)
/// are left alone. WebSocket handshakes are not CORS requests: use `WebSocketComponent`'s
/// `allowedOrigins` for those.
public struct CORSHook: EventHook {
    /// The origins allowed (`https://app.example.com`, scheme, host and port as the browser sends
    /// them), or `["*"]` for any.
    public let allowedOrigins: Set<String>
    /// The methods a preflight may ask for.
    public let allowedMethods: [HTTPRequest.Method]
    /// The request headers a preflight may ask for besides the CORS-safelisted ones (`Accept`,
    /// `Accept-Language`, `Content-Language`, `Content-Type`), matched without regard to case;
    /// `["*"]` allows any.
    public let allowedHeaders: [String]
    /// Whether the browser may send cookies and `Authorization` (and show the response to the page).
    public let allowCredentials: Bool
    /// The response headers the page may read besides the safelisted ones.
    public let exposedHeaders: [String]
    /// How long a browser may cache a preflight's answer; `nil` leaves it to the browser (5 s in Chromium).
    public let maxAge: Duration?

    /// Creates the hook.
    public init(allowedOrigins: Set<String> = ["*"], allowedMethods: [HTTPRequest.Method] = [.get, .head, .post],
                allowedHeaders: [String] = [], allowCredentials: Bool = false, exposedHeaders: [String] = [],
                maxAge: Duration? = .seconds(600)) {
        self.allowedOrigins = allowedOrigins
        self.allowedMethods = allowedMethods
        self.allowedHeaders = allowedHeaders
        self.allowCredentials = allowCredentials
        self.exposedHeaders = exposedHeaders
        self.maxAge = maxAge
    }

    private static let requestMethod = HTTPField.Name("Access-Control-Request-Method")!
    private static let requestHeaders = HTTPField.Name("Access-Control-Request-Headers")!
    private static let allowOrigin = HTTPField.Name("Access-Control-Allow-Origin")!
    private static let allowMethods = HTTPField.Name("Access-Control-Allow-Methods")!
    private static let allowHeaders = HTTPField.Name("Access-Control-Allow-Headers")!
    private static let allowCredentialsName = HTTPField.Name("Access-Control-Allow-Credentials")!
    private static let exposeHeaders = HTTPField.Name("Access-Control-Expose-Headers")!
    private static let maxAgeName = HTTPField.Name("Access-Control-Max-Age")!
    private static let safelisted: Set<String> = ["accept", "accept-language", "content-language", "content-type"]

    public func answerBeforeRouting(_ request: Request) -> Response? {
        guard request.method == .options, let origin = request.headers[.origin],
              let method = request.headers[Self.requestMethod] else { return nil }
        guard isAllowed(origin) else { return HTTPError(.badRequest, detail: "Disallowed CORS origin").response }
        guard allowedMethods.contains(where: { $0.rawValue == method }) else {
            return HTTPError(.badRequest, detail: "Disallowed CORS method").response
        }
        let requested = (request.headers[Self.requestHeaders] ?? "").split(separator: ",")
            .map { $0.trimmed(of: " \t").lowercased() }.filter { !$0.isEmpty }
        let anyHeader = allowedHeaders.contains("*")
        let allowed = Set(allowedHeaders.map { $0.lowercased() }).union(Self.safelisted)
        guard anyHeader || requested.allSatisfy(allowed.contains) else {
            return HTTPError(.badRequest, detail: "Disallowed CORS headers").response
        }
        var headers: HTTPFields = [Self.allowMethods: allowedMethods.map(\.rawValue).joined(separator: ", ")]
        let headerList = anyHeader ? requested : allowedHeaders
        if !headerList.isEmpty { headers[Self.allowHeaders] = headerList.joined(separator: ", ") }
        if let maxAge { headers[Self.maxAgeName] = "\(maxAge.components.seconds)" }
        return Response(status: .noContent, headers: headers)
    }

    public func finish(_ response: inout Response, for request: Request) {
        guard let origin = request.headers[.origin], isAllowed(origin) else { return }
        let echo = allowCredentials || !allowedOrigins.contains("*")
        response.headers[Self.allowOrigin] = echo ? origin : "*"
        if echo { response.headers.append(HTTPField(name: .vary, value: "Origin")) }
        if allowCredentials { response.headers[Self.allowCredentialsName] = "true" }
        if !exposedHeaders.isEmpty { response.headers[Self.exposeHeaders] = exposedHeaders.joined(separator: ", ") }
    }

    private func isAllowed(_ origin: String) -> Bool {
        allowedOrigins.contains("*") || allowedOrigins.contains(origin)
    }
}
