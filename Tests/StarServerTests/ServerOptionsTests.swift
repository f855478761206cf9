import ArgumentParser
import HTTPTypes
import Star
@testable import StarServer
import Testing

@Suite struct ServerOptionsTests {
    @Test func defaultsAreUvicorns() throws {
        let configuration = try ServerOptions.parse([]).configuration
        #expect(configuration.host == "127.0.0.1" && configuration.port == 8000)
        #expect(configuration.webSocket.maxMessageSize == 16 * 1024 * 1024)
        #expect(configuration.webSocket.pingInterval == .seconds(20) && configuration.webSocket.pingTimeout == .seconds(20))
        #expect(configuration.keepAliveTimeout == .seconds(5))
        #expect(configuration.concurrencyLimit == nil && configuration.tls == nil && configuration.proxyHeaders)
        #expect(configuration.executor == .eventLoop)
        #expect(configuration.logLevel == .info, "app.main() always sets a level: info unless told")
    }

    @Test func optionsMapToTheConfiguration() throws {
        let configuration = try ServerOptions.parse([
            "--host", "0.0.0.0", "--port", "9000", "--log-level", "DEBUG", "--no-access-log", "--ws-max-size", "1024",
            "--ws-max-queue", "4", "--ws-ping-interval", "0", "--ws-ping-timeout", "1.5", "--timeout-keep-alive", "2",
            "--limit-concurrency", "10", "--backlog", "64", "--forwarded-allow-ips", "10.0.0.1, 10.0.0.2",
            "--root-path", "/api/", "--threads", "3", "--ws-per-message-deflate", "false", "--executor", "Global",
        ]).configuration
        #expect(configuration.host == "0.0.0.0" && configuration.port == 9000)
        #expect(configuration.logLevel == .debug && !configuration.accessLog)
        #expect(configuration.webSocket.maxMessageSize == 1024 && configuration.webSocket.maxQueue == 4)
        #expect(configuration.webSocket.pingInterval == nil, "0 disables pings")
        #expect(configuration.webSocket.pingTimeout == .milliseconds(1500))
        #expect(!configuration.webSocket.perMessageDeflate)
        #expect(configuration.keepAliveTimeout == .seconds(2) && configuration.concurrencyLimit == 10)
        #expect(configuration.backlog == 64 && configuration.threads == 3)
        #expect(configuration.forwardedAllowIPs == ["10.0.0.1", "10.0.0.2"])
        #expect(configuration.rootPath == "/api")
        #expect(configuration.executor == .global)
    }

    @Test(arguments: [["--port", "abc"], ["--port", "70000"], ["--log-level", "LOUD"], ["--ws-max-size", "0"],
                      ["--ssl-certfile", "/nonexistent.pem"], ["--threads", "0"], ["--timeout-keep-alive", "-1"],
                      ["--executor", "main"]])
    func badValuesAreRejected(_ arguments: [String]) {
        #expect(throws: (any Error).self) { try ServerOptions.parse(arguments) }
    }

    #if !TLS
    /// TLS is Star's `TLS` trait: without it, asking for TLS is refused, on the command line and
    /// in a configuration, with the way to turn it on; never served as plain HTTP.
    @Test func tlsWithoutItsTraitIsRefusedWithTheFix() async throws {
        let existing = #filePath
        do {
            _ = try ServerOptions.parse(["--ssl-certfile", existing, "--ssl-keyfile", existing])
            Issue.record("--ssl-certfile was accepted by a build without the TLS trait")
        } catch {
            #expect(ServerOptions.message(for: error).contains(#"traits: ["TLS"]"#))
        }
        @Sendable @concurrent func ok() async -> String { "ok" }
        var configuration = ServerConfiguration(port: 0)
        configuration.tls = TLSSettings(certificateFile: existing, keyFile: existing)
        let server = Server(app: App(routes: [Route("/", .get, ok)]), configuration: configuration)
        let error = await #expect(throws: ServerError.self) { try await server.run(onListening: { _ in }) }
        #expect(error?.kind == .tlsUnavailable)
        #expect(error?.description.contains(#"traits: ["TLS"]"#) == true)
    }
    #endif

