import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import Star
import StarServer
import Testing

struct Greeting: Codable, Sendable { let hello: String }

@concurrent func hello(path: PathParams) async -> Greeting { Greeting(hello: path["name"] ?? "") }
@concurrent func slowEcho(request: Request) async throws -> String {
    try await Task.sleep(for: .milliseconds(request.path == "/slow" ? 50 : 0))
    return request.path
}
@concurrent func upload(request: Request) async throws -> String { "\(try await request.body.collect(upTo: .max).readableBytes)" }
/// Which executor runs handlers: NIO knows when the current thread is one of its event loops.
@concurrent func whereAmI() async -> String { MultiThreadedEventLoopGroup.currentEventLoop == nil ? "global" : "event-loop" }

let serverTestApp = App(
    routes: [
        Route("/hello/{name}", .get, hello),
        Route("/slow", .get, slowEcho, name: "slow"),
        Route("/fast", .get, slowEcho, name: "fast"),
        Route("/upload", .post, upload),
        Route("/where", .get, whereAmI),
    ],
    configuration: .init(maxBodySize: 64 * 1024)
)

@Suite(.serialized) struct HTTPServerTests {
    @Test func servesJSONOverRealSockets() async throws {
        try await withServer(serverTestApp) { port in
            let response = try await HTTPClient.shared.execute(
                HTTPClientRequest(url: "http://127.0.0.1:\(port)/hello/star"), timeout: .seconds(10))
            #expect(response.status == .ok)
            #expect(response.headers.first(name: "content-type") == "application/json")
            let body = try await response.body.collect(upTo: 1 << 20)
            #expect(try JSON.decode(Greeting.self, from: body.readableBytesView).hello == "star")
        }
    }

    @Test(arguments: HandlerExecutor.allCases)
    func handlersRunOnTheConfiguredExecutor(_ executor: HandlerExecutor) async throws {
        var configuration = ServerConfiguration(port: 0, accessLog: false)
        configuration.executor = executor
        try await withServer(serverTestApp, configuration: configuration) { port in
            let response = try await HTTPClient.shared.execute(
                HTTPClientRequest(url: "http://127.0.0.1:\(port)/where"), timeout: .seconds(10))
            let body = try await response.body.collect(upTo: 1024)
            #expect(String(buffer: body) == executor.rawValue)
        }
    }

    @Test func keepAliveServesManyRequestsOnOneConnection() async throws {
        try await withServer(serverTestApp) { port in
            let socket = try RawSocket(port: port)
            for index in 0..<5 {
                try socket.send("GET /hello/\(index) HTTP/1.1\r\nHost: x\r\n\r\n")
                let (text, closed) = await socket.read { $0.contains("}") }
                #expect(!closed)
                #expect(text.hasPrefix("HTTP/1.1 200 OK"))
                #expect(text.contains(#"{"hello":"\#(index)"}"#))
            }
        }
    }

    /// The keep-alive timer is one per connection, re-armed when it fires early: a request that
    /// arrives after the first timer was due still finds the connection open, and an idle one closes.
    @Test func keepAliveTimeoutCountsFromTheLastResponse() async throws {
        var configuration = ServerConfiguration(port: 0, accessLog: false)
        configuration.keepAliveTimeout = .milliseconds(400)
        try await withServer(serverTestApp, configuration: configuration) { port in
            let socket = try RawSocket(port: port)
            for index in 0..<3 {
                if index > 0 { try await Task.sleep(for: .milliseconds(250)) }
                try socket.send("GET /hello/\(index) HTTP/1.1\r\nHost: x\r\n\r\n")
                let (text, closed) = await socket.read { $0.contains("}") }
                #expect(!closed && text.hasPrefix("HTTP/1.1 200 OK"), "request \(index) after 250 ms of quiet")
            }
            let idleSince = ContinuousClock.now
            let (rest, closed) = await socket.read()
            #expect(closed && rest.isEmpty, "an idle connection closes at the keep-alive timeout")
            #expect(ContinuousClock.now - idleSince >= .milliseconds(300))
        }
    }

