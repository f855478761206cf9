public import CoreMetrics
public import Logging
public import Star

/// How the server listens and behaves — every option of `app.main()`, for programmatic use.
public struct ServerConfiguration: Sendable {
    /// The address to bind (default `127.0.0.1`).
    public var host: String = "127.0.0.1"
    /// The port to bind (default `8000`; `0` picks a free port).
    public var port: Int = 8000
    /// A Unix domain socket path to bind instead of host and port.
    public var unixSocket: String?
    /// The level of the app's log lines, the access log included, set on the app's logger when the
    /// server starts; `nil` (the default) keeps the level of the logger given to `App(logger:)`
    /// (`app.main()` always sets one: `--log-level`, `info` by default).
    public var logLevel: Logger.Level?
    /// Whether to log one line per request and per WebSocket session.
    public var accessLog: Bool = true
    /// The defaults for every WebSocket session; a `WebSocketComponent`'s own settings win.
    public var webSocket = WebSocketOptions()
    /// How long an idle keep-alive connection stays open between requests.
    public var keepAliveTimeout: Duration = .seconds(5)
    /// How long a new connection may take to send a complete request head (defeats slow-loris clients).
    public var headerReadTimeout: Duration = .seconds(10)
    /// How long a request body may go without a byte arriving: past it the server answers 408 and
    /// closes the connection, so a client that stops mid-body never holds a connection (or a
    /// ``concurrencyLimit`` slot) for good. `nil` waits forever.
    public var requestBodyTimeout: Duration? = .seconds(30)
    /// How long handlers may run once graceful shutdown begins (SIGTERM/SIGINT under `app.main()`,
    /// or the `ServiceGroup`'s graceful shutdown) before the server cancels them.
    public var gracefulShutdownTimeout: Duration = .seconds(10)
    /// The most connections served at once; past it requests and handshakes get 503. `nil`: no limit.
    public var concurrencyLimit: Int?
    /// The listen backlog.
    public var backlog: Int = 2048
    /// TLS settings; `nil` serves plain HTTP and WebSockets.
    public var tls: TLSSettings?
    /// HTTP/2: on by default, chosen by ALPN over TLS and by the connection preface on cleartext
    /// (prior knowledge, as `curl --http2-prior-knowledge`); HTTP/1.1 clients are served as before.
    public var http2 = HTTP2Options()
    /// Whether to trust `X-Forwarded-For`/`X-Forwarded-Proto`/`Forwarded` from ``forwardedAllowIPs``.
    public var proxyHeaders: Bool = true
    /// The peer addresses whose proxy headers are trusted (`"*"` trusts every peer).
    public var forwardedAllowIPs: [String] = ["127.0.0.1"]
    /// The path prefix under which a proxy mounts the app; stripped from request paths and
    /// available as `Request.rootPath`.
    public var rootPath: String = ""
    /// Event-loop threads; `nil` uses the CPUs this process may run on (affinity and cgroup quota).
    /// Unused when the server is given an event-loop group (`Server(app:configuration:eventLoopGroup:)`).
    public var threads: Int?
    /// Where connection tasks — hooks, handlers, WebSocket sessions — run (default: the
    /// connection's own event loop).
    public var executor: HandlerExecutor = .eventLoop
    /// Where the server's metrics go; by default the factory bootstrapped in `MetricsSystem`.
    public var metricsFactory: any MetricsFactory = MetricsSystem.factory

    /// Creates a configuration with Uvicorn's defaults.
    public init() {}

    /// Creates a configuration for a host and port, the rest at defaults.
    public init(host: String = "127.0.0.1", port: Int = 8000, logLevel: Logger.Level? = nil, accessLog: Bool = true) {
        self.host = host
        self.port = port
        self.logLevel = logLevel
        self.accessLog = accessLog
    }
}

