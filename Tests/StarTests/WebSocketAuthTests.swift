import Logging
import Star
import StarTesting
import StarWebSocket
import Synchronization
import Testing

// The components and hooks of docs/security.md, as written there: these tests prove the guide.
// The handlers are the guide's too, with one added line that counts how often their body runs.

/// Who holds which token or session (your database in a real app).
struct TokenStore: Sendable {
    let users: [String: String]  // token or session id → user name
    func user(for credential: String) -> String? { users[credential] }
}

/// The user named by the `token` query parameter of the handshake.
struct QueryTokenUser: Component {
    let name: String

    static func resolve(in context: RequestContext) async throws -> QueryTokenUser {
        let query = try await context.resolve(QueryParams.self)
        let store = try await context.resolve(TokenStore.self)
        guard let token = query["token"], let name = store.user(for: token) else {
            throw HTTPError(.unauthorized, detail: "Missing or invalid token")
        }
        return QueryTokenUser(name: name)
    }
}

/// The user of the `session` cookie the browser sends with the handshake.
struct SessionUser: Component {
    let name: String

    static func resolve(in context: RequestContext) async throws -> SessionUser {
        let request = try await context.resolve(Request.self)
        let store = try await context.resolve(TokenStore.self)
        guard let session = request.cookies["session"], let name = store.user(for: session) else {
            throw HTTPError(.unauthorized, detail: "Log in first")
        }
        return SessionUser(name: name)
    }
}

/// The user of the `token.<value>` subprotocol the client offers next to `star.v1`.
struct ProtocolTokenUser: Component {
    let name: String

    static func resolve(in context: RequestContext) async throws -> ProtocolTokenUser {
        let ws = try await context.resolve(WebSocket.self)  // the same session the handler gets
        let store = try await context.resolve(TokenStore.self)
        guard let offer = ws.subprotocols.first(where: { $0.hasPrefix("token.") }),
              let name = store.user(for: String(offer.dropFirst("token.".count)))
        else {
            throw HTTPError(.unauthorized, detail: "Missing or invalid token")
        }
        return ProtocolTokenUser(name: name)
    }
}

/// Authenticates every WebSocket route before `WebSocketAutoHook` connects it.
struct RequireUser: EventHook {
    func onRequest(_ context: RequestContext) async throws -> Response? {
        if context.route.isWebSocket { _ = try await context.resolve(QueryTokenUser.self) }
        return nil
    }
}

/// An error whose text must never reach a client.
struct LeakyError: Error, CustomStringConvertible {
    var description: String { "db password hunter2" }
}

/// Decoding that fails with a ``LeakyError``, as an `init(from:)` calling internal code might.
struct LeakyDecodable: Decodable, Sendable {
    init(from decoder: any Decoder) throws { throw LeakyError() }
}

/// Keeps the lines an app logs, to show where internal error text goes.
struct CapturingLogHandler: LogHandler {
    let lines: Log
    var logLevel: Logger.Level = .trace
    var metadata: Logger.Metadata = [:]
    var metadataProvider: Logger.MetadataProvider?

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) { lines.add("\(event.level): \(event.message)") }
}

@Suite struct WebSocketAuthTests {
    /// The denial of a handshake, or `nil` (recorded as an issue) when the handshake was accepted.
    static func denial(_ client: TestClient, _ target: String, subprotocols: [String] = [],
                       headers: HTTPFields = [:]) async -> TestResponse? {
        do {
            _ = try await client.websocketConnect(target, subprotocols: subprotocols, headers: headers)
            Issue.record("expected \(target) to be denied")
        } catch let denied as WebSocketDenied {
            return denied.response
        } catch {
            Issue.record("expected a denial, got \(error)")
        }
        return nil
    }

    static func detail(_ response: TestResponse?) throws -> String? {
        try response?.json([String: String].self)["detail"]
    }

    // MARK: Authentication patterns