    @Test func broadcastURLReachesTheAppsConfiguration() throws {
        @Sendable @concurrent func ok() async -> String { "ok" }
        let app = App(routes: [Route("/", .get, ok)], configuration: .init(broadcastURL: "memory://"))
        app.adopt(try ServerOptions.parse([]))
        #expect(app.configuration.broadcastURL == "memory://", "no option keeps the app's own URL")
        app.adopt(try ServerOptions.parse(["--broadcast-url", "postgres://star@db/chat", "--log-level", "error"]))
        #expect(app.configuration.broadcastURL == "postgres://star@db/chat")
        #expect(app.logger.logLevel == .error)

        let environment = ["STAR_BROADCAST_URL": "postgres://star@env/chat"]
        let fromEnvironment = App(routes: [Route("/", .get, ok)])
        fromEnvironment.adopt(try ServerOptions.parse(ServerOptions.arguments([], environment: environment)))
        #expect(fromEnvironment.configuration.broadcastURL == "postgres://star@env/chat")
    }

    @Test func environmentFillsWhatTheCommandLineDoesNotGive() throws {
        let environment = ["STAR_PORT": "9100", "STAR_HOST": "0.0.0.0", "STAR_ACCESS_LOG": "false",
                           "STAR_WS_MAX_SIZE": "2048", "STAR_UNRELATED": "x"]
        let merged = ServerOptions.arguments(["--port", "9200"], environment: environment)
        let configuration = try ServerOptions.parse(merged).configuration
        #expect(configuration.port == 9200, "the command line wins")
        #expect(configuration.host == "0.0.0.0")
        #expect(!configuration.accessLog)
        #expect(configuration.webSocket.maxMessageSize == 2048)
    }
}

@Suite struct ForwardedHeadersTests {
    func request(_ fields: HTTPFields) -> HTTPRequest {
        HTTPRequest(method: .get, scheme: nil, authority: "x", path: "/", headerFields: fields)
    }

    /// What the connection handler does: decide trust once for the peer, then apply per request.
    func forward(_ request: HTTPRequest, from client: String, scheme: String, _ configuration: ServerConfiguration)
        -> (request: HTTPRequest, clientAddress: String?)
    {
        ForwardedHeaders.apply(to: request, clientAddress: client, scheme: scheme,
                               trusted: ForwardedHeaders.trusts(client, configuration: configuration))
    }

    @Test func trustedProxyHeadersAreHonoured() {
        let configuration = ServerConfiguration()
        let xff = forward(request([HTTPField.Name("X-Forwarded-For")!: "198.51.100.9, 203.0.113.7", HTTPField.Name("X-Forwarded-Proto")!: "https"]), from: "127.0.0.1:5000", scheme: "http", configuration)
        #expect(xff.clientAddress == "203.0.113.7" && xff.request.scheme == "https")
        let forwarded = forward(request([HTTPField.Name("Forwarded")!: "for=\"198.51.100.2\";proto=https"]), from: "127.0.0.1:5000", scheme: "http", configuration)
        #expect(forwarded.clientAddress == "198.51.100.2" && forwarded.request.scheme == "https")
    }

    @Test func untrustedPeersAndDisabledProxyHeadersAreIgnored() {
        var configuration = ServerConfiguration()
        let fields: HTTPFields = [HTTPField.Name("X-Forwarded-For")!: "203.0.113.7"]
        let untrusted = forward(request(fields), from: "192.0.2.1:5000", scheme: "http", configuration)
        #expect(untrusted.clientAddress == "192.0.2.1:5000")
        configuration.proxyHeaders = false
        let disabled = forward(request(fields), from: "127.0.0.1:5000", scheme: "https", configuration)
        #expect(disabled.clientAddress == "127.0.0.1:5000" && disabled.request.scheme == "https")
    }

    /// A peer is trusted by its host, whatever its port: IPv4, IPv6 as NIO describes it ("::1:port"),
    /// bracketed IPv6, a Unix socket's path, and `*`.
    @Test func peersAreMatchedByTheirHost() {
        func trusts(_ peer: String, _ allowed: [String]) -> Bool {
            var configuration = ServerConfiguration()
            configuration.forwardedAllowIPs = allowed
            return ForwardedHeaders.trusts(peer, configuration: configuration)
        }
        #expect(trusts("10.0.0.1:443", ["10.0.0.2", "10.0.0.1"]))
        #expect(!trusts("10.0.0.10:443", ["10.0.0.1"]))
        #expect(!trusts("10.0.0.1", ["10.0.0"]))
        #expect(trusts("::1:8080", ["::1"]))
        #expect(!trusts("::1:8080", ["1"]))
        #expect(trusts("[2001:db8::1]:8080", ["2001:db8::1"]))
        #expect(trusts("/run/star.sock", ["/run/star.sock"]))
        #expect(trusts("192.0.2.1:5000", ["*"]))
        #expect(!trusts("192.0.2.1:5000", []))
    }
}
