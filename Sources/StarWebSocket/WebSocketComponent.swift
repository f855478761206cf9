public import Star

/// Provides ``WebSocket`` to handlers with the app's options; register it in `App(components:)`.
///
/// ```swift
/// App(routes: routes, components: [WebSocketComponent(maxMessageSize: 1 << 20, allowedOrigins: ["https://example.com"])])
/// ```
public struct WebSocketComponent: ComponentProvider {
    /// The options every session of the app runs with.
    public var options: WebSocketOptions
    /// The `Origin` values allowed to connect; `nil` (the default) allows every origin, as
    /// non-browser clients send none. A handshake from another origin is answered 403 before the handler runs.
    public var allowedOrigins: Set<String>?

    /// Creates the component.
    public init(
        maxMessageSize: Int = 16 * 1024 * 1024,
        allowedOrigins: Set<String>? = nil,
        maxQueue: Int = 32,
        pingInterval: Duration? = .seconds(20),
        pingTimeout: Duration? = .seconds(20)
    ) {
        self.options = WebSocketOptions(
            maxMessageSize: maxMessageSize, maxQueue: maxQueue, pingInterval: pingInterval, pingTimeout: pingTimeout)
        self.allowedOrigins = allowedOrigins
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
        return WebSocket(handshake: handshake, request: context.request, options: options)
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