    @Test func tokenInTheQuery() async throws {
        let runs = Counter()
        @Sendable @concurrent func live(ws: WebSocket, user: QueryTokenUser) async throws {
            runs.count.add(1, ordering: .relaxed)
            try await ws.connect()  // reached only with a valid token
            try await ws.send(text: "hello \(user.name)")
            for try await message in ws.messages { try await ws.send(message) }
        }
        let app = App(
            routes: [Route("/ws/live", .get, live)],
            components: [Provide(TokenStore(users: ["t-ada": "ada"])), WebSocketComponent()]
        )
        let client = try TestClient(app)

        let ws = try await client.websocketConnect("/ws/live?token=t-ada")
        #expect(try await ws.receiveText() == "hello ada")
        try await ws.send(text: "ping")
        #expect(try await ws.receiveText() == "ping")
        await ws.close()

        for target in ["/ws/live", "/ws/live?token=", "/ws/live?token=t-bob", "/ws/live?tok=t-ada"] {
            let denied = await Self.denial(client, target)
            #expect(denied?.status == .unauthorized, "\(target)")
            #expect(try Self.detail(denied) == "Missing or invalid token")
        }
        #expect(runs.count.load(ordering: .relaxed) == 1, "the handler ran only for the valid token")
    }

    @Test func sessionCookie() async throws {
        let runs = Counter()
        @Sendable @concurrent func feed(ws: WebSocket, user: SessionUser) async throws {  // `ws` first: Origin is checked before the cookie
            runs.count.add(1, ordering: .relaxed)
            try await ws.connect()
            try await ws.send(text: "hello \(user.name)")
            for try await message in ws.messages { try await ws.send(message) }
        }
        let app = App(
            routes: [Route("/ws/feed", .get, feed)],
            components: [
                Provide(TokenStore(users: ["s-ada": "ada"])),
                WebSocketComponent(allowedOrigins: ["https://app.example.com"]),  // required with cookies
            ]
        )
        let client = try TestClient(app)
        let page: HTTPFields = [.origin: "https://app.example.com"]

        let ws = try await client.websocketConnect("/ws/feed", headers: page + [.cookie: "theme=dark; session=s-ada"])
        #expect(try await ws.receiveText() == "hello ada")
        try await ws.send(text: "ping")
        #expect(try await ws.receiveText() == "ping")
        await ws.close()

        // No session, or one the store does not know: 401.
        for cookie in [nil, "session=s-bob", "theme=dark"] {
            let denied = await Self.denial(client, "/ws/feed", headers: page + (cookie.map { [.cookie: $0] } ?? [:]))
            #expect(denied?.status == .unauthorized, "\(cookie ?? "no cookie")")
            #expect(try Self.detail(denied) == "Log in first")
        }
        // A valid cookie that another site's page made the browser send (cross-site WebSocket
        // hijacking), or a client without Origin: 403 — and the Origin check comes first.
        for (origin, cookie) in [("https://evil.example", "session=s-ada"), (nil, "session=s-ada"), ("https://evil.example", nil)] {
            var headers: HTTPFields = origin.map { [.origin: $0] } ?? [:]
            if let cookie { headers[.cookie] = cookie }
            let denied = await Self.denial(client, "/ws/feed", headers: headers)
            #expect(denied?.status == .forbidden, "\(origin ?? "no origin") \(cookie ?? "no cookie")")
            #expect(try Self.detail(denied) == "Origin not allowed")
        }
        #expect(runs.count.load(ordering: .relaxed) == 1, "the handler ran only for the valid session from the allowed origin")
    }

    @Test func tokenInTheSubprotocol() async throws {
        let runs = Counter()
        @Sendable @concurrent func chat(ws: WebSocket, user: ProtocolTokenUser) async throws {
            runs.count.add(1, ordering: .relaxed)
            try await ws.connect(subprotocol: "star.v1")  // answer the real protocol, never the token
            try await ws.send(text: "hello \(user.name)")
            for try await message in ws.messages { try await ws.send(message) }
        }
        let app = App(
            routes: [Route("/ws/chat", .get, chat)],
            components: [Provide(TokenStore(users: ["t-ada": "ada"])), WebSocketComponent()]
        )
        let client = try TestClient(app)

        let ws = try await client.websocketConnect("/ws/chat", subprotocols: ["star.v1", "token.t-ada"])
        #expect(ws.subprotocol == "star.v1")
        #expect(!ws.responseHeaders.contains { $0.value.contains("t-ada") }, "the token is not echoed")
        #expect(try await ws.receiveText() == "hello ada")
        try await ws.send(text: "ping")
        #expect(try await ws.receiveText() == "ping")
        await ws.close()

        for offer in [[], ["star.v1"], ["star.v1", "token."], ["star.v1", "token.t-bob"], ["star.v1", "t-ada"]] {
            let denied = await Self.denial(client, "/ws/chat", subprotocols: offer)
            #expect(denied?.status == .unauthorized, "\(offer)")
            #expect(try Self.detail(denied) == "Missing or invalid token")
        }
        #expect(runs.count.load(ordering: .relaxed) == 1, "the handler ran only for the valid token")
    }

