public import ArgumentParser
import Foundation
public import Logging
import Star

/// The command-line options of `app.main()`, named after Uvicorn's. Each can also come from an
/// environment variable `STAR_<NAME>` (`--ws-max-size` ← `STAR_WS_MAX_SIZE`); the command line wins.
public struct ServerOptions: ParsableArguments {
    @Option(help: "Bind to this address.")
    public var host: String = "127.0.0.1"

    @Option(help: "Bind to this port (0 picks a free one).")
    public var port: Int = 8000

    @Option(help: "Bind to this Unix domain socket instead of host and port.")
    public var uds: String?

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical (any case).",
            transform: { text in
                guard let level = Logger.Level(rawValue: text.lowercased()) else {
                    throw ValidationError("'\(text)' is not a log level: use trace, debug, info, notice, warning, error or critical")
                }
                return level
            })
    public var logLevel: Logger.Level = .info

    @Flag(inversion: .prefixedNo, help: "Log one line per request and per WebSocket session.")
    public var accessLog: Bool = true

    @Flag(help: "Rebuild (swift build) and restart when the sources change.")
    public var reload: Bool = false

    @Option(help: "Directory to watch with --reload (repeatable; default: Sources).")
    public var reloadDir: [String] = []

    @Option(help: "Largest WebSocket message in bytes (default 16 MiB).")
    public var wsMaxSize: Int = 16 * 1024 * 1024

    @Option(help: "Received WebSocket messages buffered before the server stops reading.")
    public var wsMaxQueue: Int = 32

    @Option(help: "Seconds between keepalive pings (0 disables).")
    public var wsPingInterval: Double = 20

    @Option(help: "Seconds to wait for a pong before closing with 1011 (0 disables: wait forever).")
    public var wsPingTimeout: Double = 20

    @Option(help: "Negotiate permessage-deflate: true or false.")
    public var wsPerMessageDeflate: Bool = true

    @Option(help: "Seconds an idle keep-alive connection stays open.")
    public var timeoutKeepAlive: Double = 5

    @Option(help: "Seconds a request body may go without a byte arriving before 408 and close (0 disables).")
    public var timeoutRequestBody: Double = 30

    @Option(help: "Seconds to wait for handlers after SIGTERM/SIGINT before cancelling them.")
    public var timeoutGracefulShutdown: Double = 10

    @Option(help: "Most connections served at once; past it, 503.")
    public var limitConcurrency: Int?

    @Option(help: "The listen backlog.")
    public var backlog: Int = 2048

    @Option(help: "PEM certificate file: serve https and wss.")
    public var sslCertfile: String?

    @Option(help: "PEM private key file.")
    public var sslKeyfile: String?

    @Option(help: "Password of the private key file.")
    public var sslKeyfilePassword: String?

    @Option(help: "PEM CA certificates; clients must present a certificate they signed.")
    public var sslCaCerts: String?

    @Flag(inversion: .prefixedNo, help: "Serve HTTP/2: by ALPN over TLS, by prior knowledge on cleartext.")
    public var http2: Bool = true

    @Option(help: "HTTP/2: most streams open at once per connection.")
    public var http2MaxConcurrentStreams: Int = 100

    @Option(help: "HTTP/2: each stream's receive window in bytes.")
    public var http2InitialWindowSize: Int = 65_535

    @Option(help: "HTTP/2: largest decompressed header block a client may send, in bytes.")
    public var http2MaxHeaderListSize: Int = 16_384

    @Flag(inversion: .prefixedNo, help: "Trust X-Forwarded-* and Forwarded headers from --forwarded-allow-ips.")
    public var proxyHeaders: Bool = true

    @Option(help: "Comma-separated addresses whose proxy headers are trusted, or '*'.")
    public var forwardedAllowIps: String = "127.0.0.1"

    @Option(help: "The path prefix the app is mounted under behind a proxy.")
    public var rootPath: String = ""

    @Option(help: "Event-loop threads (default: the CPUs this process may use).")
    public var threads: Int?

    @Option(help: "Where handlers run: event-loop (the connection's own loop; fastest) or global (Swift's concurrent pool).",
            transform: { text in
                guard let executor = HandlerExecutor(rawValue: text.lowercased()) else {
                    throw ValidationError("'\(text)' is not an executor: use event-loop or global")
                }
                return executor
            })
    public var executor: HandlerExecutor = .eventLoop

    @Option(help: "Where BroadcastComponent() publishes: memory:// (the default) or postgres://user:password@host:port/database (sets the app's configuration.broadcastURL).")
    public var broadcastUrl: String?

    public init() {}

    public mutating func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be between 0 and 65535, not \(port)") }
        guard (1...(1 << 30)).contains(wsMaxSize) else { throw ValidationError("--ws-max-size must be between 1 and 1 GiB") }
        guard wsMaxQueue > 0 else { throw ValidationError("--ws-max-queue must be positive") }
        for (name, value) in [("--ws-ping-interval", wsPingInterval), ("--ws-ping-timeout", wsPingTimeout),
                              ("--timeout-keep-alive", timeoutKeepAlive), ("--timeout-graceful-shutdown", timeoutGracefulShutdown),
                              ("--timeout-request-body", timeoutRequestBody)]
        where !(value >= 0 && value <= 1_000_000) {
            throw ValidationError("\(name) must be a number of seconds between 0 and 1000000")
        }
        if let limitConcurrency, limitConcurrency < 1 { throw ValidationError("--limit-concurrency must be at least 1") }
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
        guard backlog > 0 else { throw ValidationError("--backlog must be positive") }
        guard (1...(1 << 31 - 1)).contains(http2MaxConcurrentStreams) else {
            throw ValidationError("--http2-max-concurrent-streams must be between 1 and 2147483647")
        }
        // RFC 9113 §6.5.2: the largest window is 2^31-1.
        guard (1...(1 << 31 - 1)).contains(http2InitialWindowSize) else {
            throw ValidationError("--http2-initial-window-size must be between 1 and 2147483647")
        }
        guard (1024...(1 << 24)).contains(http2MaxHeaderListSize) else {
            throw ValidationError("--http2-max-header-list-size must be between 1024 and 16777216")
        }
        if (sslCertfile == nil) != (sslKeyfile == nil) {
            throw ValidationError("--ssl-certfile and --ssl-keyfile go together")
        }
        if sslCertfile != nil, !ServerTLS.isAvailable { throw ValidationError("--ssl-certfile: \(ServerError.tlsHint)") }
        for file in [sslCertfile, sslKeyfile, sslCaCerts].compactMap({ $0 }) where !FileManager.default.fileExists(atPath: file) {
            throw ValidationError("no such file: \(file)")
        }
    }

    /// The server configuration these options describe.
    public var configuration: ServerConfiguration {
        var configuration = ServerConfiguration()
        configuration.host = host
        configuration.port = port
        configuration.unixSocket = uds
        configuration.logLevel = logLevel
        configuration.accessLog = accessLog
        configuration.webSocket.maxMessageSize = wsMaxSize
        configuration.webSocket.maxQueue = wsMaxQueue
        configuration.webSocket.pingInterval = wsPingInterval > 0 ? .milliseconds(Int64(wsPingInterval * 1000)) : nil
        configuration.webSocket.pingTimeout = wsPingTimeout > 0 ? .milliseconds(Int64(wsPingTimeout * 1000)) : nil
        configuration.webSocket.perMessageDeflate = wsPerMessageDeflate
        configuration.keepAliveTimeout = .milliseconds(Int64(timeoutKeepAlive * 1000))
        configuration.requestBodyTimeout = timeoutRequestBody > 0 ? .milliseconds(Int64(timeoutRequestBody * 1000)) : nil
        configuration.gracefulShutdownTimeout = .milliseconds(Int64(timeoutGracefulShutdown * 1000))
        configuration.concurrencyLimit = limitConcurrency
        configuration.backlog = backlog
        if let sslCertfile, let sslKeyfile {
            configuration.tls = TLSSettings(certificateFile: sslCertfile, keyFile: sslKeyfile,
                                            keyPassword: sslKeyfilePassword, caFile: sslCaCerts)
        }
        configuration.http2.enabled = http2
        configuration.http2.maxConcurrentStreams = http2MaxConcurrentStreams
        configuration.http2.initialWindowSize = http2InitialWindowSize
        configuration.http2.maxHeaderListSize = http2MaxHeaderListSize
        configuration.proxyHeaders = proxyHeaders
        configuration.forwardedAllowIPs = forwardedAllowIps.split(separator: ",").map { String($0.trimmingCharacters(in: .whitespaces)) }
        configuration.rootPath = rootPath.hasSuffix("/") ? String(rootPath.dropLast()) : rootPath
        configuration.threads = threads
        configuration.executor = executor
        return configuration
    }

    /// The options that can come from the environment, as `(variable, option, isFlag)`.
    static let environmentOptions: [(String, String, Bool)] = [
        "host", "port", "uds", "log-level", "reload-dir", "ws-max-size", "ws-max-queue", "ws-ping-interval",
        "ws-ping-timeout", "ws-per-message-deflate", "timeout-keep-alive", "timeout-graceful-shutdown",
        "timeout-request-body", "http2-max-concurrent-streams", "http2-initial-window-size",
        "http2-max-header-list-size", "limit-concurrency", "backlog", "ssl-certfile", "ssl-keyfile", "ssl-keyfile-password", "ssl-ca-certs",
        "forwarded-allow-ips", "root-path", "threads", "executor", "broadcast-url",
    ].map { ("STAR_" + $0.uppercased().replacingOccurrences(of: "-", with: "_"), $0, false) }
        + ["access-log", "reload", "proxy-headers", "http2"].map { ("STAR_" + $0.uppercased().replacingOccurrences(of: "-", with: "_"), $0, true) }

    /// The command line with `STAR_*` variables added for options it does not give.
    static func arguments(_ arguments: [String], environment: [String: String]) -> [String] {
        var result = arguments
        for (variable, option, isFlag) in environmentOptions {
            guard let value = environment[variable] else { continue }
            let given = arguments.contains { $0 == "--\(option)" || $0 == "--no-\(option)" || $0.hasPrefix("--\(option)=") }
            guard !given else { continue }
            if isFlag {
                let on = ["1", "true", "yes", "on"].contains(value.lowercased())
                if option == "reload" { if on { result.append("--reload") } } else { result.append(on ? "--\(option)" : "--no-\(option)") }
            } else {
                result += ["--\(option)", value]
            }
        }
        return result
    }

    /// Parses the command line and environment; on a bad value prints a one-line error and exits
    /// with status 2 (with `--help`, prints the help and exits 0).
    package static func parseOrExit2(_ arguments: [String], environment: [String: String]? = nil) -> ServerOptions {
        do {
            return try parse(Self.arguments(arguments, environment: environment ?? ProcessInfo.processInfo.environment))
        } catch {
            if exitCode(for: error) == .success {
                print(fullMessage(for: error))
                Foundation.exit(0)
            }
            FileHandle.standardError.write(Data("error: \(message(for: error))\n".utf8))
            Foundation.exit(2)
        }
    }
}

