public import HTTPTypes
public import NIOCore
public import Star
import StarWebSocketEngine
import Synchronization

/// Sends requests to an `App` in memory — the same code path as the server, without sockets.
///
/// ```swift
/// let client = try TestClient(app)
/// let response = await client.get("/users/1")
/// #expect(response.status == .ok)
/// let user = try response.json(User.self)
/// ```
public struct TestClient: Sendable {
    /// The app under test.
    public let app: App
    /// Header fields sent with every request (a request's own fields come after them).
    public var defaultHeaders: HTTPFields
    /// The clock of this client's WebSocket sessions: keepalive pings and timeouts happen only
    /// when a test advances it.
    public let clock: TestClock

    /// Creates a client, running the app's startup checks first (they throw `RouteError`).
    public init(_ app: App, defaultHeaders: HTTPFields = [:], clock: TestClock = TestClock()) throws(RouteError) {
        try app.validate()
        self.app = app
        self.defaultHeaders = defaultHeaders
        self.clock = clock
    }

    /// Sends a request with any method.
    ///
    /// - Parameters:
    ///   - method: The method.
    ///   - target: The path and query (`/search?q=star`).
    ///   - headers: Extra header fields.
    ///   - body: The body bytes.
    public func request(
        _ method: HTTPRequest.Method, _ target: String, headers: HTTPFields = [:], body: ByteBuffer = ByteBuffer()
    ) async -> TestResponse {
        var fields = defaultHeaders
        fields.append(contentsOf: headers)
        let head = HTTPRequest(method: method, scheme: "http", authority: "testserver", path: target, headerFields: fields)
        let request = Request(head: head, body: body, clientAddress: "testclient:0")
        let response = await app.respond(to: request) ?? Response(status: .internalServerError)
        if method == .head { return TestResponse(Self.headOnly(response), body: ByteBuffer()) }
        // A streamed body is read to its end here (use `stream(_:_:)` for one that never ends).
        let collected = CollectingWriter()
        do {
            try await response.body.write(to: collected)
        } catch {
            return TestResponse(Response(status: .internalServerError), body: ByteBuffer(string: "streamed body failed: \(error)"))
        }
        return TestResponse(response, body: collected.buffer)
    }

    /// What a server sends for `HEAD`: the head of the response with its `Content-Length` (when it
    /// is known), no body.
    static func headOnly(_ response: Response) -> Response {
        var head = response
        let code = response.status.code
        if code >= 200 && code != 204 && code != 304, let length = response.body.contentLength {
            head.headers[.contentLength] = String(length)
        }
        head.body = ResponseBody()
        return head
    }

    /// Sends a `HEAD`: the response has the `GET`'s status and headers (with its `Content-Length`)
    /// and no body, as from the server.
    public func head(_ target: String, headers: HTTPFields = [:]) async -> TestResponse {
        await request(.head, target, headers: headers)
    }

    /// Sends a `GET`.
    public func get(_ target: String, headers: HTTPFields = [:]) async -> TestResponse {
        await request(.get, target, headers: headers)
    }

    /// Sends a `DELETE`.
    public func delete(_ target: String, headers: HTTPFields = [:]) async -> TestResponse {
        await request(.delete, target, headers: headers)
    }

    /// Sends a `POST` with raw bytes.
    public func post(_ target: String, headers: HTTPFields = [:], body: ByteBuffer = ByteBuffer()) async -> TestResponse {
        await request(.post, target, headers: headers, body: body)
    }

    /// Sends a `PUT` with raw bytes.
    public func put(_ target: String, headers: HTTPFields = [:], body: ByteBuffer = ByteBuffer()) async -> TestResponse {
        await request(.put, target, headers: headers, body: body)
    }

    /// Sends a `PATCH` with raw bytes.
    public func patch(_ target: String, headers: HTTPFields = [:], body: ByteBuffer = ByteBuffer()) async -> TestResponse {
        await request(.patch, target, headers: headers, body: body)
    }

    /// Sends a request whose body is `value` encoded as JSON, with `Content-Type: application/json`.
    public func request(
        _ method: HTTPRequest.Method, _ target: String, json value: some Encodable, headers: HTTPFields = [:]
    ) async throws -> TestResponse {
        var fields: HTTPFields = [.contentType: "application/json"]
        fields.append(contentsOf: headers)
        return await request(method, target, headers: fields, body: ByteBuffer(bytes: try JSON.encode(value)))
    }