/// Where the server runs each connection's task, and so every hook and handler of its requests.
public enum HandlerExecutor: String, Sendable, CaseIterable {
    /// The event loop that owns the connection: a request never changes threads between its
    /// bytes arriving and its response leaving (the fastest: ~60 % more requests per second
    /// than `.global` on the benchmark). A handler that blocks its thread (synchronous I/O, a
    /// long computation) stalls the other connections of that loop: move such work off it,
    /// for example with `withTaskExecutorPreference(globalConcurrentExecutor) { … }`.
    case eventLoop = "event-loop"
    /// Swift's global concurrent executor: each request hops from the event loop to the
    /// cooperative pool and back, and a blocking handler only holds a pool thread.
    case global
}

/// How the server speaks HTTP/2 (``ServerConfiguration/http2``).
///
/// Every stream is answered by the same `App.respond` as an HTTP/1.1 request; WebSocket routes are
/// also served over HTTP/2 streams (RFC 8441), and the server advertises that only when the app
/// has one. swift-nio-http2's own protections against rapid reset, CONTINUATION and control-frame
/// floods stay on (docs/security.md says which limit does what).
public struct HTTP2Options: Sendable, Equatable {
    /// Whether to serve HTTP/2 at all (`--no-http2` turns it off).
    public var enabled: Bool = true
    /// The most streams a client may have open at once on one connection (SETTINGS_MAX_CONCURRENT_STREAMS).
    public var maxConcurrentStreams: Int = 100
    /// Each stream's receive window in bytes (SETTINGS_INITIAL_WINDOW_SIZE): how much of a request
    /// body, or of a WebSocket's incoming data, a client may send before the app reads it.
    public var initialWindowSize: Int = 65_535
    /// The largest header block a client may send, decompressed (SETTINGS_MAX_HEADER_LIST_SIZE):
    /// what stops an HPACK bomb.
    public var maxHeaderListSize: Int = 16_384

    /// Creates the defaults: on, 100 streams, a 64 KiB window, 16 KiB of headers.
    public init() {}
}

/// Certificate and key files for https and wss.
public struct TLSSettings: Sendable, Equatable {
    /// The PEM certificate (chain) file.
    public var certificateFile: String
    /// The PEM private key file.
    public var keyFile: String
    /// The password of an encrypted key file.
    public var keyPassword: String?
    /// A PEM file of CA certificates; when set, clients must present a certificate it signed.
    public var caFile: String?

    /// Creates TLS settings.
    public init(certificateFile: String, keyFile: String, keyPassword: String? = nil, caFile: String? = nil) {
        self.certificateFile = certificateFile
        self.keyFile = keyFile
        self.keyPassword = keyPassword
        self.caFile = caFile
    }
}

extension ServerConfiguration {
    /// The effective settings on one line, for the server's `info` log at start:
    /// `threads=2 executor=event-loop access-log=on ws-max-size=16777216 …`.
    func summary(threads: String) -> String {
        func seconds(_ duration: Duration?) -> String {
            guard let duration else { return "off" }
            let (whole, atto) = duration.components
            return atto == 0 ? "\(whole)s" : "\(duration.nanoseconds / 1_000_000)ms"
        }
        var parts = [
            "threads=\(threads)", "executor=\(executor.rawValue)", "access-log=\(accessLog ? "on" : "off")",
            "tls=\(tls == nil ? "off" : "on")",
            "http2=\(http2.enabled ? "on streams=\(http2.maxConcurrentStreams) window=\(http2.initialWindowSize)" : "off")",
            "limit-concurrency=\(concurrencyLimit.map(String.init) ?? "none")",
            "backlog=\(backlog)", "timeout-keep-alive=\(seconds(keepAliveTimeout))",
            "timeout-request-body=\(seconds(requestBodyTimeout))",
            "timeout-graceful-shutdown=\(seconds(gracefulShutdownTimeout))",
            "proxy-headers=\(proxyHeaders ? forwardedAllowIPs.joined(separator: ",") : "off")",
            "ws-max-size=\(webSocket.maxMessageSize)", "ws-max-queue=\(webSocket.maxQueue)",
            "ws-ping-interval=\(seconds(webSocket.pingInterval))", "ws-ping-timeout=\(seconds(webSocket.pingTimeout))",
            "ws-per-message-deflate=\(webSocket.perMessageDeflate)",
        ]
        if !rootPath.isEmpty { parts.append("root-path=\(rootPath)") }
        return parts.joined(separator: " ")
    }
}