    @Test func pipelinedRequestsAreAnsweredInOrder() async throws {
        try await withServer(serverTestApp) { port in
            let socket = try RawSocket(port: port)
            try socket.send("GET /slow HTTP/1.1\r\nHost: x\r\n\r\nGET /fast HTTP/1.1\r\nHost: x\r\n\r\nGET /hello/z HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            let (text, closed) = await socket.read()
            #expect(closed, "Connection: close ends the connection after the last response")
            #expect(text.occurrences(of: "HTTP/1.1 200 OK") == 3)
            #expect(text.has("/slow", before: "/fast") && text.has("/fast", before: #"{"hello":"z"}"#), "\(text)")
        }
    }

    /// A client that sends its requests and then closes its sending side (`nc -N`, a script that
    /// shuts down its socket) gets every response, then the connection closes; the server reads on
    /// while it answers, so it sees that EOF before the responses are written.
    @Test func aClientThatHalfClosesStillGetsItsResponses() async throws {
        try await withServer(serverTestApp) { port in
            let one = try RawSocket(port: port)
            try one.send("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
            one.finishSending()
            let (text, closed) = await one.read()
            #expect(text.hasPrefix("HTTP/1.1 200 OK") && text.contains("/slow"), "\(text)")
            #expect(text.lowercased().contains("connection: close"))
            #expect(closed)

            let batch = try RawSocket(port: port)
            try batch.send("GET /slow HTTP/1.1\r\nHost: x\r\n\r\nGET /fast HTTP/1.1\r\nHost: x\r\n\r\n")
            batch.finishSending()
            let (both, batchClosed) = await batch.read()
            #expect(both.occurrences(of: "HTTP/1.1 200 OK") == 2, "\(both)")
            #expect(both.has("/slow", before: "/fast"), "\(both)")
            #expect(batchClosed)
        }
    }

    /// A malformed request behind a pipelined one: the first is answered, then 400, then the close.
    @Test func aMalformedPipelinedRequestIsRefusedAfterTheOneBeforeIt() async throws {
        try await withServer(serverTestApp) { port in
            let socket = try RawSocket(port: port)
            try socket.send("GET /slow HTTP/1.1\r\nHost: x\r\n\r\nGARBAGE / NOT-HTTP\r\n\r\n")
            let (text, closed) = await socket.read()
            #expect(text.has("HTTP/1.1 200 OK", before: "HTTP/1.1 400"), "\(text)")
            #expect(closed)
        }
    }

    @Test func malformedRequestGets400AndOthersAreStillServed() async throws {
        try await withServer(serverTestApp) { port in
            let bad = try RawSocket(port: port)
            try bad.send("GARBAGE / NOT-HTTP\r\n\r\n")
            let (text, closed) = await bad.read()
            #expect(text.hasPrefix("HTTP/1.1 400"))
            #expect(closed)
            let response = try await HTTPClient.shared.execute(
                HTTPClientRequest(url: "http://127.0.0.1:\(port)/hello/after"), timeout: .seconds(10))
            #expect(response.status == .ok)
        }
    }

    @Test func oversizedBodyGets413() async throws {
        try await withServer(serverTestApp) { port in
            var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/upload")
            request.method = .POST
            request.body = .bytes(ByteBuffer(repeating: 0x61, count: 10_000))
            let small = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
            #expect(try await String(buffer: small.body.collect(upTo: 1024)) == "10000")

            let socket = try RawSocket(port: port)
            try socket.send("POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
            let (text, _) = await socket.read { $0.contains("}") }
            #expect(text.hasPrefix("HTTP/1.1 413"))

            let chunked = try RawSocket(port: port)
            try chunked.send("POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
            for _ in 0..<20 { try? chunked.send("1000\r\n" + String(repeating: "b", count: 4096) + "\r\n") }
            let (streamed, _) = await chunked.read { $0.contains("}") }
            #expect(streamed.hasPrefix("HTTP/1.1 413"), "a streamed body is cut off at the limit")
        }
    }

    @Test func headAnswersAGETRouteWithItsHeadAndNoBody() async throws {
        try await withServer(serverTestApp) { port in
            let socket = try RawSocket(port: port)
            try socket.send("GET /hello/star HTTP/1.1\r\nHost: x\r\n\r\n")
            let (get, _) = await socket.read { $0.contains("}") }
            try socket.send("HEAD /hello/star HTTP/1.1\r\nHost: x\r\n\r\nGET /hello/next HTTP/1.1\r\nHost: x\r\n\r\n")
            let (text, _) = await socket.read { $0.contains(#"{"hello":"next"}"#) }
            let head = try #require(text.components(separatedBy: "\r\n\r\n").first)
            #expect(head.hasPrefix("HTTP/1.1 200 OK"))
            #expect(head.contains("content-length: \(#"{"hello":"star"}"#.utf8.count)"), "the GET's length: \(head)")
            #expect(get.contains("content-length: \(#"{"hello":"star"}"#.utf8.count)"))
            #expect(!text.contains(#"{"hello":"star"}"#), "no body after the HEAD's head")
            #expect(text.hasSuffix(#"{"hello":"next"}"#), "the next request on the connection is served")
        }
    }

    @Test func expectContinueIsAnsweredBeforeTheBodyIsSent() async throws {
        try await withServer(serverTestApp) { port in
            let socket = try RawSocket(port: port)
            try socket.send("POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
            let (interim, closed) = await socket.read { $0.contains("\r\n\r\n") }
            #expect(!closed && interim == "HTTP/1.1 100 Continue\r\n\r\n", "the client waits for this before sending the body")
            try socket.send("hello")
            let (final, _) = await socket.read { $0.hasSuffix("\r\n\r\n5") }
            #expect(final.hasPrefix("HTTP/1.1 200 OK") && final.hasSuffix("5"))

            let large = try RawSocket(port: port)
            try large.send("POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\nExpect: 100-continue\r\n\r\n")
            let (refused, _) = await large.read { $0.contains("}") }
            #expect(refused.hasPrefix("HTTP/1.1 413"), "a body over the limit is refused without asking for it")
        }
    }

    @Test func aBodyThatStopsArrivingGets408AndTheConnectionCloses() async throws {
        var configuration = ServerConfiguration(port: 0, accessLog: false)
        // Margins wide enough for a loaded machine (CI runs the suites in parallel): the sleep may
        // overshoot by up to 700 ms before the second part would come after the deadline.
        configuration.requestBodyTimeout = .seconds(1)
        try await withServer(serverTestApp, configuration: configuration) { port in
            let socket = try RawSocket(port: port)
            let started = ContinuousClock.now
            try socket.send("POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
            try await Task.sleep(for: .milliseconds(300))
            try socket.send("def")  // progress: the timeout counts again from here
            let (text, closed) = await socket.read()
            #expect(text.hasPrefix("HTTP/1.1 408") && closed, "\(text)")
            #expect(ContinuousClock.now - started >= .milliseconds(1200), "counted from the last part, not the head")

            let chunked = try RawSocket(port: port)
            try chunked.send("POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n")
            let (cut, cutClosed) = await chunked.read()
            #expect(cut.hasPrefix("HTTP/1.1 408") && cutClosed, "a chunked body that stops too")
            let response = try await HTTPClient.shared.execute(
                HTTPClientRequest(url: "http://127.0.0.1:\(port)/hello/after"), timeout: .seconds(10))
            #expect(response.status == .ok, "other connections are unaffected")
        }
    }

    @Test func twoHundredConnectionsFiftyRequestsEach() async throws {
        // The client's pool leaves some of its 200 connections idle while others work; at the server's
        // keep-alive timeout (5 s) those close, and a request the pool sends on one at that instant
        // fails (HTTP/1.1's keep-alive race, which AsyncHTTPClient does not retry). This test is
        // about load, not that race: the timeout outlasts it.
        var server = ServerConfiguration(port: 0, accessLog: false)
        server.keepAliveTimeout = .seconds(120)
        try await withServer(serverTestApp, configuration: server) { port in
            var configuration = HTTPClient.Configuration()
            configuration.connectionPool = .init(idleTimeout: .seconds(30), concurrentHTTP1ConnectionsPerHostSoftLimit: 200)
            let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
            defer { _ = client.shutdown() }
            let failures = try await withThrowingTaskGroup(of: Int.self) { group in
                for connection in 0..<200 {
                    group.addTask {
                        var failures = 0
                        for request in 0..<50 {
                            let response = try await client.execute(
                                HTTPClientRequest(url: "http://127.0.0.1:\(port)/hello/\(connection)-\(request)"), timeout: .seconds(30))
                            let body = try await response.body.collect(upTo: 1024)
                            let greeting = try JSON.decode(Greeting.self, from: body.readableBytesView)
                            if response.status != .ok || greeting.hello != "\(connection)-\(request)" { failures += 1 }
                        }
                        return failures
                    }
                }
                return try await group.reduce(0, +)
            }
            #expect(failures == 0)
        }
    }
}
