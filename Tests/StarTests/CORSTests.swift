import HTTPTypes
import Star
import StarTesting
import Testing

@Suite struct CORSTests {
    @concurrent static func notes() async -> [String: String] { ["notes": "yes"] }
    @concurrent static func fails() async throws -> String { throw HTTPError(.forbidden) }

    static let routes: [any RouteEntry] = [Route("/notes", .get, notes), Route("/notes", .post, notes), Route("/fails", .get, fails)]
    static let preflight: HTTPFields = [
        .origin: "https://app.example", HTTPField.Name("Access-Control-Request-Method")!: "POST",
        HTTPField.Name("Access-Control-Request-Headers")!: "content-type, x-token",
    ]

    @Test func aPreflightIsAnsweredBeforeRouting() async throws {
        let hook = CORSHook(allowedOrigins: ["https://app.example"], allowedMethods: [.get, .post], allowedHeaders: ["X-Token"],
                            allowCredentials: true, maxAge: .seconds(60))
        let client = try TestClient(App(routes: Self.routes, eventHooks: [hook]))
        let answer = await client.request(.options, "/notes", headers: Self.preflight)
        #expect(answer.status == .noContent)
        #expect(answer.headers[HTTPField.Name("Access-Control-Allow-Origin")!] == "https://app.example")
        #expect(answer.headers[HTTPField.Name("Access-Control-Allow-Methods")!] == "GET, POST")
        #expect(answer.headers[HTTPField.Name("Access-Control-Allow-Headers")!] == "X-Token")
        #expect(answer.headers[HTTPField.Name("Access-Control-Allow-Credentials")!] == "true")
        #expect(answer.headers[HTTPField.Name("Access-Control-Max-Age")!] == "60")
        #expect(answer.headers[.vary] == "Origin")
        let unrouted = await client.request(.options, "/nowhere", headers: Self.preflight)
        #expect(unrouted.status == .noContent, "before routing: a path with no OPTIONS route is answered too")
    }

    @Test(arguments: [
        ("https://evil.example", "POST", "content-type", "Disallowed CORS origin"),
        ("https://app.example", "DELETE", "content-type", "Disallowed CORS method"),
        ("https://app.example", "POST", "x-secret", "Disallowed CORS headers"),
    ])
    func aPreflightForWhatIsNotAllowedIsRefused(_ origin: String, _ method: String, _ headers: String, _ detail: String) async throws {
        let hook = CORSHook(allowedOrigins: ["https://app.example"], allowedMethods: [.get, .post], allowedHeaders: ["X-Token"])
        let client = try TestClient(App(routes: Self.routes, eventHooks: [hook]))
        let answer = await client.request(.options, "/notes", headers: [
            .origin: origin, HTTPField.Name("Access-Control-Request-Method")!: method,
            HTTPField.Name("Access-Control-Request-Headers")!: headers,
        ])
        #expect(answer.status == .badRequest && answer.text.contains(detail), "the browser refuses the call")
        if detail.contains("origin") {
            #expect(answer.headers[HTTPField.Name("Access-Control-Allow-Origin")!] == nil, "nothing for another origin")
        }
    }

    @Test func responsesToAnAllowedOriginSayTheyMayBeRead() async throws {
        let client = try TestClient(App(routes: Self.routes, eventHooks: [CORSHook(exposedHeaders: ["X-Count"])]))
        let allowOrigin = HTTPField.Name("Access-Control-Allow-Origin")!
        let ok = await client.get("/notes", headers: [.origin: "https://any.example"])
        #expect(ok.headers[allowOrigin] == "*" && ok.headers[.vary] == nil, "any origin, no credentials: *")
        #expect(ok.headers[HTTPField.Name("Access-Control-Expose-Headers")!] == "X-Count")
        #expect(await client.get("/fails", headers: [.origin: "https://any.example"]).headers[allowOrigin] == "*",
                "an error's response too, so the page can read why")
        #expect(await client.get("/missing", headers: [.origin: "https://any.example"]).headers[allowOrigin] == "*", "and a 404")
        #expect(await client.get("/notes").headers[allowOrigin] == nil, "no Origin: not a CORS request")
    }

    @Test func optionsWithoutCORSListsWhatAPathAllows() async throws {
        let client = try TestClient(App(routes: Self.routes))
        let options = await client.request(.options, "/notes")
        #expect(options.status == .noContent && options.headers[.allow] == "GET, HEAD, POST, OPTIONS")
        #expect(await client.request(.options, "/nowhere").status == .notFound)
    }
}
