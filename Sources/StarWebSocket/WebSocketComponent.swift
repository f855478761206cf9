public import Star

/// Provides ``WebSocket`` to handlers with the app's options; register it in `App(components:)`.
///
/// ```swift
/// App(routes: routes, components: [WebSocketComponent(maxMessageSize: 1 << 20, allowedOrigins: ["https://example.com"])])
/// ```
public struct WebSocketComponent: ComponentProvider {
    /// The largest message in bytes; `nil` keeps the server's setting (`--ws-max-size`, 16 MiB).
    public var maxMessageSize: Int?
    /// Messages buffered before the server stops reading; `nil` keeps `--ws-max-queue` (32).
    public var maxQueue: Int?
    /// Time between keepalive pings (`.seconds(5)`), or `.disabled`; `nil` keeps the server's
    /// setting (`--ws-ping-interval`, 20 s).
    public var pingInterval: Timer?
    /// Time to wait for a pong before closing with 1011 (`.seconds(5)`), or `.disabled` to wait
    /// forever; `nil` keeps the server's setting (`--ws-ping-timeout`, 20 s).
    public var pingTimeout: Timer?
    /// The `Origin` values allowed to connect; `nil` (the default) allows every origin, as
    /// non-browser clients send none. A handshake from another origin is answered 403 before the handler runs.
    public var allowedOrigins: Set<String>?
    /// Whether to negotiate permessage-deflate when a client offers it; `nil` keeps
    /// `--ws-per-message-deflate` (on). A route can still decide with `connect(compression:)`.
    public var compression: Bool?

    /// Creates the component; every setting left `nil` comes from the server's options.
    public init(
        maxMessageSize: Int? = nil,
        allowedOrigins: Set<String>? = nil,
        maxQueue: Int? = nil,
        pingInterval: Timer? = nil,
        pingTimeout: Timer? = nil,
        compression: Bool? = nil
    ) {
        self.maxMessageSize = maxMessageSize
        self.allowedOrigins = allowedOrigins
        self.maxQueue = maxQueue
        self.pingInterval = pingInterval
        self.pingTimeout = pingTimeout
        self.compression = compression
    }

    /// The server's defaults with this component's settings applied.
    package func options(over defaults: WebSocketOptions) -> WebSocketOptions {
        var options = defaults
        if let maxMessageSize { options.maxMessageSize = maxMessageSize }
        if let maxQueue { options.maxQueue = maxQueue }
        if let pingInterval { options.pingInterval = pingInterval.duration }
        if let pingTimeout { options.pingTimeout = pingTimeout.duration }
        if let compression { options.perMessageDeflate = compression }
        return options
    }

    /// The session of the current request; answers 403 for a disallowed origin and 426 for a
    /// request that is not a WebSocket handshake.
    public func resolve(in context: RequestContext) throws -> WebSocket {
        guard let handshake = context.webSocket else {
            throw HTTPError(.upgradeRequired, detail: "This is a WebSocket endpoint", headers: [.upgrade: "websocket"])
        }
        if let allowedOrigins {
            let origin = context.request.headers[.origin] ?? ""
            guard allowedOrigins.contains(origin) else {
                throw HTTPError(.forbidden, detail: "Origin not allowed")
            }
        }
        return WebSocket(handshake: handshake, request: context.request,
                         options: options(over: handshake.transport.defaultOptions))
    }
}

extension WebSocketComponent {
    /// A keepalive setting of the component: a positive duration, or ``disabled``. (Where the
    /// component has no setting, the property is `nil`: the server's setting applies.)
    ///
    /// ```swift
    /// WebSocketComponent(pingInterval: .seconds(5), pingTimeout: .disabled)
    /// ```
    public struct Timer: Sendable, Hashable {
        /// The duration, or `nil` when disabled: the value of the matching `WebSocketOptions` field.
        public let duration: Duration?

        private init(duration: Duration?) { self.duration = duration }

        /// No pings (``WebSocketComponent/pingInterval``), or no limit on waiting for the pong
        /// (``WebSocketComponent/pingTimeout``).
        public static let disabled = Timer(duration: nil)

        /// After `duration`, which must be positive (to turn the timer off, use ``disabled``).
        public static func after(_ duration: Duration) -> Timer {
            precondition(duration > .zero, "a WebSocket timer must be positive (use .disabled to turn it off), not \(duration)")
            return Timer(duration: duration)
        }

        /// After `seconds` seconds (positive).
        public static func seconds(_ seconds: some BinaryInteger) -> Timer { after(.seconds(seconds)) }

        /// After `seconds` seconds (positive).
        public static func seconds(_ seconds: Double) -> Timer { after(.seconds(seconds)) }

        /// After `milliseconds` milliseconds (positive).
        public static func milliseconds(_ milliseconds: some BinaryInteger) -> Timer { after(.milliseconds(milliseconds)) }
    }
}

/// Connects every WebSocket route before its handler runs — the seed's `WebSocketAutoHook`.
///
/// Closing after the handler is always on (1000 on return, 1011 on a throw); this hook only
/// adds the automatic `connect()`. It never raises to suppress a response: Star sends none
/// after an accepted handshake.
public struct WebSocketAutoHook: EventHook {
    /// Creates the hook.
    public init() {}

    public func onRequest(_ context: RequestContext) async throws -> Response? {
        guard context.route.isWebSocket, context.webSocket != nil else { return nil }
        let socket = try await context.resolve(WebSocket.self)
        if socket.state == .connecting { try await socket.connect() }
        return nil
    }
}
