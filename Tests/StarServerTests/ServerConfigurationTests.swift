import Logging
import ServiceLifecycle
import Star
import StarServer
import Synchronization
import Testing

/// `Server` honours its configuration by itself, as a user's own `ServiceGroup` runs it: no
/// `maximumGracefulShutdownDuration`, no signals, no `app.main()`.
@Suite struct ServerConfigurationTests {
    /// The server as a service that reports its port.
    struct ReportingServer: Service {
        let server: Server
        let ports: AsyncStream<Int>.Continuation
        func run() async throws {
            try await server.run { address in
                ports.yield(address.port ?? 0)
                ports.finish()
            }
        }
    }

    /// What a handler saw.
    final class Events: Sendable {
        private let lines = Mutex<[String]>([])
        private let stream = AsyncStream<String>.makeStream()
        func add(_ line: String) {
            lines.withLock { $0.append(line) }
            stream.continuation.yield(line)
        }
        var all: [String] { lines.withLock { $0 } }
        /// Waits until `line` is added.
        func wait(for line: String) async { for await added in stream.stream where added == line { return } }
    }

    /// Serves `app` in a `ServiceGroup` with only the server, sends `request` on a raw socket once it
    /// listens, waits for `event`, then triggers graceful shutdown; returns how long the group took to
    /// end and what the socket read.
    func shutDown(_ app: App, configuration: ServerConfiguration, during request: String, after event: String,
                  events: Events) async throws -> (seconds: Double, text: String) {
        let (ports, continuation) = AsyncStream<Int>.makeStream()
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(
            services: [.init(service: ReportingServer(server: Server(app: app, configuration: configuration), ports: continuation))],
            logger: Logger(label: "test")))
        return try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            guard let port = await ports.first(where: { _ in true }) else { throw RawSocketError("server did not start") }
            let socket = try RawSocket(port: port, timeoutSeconds: 10)
            try socket.send(request)
            await events.wait(for: event)
            let start = ContinuousClock.now
            await group.triggerGracefulShutdown()
            async let read = socket.read()
            try await tasks.next()
            let seconds = Double((ContinuousClock.now - start) / .milliseconds(1)) / 1000
            return (seconds, await read.text)
        }
    }

    @Test func gracefulShutdownTimeoutCancelsAHandlerThatRunsLonger() async throws {
        let events = Events()
        @Sendable @concurrent func slow() async throws -> String {
            events.add("started")
            do {
                try await Task.sleep(for: .seconds(30))
            } catch {
                events.add("cancelled")
                throw error
            }
            return "done"
        }
        var configuration = ServerConfiguration(port: 0, accessLog: false)
        configuration.gracefulShutdownTimeout = .milliseconds(300)
        let (seconds, _) = try await shutDown(App(routes: [Route("/slow", .get, slow)]), configuration: configuration,
                                              during: "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n", after: "started", events: events)
        #expect(seconds >= 0.25, "the handler had its graceful-shutdown time")
        #expect(seconds < 5, "the server stopped waiting at gracefulShutdownTimeout, not when the handler would end")
        #expect(events.all == ["started", "cancelled"])
    }

    @Test func gracefulShutdownLetsAShorterHandlerFinish() async throws {
        let events = Events()
        @Sendable @concurrent func brief() async throws -> String {
            events.add("started")
            try await Task.sleep(for: .milliseconds(200))
            return "finished"
        }
        var configuration = ServerConfiguration(port: 0, accessLog: false)
        configuration.gracefulShutdownTimeout = .seconds(10)
        let (seconds, text) = try await shutDown(App(routes: [Route("/brief", .get, brief)]), configuration: configuration,
                                                 during: "GET /brief HTTP/1.1\r\nHost: x\r\n\r\n", after: "started", events: events)
        #expect(text.hasPrefix("HTTP/1.1 200 OK") && text.hasSuffix("finished"))
        #expect(seconds < 5, "shutdown ended when the handler did, well before the timeout")
    }

    @Test func logLevelIsSetOnTheAppWhenTheServerStarts() async throws {
        var quiet = Logger(label: "test")
        quiet.logLevel = .critical
        @Sendable @concurrent func ok() async -> String { "ok" }
        let app = App(routes: [Route("/", .get, ok)], logger: quiet)
        try await withServer(app) { _ in
            #expect(app.logger.logLevel == .critical, "nil keeps the level of the app's own logger")
        }
        var configuration = ServerConfiguration(port: 0, accessLog: false)
        configuration.logLevel = .debug
        try await withServer(app, configuration: configuration) { _ in
            #expect(app.logger.logLevel == .debug)
        }
    }
}
