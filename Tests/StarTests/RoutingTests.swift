import Star
import StarTesting
import Testing

@Suite struct RoutingTests {
    @concurrent static func echoPath(path: PathParams) async -> [String: String] { path.values }
    @concurrent static func ok() async -> String { "ok" }

    static let app = App(routes: [
        Route("/", .get, ok, name: "home"),
        Route("/users/{id}", .get, echoPath, name: "user"),
        Route("/users/{id}", .delete, ok, name: "delete-user"),
        Route("/users/me", .get, ok, name: "me"),
        Route("/files/{+path}", .get, echoPath, name: "file"),
        Include("/api", name: "api", routes: [
            Route("/items/{id}", .get, echoPath, name: "item"),
            Include("/v2", name: "v2", routes: [Route("/items/{id}", .get, echoPath, name: "item")]),
        ]),
    ])

    @Test func literalAndVariableSegments() async throws {
        let client = try TestClient(Self.app)
        #expect(await client.get("/").text == "ok")
        #expect(try await client.get("/users/42").json([String: String].self) == ["id": "42"])
        #expect(await client.get("/users/me").text == "ok", "a literal wins over a variable")
    }

    @Test func restVariableTakesSlashes() async throws {
        let client = try TestClient(Self.app)
        #expect(try await client.get("/files/a/b/c.txt").json([String: String].self) == ["path": "a/b/c.txt"])
        #expect(try await client.get("/files/").json([String: String].self) == ["path": ""])
    }

    @Test func valuesArePercentDecoded() async throws {
        let client = try TestClient(Self.app)
        #expect(try await client.get("/users/J%C3%BCrgen%20K").json([String: String].self) == ["id": "Jürgen K"])
    }

    @Test func unknownPathIs404() async throws {
        let client = try TestClient(Self.app)
        let response = await client.get("/nope")
        #expect(response.status == .notFound)
        #expect(try response.json([String: String].self) == ["detail": "Not Found"])
        #expect(await client.get("/users/42/extra").status == .notFound)
        #expect(await client.get("/users/").status == .notFound, "a variable never matches an empty segment")
    }

    @Test func wrongMethodIs405WithAllow() async throws {
        let client = try TestClient(Self.app)
        let response = await client.request(.put, "/users/1")
        #expect(response.status == .methodNotAllowed)
        #expect(response.headers[.allow] == "DELETE, GET, HEAD")
    }

    @Test func headAnswersEveryGETRouteWithItsHeadAndNoBody() async throws {
        let client = try TestClient(Self.app)
        let get = await client.get("/users/42")
        let head = await client.head("/users/42")
        #expect(head.status == .ok && head.body.isEmpty)
        #expect(head.headers[.contentType] == get.headers[.contentType])
        #expect(head.headers[.contentLength] == String(get.body.count))
        #expect(await client.head("/files/a/b").status == .ok, "rest templates too")
        #expect(await client.head("/nope").status == .notFound)
        let onlyDelete = App(routes: [Route("/users/{id}", .delete, Self.ok)])
        #expect(await (try TestClient(onlyDelete)).head("/users/1").status == .methodNotAllowed)
    }

    @Test func aTrailingSlashTwinRedirectsWith307() async throws {
        let app = App(routes: [
            Route("/notes", .get, Self.ok), Route("/folders/", .get, Self.ok), Route("/files/{+path}", .get, Self.echoPath),
        ])
        let client = try TestClient(app)
        let added = await client.get("/folders?sort=name")
        #expect(added.status == .temporaryRedirect && added.headers[.location] == "/folders/?sort=name")
        let removed = await client.get("/notes/")
        #expect(removed.status == .temporaryRedirect && removed.headers[.location] == "/notes")
        #expect(await client.get("/notes").text == "ok")
        #expect(await client.get("/other/").status == .notFound, "no twin: 404")
        #expect(await client.post("/notes/").status == .notFound, "the twin must match the same method")
        #expect(await client.get("//notes/").status == .notFound, "never a Location that names another host")
    }

