import Star
import StarTesting
import Synchronization
import Testing

/// Counts how often it is resolved, to prove per-request caching.
final class Counter: Sendable {
    let count = Atomic<Int>(0)
}

/// A self-resolving component that depends on another component (`Headers`).
struct CurrentUser: Component {
    let name: String
    static func resolve(in context: RequestContext) async throws -> CurrentUser {
        let headers = try await context.resolve(Headers.self)
        guard let name = headers["X-User"] else { throw HTTPError(.unauthorized, detail: "Who are you?") }
        return CurrentUser(name: name)
    }
}

/// A per-request value built by a registered provider; counts its constructions.
struct Session: Sendable {
    let id: Int
}

/// A component nothing provides.
struct Unprovided: Sendable {}

/// A hook that resolves `Session` too, to show the handler sees the same instance.
struct SessionHook: EventHook {
    let seen = Trace()
    func onRequest(_ context: RequestContext) async throws -> Response? {
        let session = try await context.resolve(Session.self)
        seen.add("\(session.id)")
        return nil
    }
}

struct Item: Codable, Sendable, Equatable {
    let name: String
    let price: Double
    let tags: [String]?
}

struct Paging: Decodable, Sendable {
    let page: Int
    let size: Int?
    let tag: [String]?
}

@Suite struct ComponentTests {
    @Test func builtinComponents() async throws {
        @Sendable @concurrent func inspect(request: Request, headers: Headers, query: QueryParams, path: PathParams, app: App, logger: Logger) async -> [String: String] {
            logger.debug("inspecting")
            return [
                "method": request.method.rawValue, "path": request.path, "query": request.queryString,
                "header": headers["x-test"] ?? "", "q": query.values(for: "q").joined(separator: ","),
                "id": path["id"] ?? "", "url": (try? app.url(for: "inspect", ["id": "1"])) ?? "",
                "cookie": request.cookies["b"] ?? "", "client": request.clientAddress ?? "",
            ]
        }
        let client = try TestClient(App(routes: [Route("/x/{id}", .get, inspect, name: "inspect")]))
        let result = try await client.get("/x/7?q=a+b&q=%2F", headers: [HTTPField.Name("X-Test")!: "yes", .cookie: "a=1; b=2"])
            .json([String: String].self)
        #expect(result == [
            "method": "GET", "path": "/x/7", "query": "q=a+b&q=%2F", "header": "yes", "q": "a b,/", "id": "7",
            "url": "/x/1", "cookie": "2", "client": "testclient:0",
        ])
    }

    @Test func typedPathAndQuery() async throws {
        struct IDPath: Decodable, Sendable { let id: Int }
        @Sendable @concurrent func handler(path: Path<IDPath>, query: Query<Paging>) async -> String {
            "\(path.id) \(query.page) \(query.size ?? -1) \(query.tag ?? [])"
        }
        let client = try TestClient(App(routes: [Route("/items/{id}", .get, handler)]))
        #expect(await client.get("/items/5?page=2&tag=a&tag=b").text == "5 2 -1 [\"a\", \"b\"]")
        #expect(await client.get("/items/x?page=2").status == .notFound)
        let bad = await client.get("/items/5?page=two")
        #expect(bad.status == .badRequest)
        #expect(try bad.json([String: String].self)["detail"] == "Invalid query: field 'page': expected an integer")
        let missing = await client.get("/items/5")
        #expect(try missing.json([String: String].self)["detail"]?.contains("'page' is missing") == true)
    }

    @Test func jsonBody() async throws {
        @Sendable @concurrent func create(body: Body<Item>) async -> Item { body.value }
        let app = App(routes: [Route("/items", .post, create)], configuration: .init(maxBodySize: 100))
        let client = try TestClient(app)
        let item = Item(name: "pen", price: 1.5, tags: ["x"])
        #expect(try await client.post("/items", json: item).json(Item.self) == item)

        let wrongType = await client.post("/items", headers: [.contentType: "text/plain"], body: ByteBuffer(string: "{}"))
        #expect(wrongType.status == .unsupportedMediaType)

        let badField = await client.post("/items", headers: [.contentType: "application/json"],
                                         body: ByteBuffer(string: #"{"name":"pen","price":"cheap"}"#))
        #expect(badField.status == .badRequest)
        #expect(try badField.json([String: String].self)["detail"]?.contains("'price'") == true)

        let missing = await client.post("/items", headers: [.contentType: "application/json"], body: ByteBuffer(string: #"{"name":"pen"}"#))
        #expect(try missing.json([String: String].self)["detail"]?.contains("'price' is missing") == true)

        let malformed = await client.post("/items", headers: [.contentType: "application/json"], body: ByteBuffer(string: "{"))
        #expect(malformed.status == .badRequest)

        let large = await client.post("/items", headers: [.contentType: "application/json"],
                                      body: ByteBuffer(string: #"{"name":""# + String(repeating: "x", count: 200) + #"","price":1}"#))
        #expect(large.status == .contentTooLarge)
    }

    @Test func componentsResolveOncePerRequestAndAreSharedWithHooks() async throws {
        let counter = Counter()
        let hook = SessionHook()
        @Sendable @concurrent func handler(first: Session, again: Session) async -> String { "\(first.id) \(again.id)" }
        let app = App(
            routes: [Route("/", .get, handler)],
            components: [Provide(Session.self) { (_: Request) in Session(id: counter.count.add(1, ordering: .relaxed).newValue) }],
            eventHooks: [hook]
        )
        let client = try TestClient(app)
        #expect(await client.get("/").text == "1 1")
        #expect(await client.get("/").text == "2 2")
        #expect(counter.count.load(ordering: .relaxed) == 2)
        #expect(hook.seen.all == ["1", "2"])
    }

    @Test func registeredInstanceAndDependentComponents() async throws {
        final class Database: Sendable { let name = "main-db" }
        @Sendable @concurrent func handler(db: Database, user: CurrentUser) async -> String { "\(user.name)@\(db.name)" }
        let app = App(routes: [Route("/", .get, handler)], components: [Provide(Database())])
        let client = try TestClient(app)
        #expect(await client.get("/", headers: [HTTPField.Name("X-User")!: "ada"]).text == "ada@main-db")
        let anonymous = await client.get("/")
        #expect(anonymous.status == .unauthorized)
        #expect(try anonymous.json([String: String].self) == ["detail": "Who are you?"])
    }

    @Test func providerOverridesComponentConformance() async throws {
        @Sendable @concurrent func handler(user: CurrentUser) async -> String { user.name }
        let app = App(routes: [Route("/", .get, handler)], components: [Provide(CurrentUser(name: "fixed"))])
        #expect(await (try TestClient(app)).get("/").text == "fixed")
    }

    @Test func missingComponentIsAStartupErrorNamingRouteAndType() {
        @Sendable @concurrent func handler(thing: Unprovided) async -> String { "" }
        let app = App(routes: [Route("/", .get, handler, name: "needs-thing")])
        let error = #expect(throws: RouteError.self) { try TestClient(app) }
        #expect(error?.kind == .unresolvable)
        #expect(error?.route == "needs-thing")
        #expect(error?.typeName == String(reflecting: Unprovided.self))
        #expect(error == .unresolvable(route: "needs-thing", type: Unprovided.self))
    }

    @Test func missingDependencyOfAProviderIsAStartupError() {
        @Sendable @concurrent func handler(session: Session) async -> String { "" }
        let app = App(routes: [Route("/", .get, handler, name: "r")],
                      components: [Provide(Session.self) { (_: Unprovided) in Session(id: 0) }])
        let error = #expect(throws: RouteError.self) { try TestClient(app) }
        #expect(error?.kind == .unresolvable)
        #expect(error?.typeName == String(reflecting: Unprovided.self))
        #expect(error == .unresolvable(route: "r", type: Unprovided.self, neededBy: Session.self))
        #expect(error != .unresolvable(route: "r", type: Unprovided.self), "the dependent component is part of the error")
    }

    @Test func dependencyCycleIsAStartupError() {
        struct A: Sendable {}
        struct B: Sendable {}
        @Sendable @concurrent func handler(a: A) async -> String { "" }
        let app = App(routes: [Route("/", .get, handler)],
                      components: [Provide(A.self) { (_: B) in A() }, Provide(B.self) { (_: A) in B() }])
        let error = #expect(throws: RouteError.self) { try TestClient(app) }
        #expect(error?.kind == .dependencyCycle)
        #expect(error?.route == "GET /")
    }
}