    @Test func handlerDeniesBeforeConnecting() async throws {
        let connected = Log()
        @Sendable @concurrent func room(path: PathParams, ws: WebSocket, user: QueryTokenUser) async throws {
            guard path["room"] != "staff" || user.name == "ada" else {
                try ws.deny(HTTPError(.forbidden, detail: "Staff only").response)
                return  // never connect after deny
            }
            try await ws.connect()
            connected.add("\(user.name)@\(path["room"] ?? "")")
            try await ws.send(text: "welcome to \(path["room"] ?? "")")
        }
        let app = App(
            routes: [Route("/ws/rooms/{room}", .get, room)],
            components: [Provide(TokenStore(users: ["t-ada": "ada", "t-bob": "bob"])), WebSocketComponent()]
        )
        let client = try TestClient(app)

        #expect(try await client.websocketConnect("/ws/rooms/staff?token=t-ada").receiveText() == "welcome to staff")
        #expect(try await client.websocketConnect("/ws/rooms/lobby?token=t-bob").receiveText() == "welcome to lobby")
        let forbidden = await Self.denial(client, "/ws/rooms/staff?token=t-bob")
        #expect(forbidden?.status == .forbidden)
        #expect(try Self.detail(forbidden) == "Staff only")
        let anonymous = await Self.denial(client, "/ws/rooms/lobby")
        #expect(anonymous?.status == .unauthorized)
        #expect(connected.all.sorted() == ["ada@staff", "bob@lobby"])
    }

    @Test func authHookRunsBeforeTheAutoHookConnects() async throws {
        let runs = Counter()
        @Sendable @concurrent func ticker(ws: WebSocket, user: QueryTokenUser) async throws {
            runs.count.add(1, ordering: .relaxed)
            try await ws.send(text: "hello \(user.name)")  // already connected by the hook
        }
        let app = App(
            routes: [Route("/ws/ticker", .get, ticker)],
            components: [Provide(TokenStore(users: ["t-ada": "ada"]))],
            eventHooks: [RequireUser(), WebSocketAutoHook()]  // order matters
        )
        let client = try TestClient(app)
        let ws = try await client.websocketConnect("/ws/ticker?token=t-ada")
        #expect(try await ws.receiveText() == "hello ada")
        #expect(try await ws.waitForClose().code == .normalClosure)
        let denied = await Self.denial(client, "/ws/ticker?token=nope")
        #expect(denied?.status == .unauthorized)
        #expect(runs.count.load(ordering: .relaxed) == 1)
    }

    @Test func aHooksEarlyResponseAnswersAWebSocketHandshake() async throws {
        // A hook that answers in onRequest (a redirect to a login page, a 429 from a rate limiter)
        // is the handshake's answer, as it is for HTTP routes — not a generic 403.
        struct RateLimited: EventHook {
            func onRequest(_ context: RequestContext) async throws -> Response? {
                Response(status: .tooManyRequests, headers: [.retryAfter: "30"])
            }
        }
        let runs = Counter()
        @Sendable @concurrent func ticker(ws: WebSocket) async throws {
            runs.count.add(1, ordering: .relaxed)
            try await ws.connect()
        }
        let app = App(routes: [Route("/ws/ticker", .get, ticker)], eventHooks: [RateLimited(), WebSocketAutoHook()])
        let denied = await Self.denial(try TestClient(app), "/ws/ticker")
        #expect(denied?.status == .tooManyRequests)
        #expect(denied?.headers[.retryAfter] == "30")
        #expect(runs.count.load(ordering: .relaxed) == 0)
    }