    @Test func anExplicitHEADRouteWins() async throws {
        @Sendable @concurrent func head() async -> Response { Response(status: .noContent, headers: [.init("X-Head")!: "own"]) }
        let app = App(routes: [Route("/", .get, Self.ok), Route("/", .head, head)])
        let response = await (try TestClient(app)).head("/")
        #expect(response.status == .noContent && response.headers[.init("X-Head")!] == "own")
    }

    @Test func includesNestPrefixesAndNames() async throws {
        let client = try TestClient(Self.app)
        #expect(try await client.get("/api/v2/items/9").json([String: String].self) == ["id": "9"])
        #expect(try Self.app.url(for: "api:item", ["id": "1"]) == "/api/items/1")
        #expect(try Self.app.url(for: "api:v2:item", ["id": "a b/c"]) == "/api/v2/items/a%20b%2Fc")
        #expect(try Self.app.url(for: "file", ["path": "a b/c"]) == "/files/a%20b/c")
    }

    @Test func reverseURLErrorsAreClear() throws {
        let unknown = #expect(throws: RouteError.self) { try Self.app.url(for: "missing") }
        #expect(unknown?.kind == .unknownName && unknown?.route == "missing")
        let missing = #expect(throws: RouteError.self) { try Self.app.url(for: "user") }
        #expect(missing?.kind == .missingParameter && missing?.template == "/users/{id}")
        #expect(missing == .missingParameter("id", template: "/users/{id}"))
    }

    @Test func defaultNameIsMethodAndTemplate() throws {
        let app = App(routes: [Route("/a/{x}", .post, Self.ok)])
        #expect(try app.url(for: "POST /a/{x}", ["x": "1"]) == "/a/1")
    }

    @Test(arguments: ["users/{id}", "/a/{+rest}/b", "/a/x{id}", "/a/{id}/{id}", "/a/{}", "/a/{na-me}"])
    func malformedTemplatesFailAtStartup(_ template: String) {
        let app = App(routes: [Route(template, .get, Self.ok)])
        let error = #expect(throws: RouteError.self) { try TestClient(app) }
        #expect(error?.kind == .invalidTemplate)
        #expect(error?.template == template)
    }

    @Test func includePrefixWithoutSlashFailsAtStartup() {
        let error = #expect(throws: RouteError.self) { try TestClient(App(routes: [Include("api", routes: [Route("/a", .get, Self.ok)])])) }
        #expect(error?.kind == .invalidTemplate && error?.template == "api")
    }

    @Test func duplicateNamesAndTemplatesFailAtStartup() {
        #expect(throws: RouteError.duplicateName("x")) {
            try TestClient(App(routes: [Route("/a", .get, Self.ok, name: "x"), Route("/b", .get, Self.ok, name: "x")]))
        }
        let duplicate = #expect(throws: RouteError.self) {
            try TestClient(App(routes: [Route("/a", .get, Self.ok, name: "x"), Route("/a", .get, Self.ok, name: "y")]))
        }
        #expect(duplicate?.kind == .duplicateRoute && duplicate?.route == "y" && duplicate?.template == "/a")
        let conflict = #expect(throws: RouteError.self) {
            try TestClient(App(routes: [Route("/a/{x}", .get, Self.ok), Route("/a/{y}", .post, Self.ok)]))
        }
        #expect(conflict?.kind == .conflictingVariable && conflict?.route == "POST /a/{y}")
        let restConflict = #expect(throws: RouteError.self) {
            try TestClient(App(routes: [Route("/f/{+x}", .get, Self.ok), Route("/f/{+y}", .post, Self.ok)]))
        }
        #expect(restConflict?.kind == .conflictingVariable && restConflict?.template == "/f/{+y}")
    }

    @Test func routerMatchesOneOfAThousandRoutes() throws {
        var routes: [any RouteEntry] = []
        for index in 0..<1000 {
            routes.append(Route("/r\(index)/{id}", .get, Self.echoPath, name: "r\(index)"))
        }
        let router = try Router(routes)
        guard case .found(let route, let parameters) = router.match(.get, path: "/r777/x") else {
            Issue.record("no match")
            return
        }
        #expect(route.name == "r777")
        #expect(parameters == ["id": "x"])
    }
}
