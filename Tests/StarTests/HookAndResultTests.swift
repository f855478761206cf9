import Star
import StarTesting
import Synchronization
import Testing

/// Records the order in which hook methods run.
final class Trace: Sendable {
    let events = Mutex<[String]>([])
    func add(_ event: String) { events.withLock { $0.append(event) } }
    var all: [String] { events.withLock { $0 } }
}

struct TracingHook: EventHook {
    let name: String
    let trace: Trace
    var answerEarly = false

    func onRequest(_ context: RequestContext) async throws -> Response? {
        trace.add("\(name).request")
        return answerEarly ? Response.text("early from \(name)", status: .accepted) : nil
    }
    func onResponse(_ response: Response, context: RequestContext) async throws -> Response {
        trace.add("\(name).response")
        var response = response
        response.headers.append(HTTPField(name: HTTPField.Name("X-Hook")!, value: name))
        return response
    }
    func onError(_ error: any Error, context: RequestContext) async throws -> Response? {
        trace.add("\(name).error")
        return nil
    }
}

struct Secret: Error {}

struct Payload: Codable, Sendable, Equatable { let a: Int }

@Suite struct HookAndResultTests {
    @Test func hooksRunInStackOrder() async throws {
        let trace = Trace()
        @Sendable @concurrent func handler() async -> String {
            trace.add("handler")
            return "done"
        }
        let app = App(routes: [Route("/", .get, handler)],
                      eventHooks: [TracingHook(name: "a", trace: trace), TracingHook(name: "b", trace: trace)])
        let response = await (try TestClient(app)).get("/")
        #expect(response.text == "done")
        #expect(trace.all == ["a.request", "b.request", "handler", "b.response", "a.response"])
        #expect(response.headers[values: HTTPField.Name("X-Hook")!] == ["b", "a"])
    }

    @Test func hookAnswersEarly() async throws {
        let trace = Trace()
        @Sendable @concurrent func handler() async -> String {
            trace.add("handler")
            return "done"
        }
        let app = App(routes: [Route("/", .get, handler)], eventHooks: [
            TracingHook(name: "a", trace: trace), TracingHook(name: "b", trace: trace, answerEarly: true),
            TracingHook(name: "c", trace: trace),
        ])
        let response = await (try TestClient(app)).get("/")
        #expect(response.status == .accepted)
        #expect(response.text == "early from b")
        #expect(trace.all == ["a.request", "b.request", "b.response", "a.response"])
    }

    @Test func errorsRunOnErrorInReverse() async throws {
        let trace = Trace()
        @Sendable @concurrent func handler() async throws -> String { throw Secret() }
        let app = App(routes: [Route("/", .get, handler)],
                      eventHooks: [TracingHook(name: "a", trace: trace), TracingHook(name: "b", trace: trace)])
        let response = await (try TestClient(app)).get("/")
        #expect(response.status == .internalServerError)
        #expect(trace.all == ["a.request", "b.request", "b.error", "a.error"])
    }

    @Test func standaloneRoutesSkipHooks() async throws {
        let trace = Trace()
        @Sendable @concurrent func handler() async -> Response { Response.text("raw") }
        let app = App(routes: [Route("/", .get, handler, standalone: true)], eventHooks: [TracingHook(name: "a", trace: trace)])
        #expect(await (try TestClient(app)).get("/").text == "raw")
        #expect(trace.all.isEmpty)
    }

    @Test func httpErrorBecomesItsStatusAndOtherErrorsLeakNothing() async throws {
        @Sendable @concurrent func teapot() async throws -> String { throw HTTPError(.init(code: 418), detail: "short and stout") }
        @Sendable @concurrent func secret() async throws -> String { throw Secret() }
        let client = try TestClient(App(routes: [Route("/teapot", .get, teapot), Route("/secret", .get, secret)]))
        let tea = await client.get("/teapot")
        #expect(tea.status.code == 418)
        #expect(try tea.json([String: String].self) == ["detail": "short and stout"])
        let hidden = await client.get("/secret")
        #expect(hidden.status == .internalServerError)
        #expect(hidden.text == #"{"detail":"Server error"}"#)
    }

    @Test func resultsRender() async throws {
        @Sendable @concurrent func text() async -> String { "hi" }
        @Sendable @concurrent func bytes() async -> [UInt8] { [1, 2, 3] }
        @Sendable @concurrent func json() async -> Payload { Payload(a: 1) }
        @Sendable @concurrent func nothing() async {}
        @Sendable @concurrent func custom() async -> Response { Response(status: .created, headers: [.location: "/x"]) }
        let client = try TestClient(App(routes: [
            Route("/text", .get, text), Route("/bytes", .get, bytes), Route("/json", .get, json),
            Route("/nothing", .get, nothing), Route("/custom", .get, custom),
        ]))
        let t = await client.get("/text")
        #expect(t.text == "hi" && t.headers[.contentType] == "text/plain; charset=utf-8")
        let b = await client.get("/bytes")
        #expect(b.body == [1, 2, 3] && b.headers[.contentType] == "application/octet-stream")
        let j = await client.get("/json")
        #expect(try j.json(Payload.self) == Payload(a: 1) && j.headers[.contentType] == "application/json")
        let n = await client.get("/nothing")
        #expect(n.status == .noContent && n.body.isEmpty)
        let c = await client.get("/custom")
        #expect(c.status == .created && c.headers[.location] == "/x")
    }

    @Test func unrenderableResultIsAStartupError() {
        struct Opaque: Sendable {}
        @Sendable @concurrent func handler() async -> Opaque { Opaque() }
        let error = #expect(throws: RouteError.self) { try TestClient(App(routes: [Route("/", .get, handler, name: "opaque")])) }
        #expect(error?.kind == .unrenderableResult)
        #expect(error == .unrenderableResult(route: "opaque", type: Opaque.self))
    }
}