    /// Sends a `POST` whose body is `value` as JSON.
    public func post(_ target: String, json value: some Encodable, headers: HTTPFields = [:]) async throws -> TestResponse {
        try await request(.post, target, json: value, headers: headers)
    }
}

/// A response as the ``TestClient`` received it, its body read to the end.
public struct TestResponse: Sendable {
    /// The response as the app returned it.
    public let response: Response
    private let bodyBuffer: ByteBuffer

    init(_ response: Response, body: ByteBuffer) {
        self.response = response
        self.bodyBuffer = body
    }

    /// A response whose body is one buffer (a handshake's denial).
    init(_ response: Response) {
        self.init(response, body: response.body.buffer ?? ByteBuffer())
    }

    /// The status.
    public var status: HTTPResponse.Status { response.status }
    /// The header fields.
    public var headers: HTTPFields { response.headers }
    /// The body bytes (a streamed body's chunks joined).
    public var body: [UInt8] { Array(bodyBuffer.readableBytesView) }
    /// The body as UTF-8 text.
    public var text: String { String(decoding: bodyBuffer.readableBytesView, as: UTF8.self) }

    /// The body decoded from JSON.
    public func json<T: Decodable>(_ type: T.Type = T.self) throws -> T {
        try JSON.decode(T.self, from: bodyBuffer.readableBytesView)
    }
}

/// Collects a streamed body in memory.
private final class CollectingWriter: ResponseBodyWriter {
    private let collected = Mutex(ByteBuffer())

    var buffer: ByteBuffer { collected.withLock { $0 } }

    func write(_ chunk: ByteBuffer) async throws {
        var chunk = chunk
        _ = collected.withLock { $0.writeBuffer(&chunk) }
    }
}

extension TestClient {
    /// Opens a WebSocket session with the app in memory.
    ///
    /// Returns once the handler (or a hook) called `connect()`; throws ``WebSocketDenied`` with the
    /// response when the handshake was denied — by the app, or before it as the server would
    /// (426 for a version other than 13, 400 for a malformed `Sec-WebSocket-Key`, when `headers`
    /// replace them) — and ``TestTimeout`` when neither happens in time.
    ///
    /// - Parameters:
    ///   - target: The path and query.
    ///   - subprotocols: Offered as `Sec-WebSocket-Protocol`.
    ///   - headers: Extra header fields (`Origin`, cookies, …); they replace the handshake's own.
    ///   - timeout: How long the handshake and, by default, each receive may take.
    ///   - respondsToPings: Whether the client answers the server's keepalive pings (pass `false`
    ///     to see the ping timeout close the session when ``clock`` passes it).
    public func websocketConnect(
        _ target: String, subprotocols: [String] = [], headers: HTTPFields = [:], timeout: Duration = .seconds(5),
        respondsToPings: Bool = true
    ) async throws -> TestWebSocket {
        var fields = defaultHeaders
        fields[.upgrade] = "websocket"
        fields[.connection] = "Upgrade"
        fields[.secWebSocketVersion] = "13"
        fields[.secWebSocketKey] = "dGhlIHNhbXBsZSBub25jZQ=="
        if !subprotocols.isEmpty { fields[.secWebSocketProtocol] = subprotocols.joined(separator: ", ") }
        for field in headers { fields[values: field.name] = [] }
        fields.append(contentsOf: headers)
        let head = HTTPRequest(method: .get, scheme: "ws", authority: "testserver", path: target, headerFields: fields)
        let request = Request(head: head, clientAddress: "testclient:0")
        // The checks the server makes before the app sees a handshake.
        if let refusal = WebSocketHandshakeRules.check(request) { throw WebSocketDenied(response: TestResponse(refusal.response)) }
        let transport = InMemoryWebSocketSession(clock: clock, respondsToPings: respondsToPings)
        let outcome = MessageQueue<Result<HTTPFields, WebSocketDenied>>()
        let app = self.app
        Task {
            let response = await app.respond(to: request, webSocket: transport)
            if let response { outcome.push(.failure(WebSocketDenied(response: TestResponse(response)))) }
            // The handler finished: end the session if it is still open.
            await transport.close(code: .normalClosure, reason: "")
        }
        Task {
            if let headers = try? await transport.handshake.next(timeout: timeout) { outcome.push(.success(headers)) }
        }
        guard let result = try await outcome.next(timeout: timeout) else { throw TestTimeout(after: timeout) }
        return TestWebSocket(responseHeaders: try result.get(), timeout: timeout, transport: transport)
    }
}