    @Test func withTheAutoHookAloneAuthenticationComesAfterThe101() async throws {
        // The pitfall the guide warns about: the hook connects before the handler's parameters
        // resolve, so a bad token is refused only after the handshake, with close 1011.
        let runs = Counter()
        @Sendable @concurrent func ticker(ws: WebSocket, user: QueryTokenUser) async throws {
            runs.count.add(1, ordering: .relaxed)
        }
        let app = App(
            routes: [Route("/ws/ticker", .get, ticker)],
            components: [Provide(TokenStore(users: ["t-ada": "ada"]))],
            eventHooks: [WebSocketAutoHook()]
        )
        let ws = try await TestClient(app).websocketConnect("/ws/ticker?token=nope")
        let close = try await ws.waitForClose()
        #expect(close.code == .internalServerError)
        #expect(close.reason == "")
        #expect(runs.count.load(ordering: .relaxed) == 0)
    }

    // MARK: Origin allow-list

    @Test func originAllowList() async throws {
        let runs = Counter()
        @Sendable @concurrent func handler(ws: WebSocket) async throws {
            runs.count.add(1, ordering: .relaxed)
            try await ws.connect()
            try await ws.send(text: "hi")
        }
        let app = App(routes: [Route("/ws", .get, handler)],
                      components: [WebSocketComponent(allowedOrigins: ["https://app.example.com"])])
        let client = try TestClient(app)

        let ws = try await client.websocketConnect("/ws", headers: [.origin: "https://app.example.com"])
        #expect(try await ws.receiveText() == "hi")

        // Exact matches only: another site, a missing Origin, `null` (sandboxed frames, file:
        // pages), a trailing slash, another port, another scheme.
        for origin in ["https://evil.example", nil, "null", "https://app.example.com/", "https://app.example.com:8443",
                       "http://app.example.com", "https://app.example.com.evil.example"] {
            let denied = await Self.denial(client, "/ws", headers: origin.map { [.origin: $0] } ?? [:])
            #expect(denied?.status == .forbidden, "\(origin ?? "no origin")")
            #expect(try Self.detail(denied) == "Origin not allowed")
        }
        #expect(runs.count.load(ordering: .relaxed) == 1, "the handler never ran for a refused origin")
    }

    @Test func emptyOriginInTheListAdmitsClientsThatSendNone() async throws {
        @Sendable @concurrent func handler(ws: WebSocket) async throws { try await ws.connect() }
        let app = App(routes: [Route("/ws", .get, handler)],
                      components: [WebSocketComponent(allowedOrigins: ["https://app.example.com", ""])])
        let client = try TestClient(app)
        _ = try await client.websocketConnect("/ws")
        _ = try await client.websocketConnect("/ws", headers: [.origin: "https://app.example.com"])
        #expect(await Self.denial(client, "/ws", headers: [.origin: "https://evil.example"])?.status == .forbidden)
    }

    @Test func withoutAnAllowListEveryOriginConnects() async throws {
        @Sendable @concurrent func handler(ws: WebSocket) async throws { try await ws.connect() }
        let client = try TestClient(App(routes: [Route("/ws", .get, handler)], components: [WebSocketComponent()]))
        _ = try await client.websocketConnect("/ws", headers: [.origin: "https://evil.example"])
        _ = try await client.websocketConnect("/ws")
    }

    // MARK: No internal error text for clients

    @Test func webSocketHandlerErrorsCloseWith1011AndNoText() async throws {
        let lines = Log()
        @Sendable @concurrent func afterConnect(ws: WebSocket) async throws {
            try await ws.connect()
            try await ws.send(text: "before")
            throw LeakyError()
        }
        @Sendable @concurrent func httpErrorAfterConnect(ws: WebSocket) async throws {
            try await ws.connect()
            throw HTTPError(.forbidden, detail: "author's text, but the handshake is over")
        }
        @Sendable @concurrent func beforeConnect(ws: WebSocket) async throws { throw LeakyError() }
        /// An authentication component whose store is down: not an `HTTPError`.
        struct BrokenUser: Component {
            static func resolve(in context: RequestContext) async throws -> BrokenUser { throw LeakyError() }
        }
        @Sendable @concurrent func brokenAuth(ws: WebSocket, user: BrokenUser) async throws { try await ws.connect() }
        let app = App(
            routes: [Route("/after", .get, afterConnect), Route("/http-error", .get, httpErrorAfterConnect),
                     Route("/before", .get, beforeConnect), Route("/broken-auth", .get, brokenAuth)],
            logger: Logger(label: "test") { _ in CapturingLogHandler(lines: lines) }
        )
        let client = try TestClient(app)

        let ws = try await client.websocketConnect("/after")
        #expect(try await ws.receiveText() == "before")
        let close = try await ws.waitForClose()
        #expect(close.code == .internalServerError)
        #expect(close.reason == "")

        let afterHTTPError = try await client.websocketConnect("/http-error").waitForClose()
        #expect(afterHTTPError.code == .internalServerError)
        #expect(afterHTTPError.reason == "")

        for target in ["/before", "/broken-auth"] {
            let denied = await Self.denial(client, target)
            #expect(denied?.status == .forbidden, "\(target)")
            #expect(denied?.text == #"{"detail":"WebSocket connection denied"}"#, "\(target)")
        }
        // The text is in the log (one line per failed request), for the operator.
        #expect(lines.all.filter { $0.hasPrefix("error:") && $0.contains("hunter2") }.count == 3)
    }

    @Test func httpHandlerErrorsAnswer500WithNoText() async throws {
        let lines = Log()
        @Sendable @concurrent func fails() async throws -> String { throw LeakyError() }
        let app = App(routes: [Route("/fails", .get, fails)],
                      logger: Logger(label: "test") { _ in CapturingLogHandler(lines: lines) })
        let response = await (try TestClient(app)).get("/fails")
        #expect(response.status == .internalServerError)
        #expect(response.text == #"{"detail":"Server error"}"#)
        #expect(lines.all.contains { $0.hasPrefix("error:") && $0.contains("hunter2") })
    }

    @Test func decodingErrorsNameTheFieldButNoInternalText() async throws {
        struct Price: Decodable, Sendable { let price: Double }
        let lines = Log()
        @Sendable @concurrent func body(body: Body<LeakyDecodable>) async -> String { "unreachable" }
        @Sendable @concurrent func query(query: Query<LeakyDecodable>) async -> String { "unreachable" }
        @Sendable @concurrent func path(path: Path<LeakyDecodable>) async -> String { "unreachable" }
        @Sendable @concurrent func price(body: Body<Price>) async -> String { "\(body.price)" }
        let app = App(
            routes: [Route("/body", .post, body), Route("/query", .get, query), Route("/path/{id}", .get, path),
                     Route("/price", .post, price)],
            logger: Logger(label: "test") { _ in CapturingLogHandler(lines: lines) }
        )
        let client = try TestClient(app)
        let json: HTTPFields = [.contentType: "application/json"]

        let badBody = await client.post("/body", headers: json, body: ByteBuffer(string: "{}"))
        #expect(badBody.status == .badRequest)
        #expect(try Self.detail(badBody) == "Invalid JSON body: invalid value")
        let badQuery = await client.get("/query?a=1")
        #expect(badQuery.status == .badRequest)
        #expect(try Self.detail(badQuery) == "Invalid query: invalid value")
        let badPath = await client.get("/path/1")
        #expect(badPath.status == .notFound)
        #expect(try Self.detail(badPath) == "Not Found: invalid value")
        for what in ["JSON body does", "query does", "path parameters do"] {
            #expect(lines.all.contains { $0.hasPrefix("debug: \(what) not decode") && $0.contains("hunter2") },
                    "the error itself is logged: \(what)")
        }

        // A DecodingError still tells the client which field is wrong.
        let badPrice = await client.post("/price", headers: json, body: ByteBuffer(string: #"{"price":"cheap"}"#))
        #expect(badPrice.status == .badRequest)
        #expect(try Self.detail(badPrice) == "Invalid JSON body: field 'price': expected a number")
        // In JSON's terms, never a Swift type name; no empty field name for the whole body.
        let notAnObject = await client.post("/price", headers: json, body: ByteBuffer(string: "[1]"))
        #expect(try Self.detail(notAnObject) == "Invalid JSON body: expected an object")
    }
}

private func + (lhs: HTTPFields, rhs: HTTPFields) -> HTTPFields {
    var fields = lhs
    fields.append(contentsOf: rhs)
    return fields
}
