public import Logging
import Synchronization

/// Everything known about one request while it is handled: the request, the matched route,
/// and the components resolved so far.
///
/// Hooks, components and handlers of one request share one context, so each component is
/// resolved at most once per request and all of them see the same value.
public final class RequestContext: Sendable {
    /// The app handling the request.
    public let app: App
    /// The request.
    public let request: Request
    /// The matched route.
    public let route: Route
    /// The path parameters, percent-decoded.
    public let pathParameters: [String: String]
    /// A logger with `request-id` and `route` metadata (made on each use: most requests never log).
    public var logger: Logger {
        var logger = app.logger
        logger[metadataKey: "request-id"] = "\(requestID)"
        logger[metadataKey: "route"] = "\(route.name)"
        return logger
    }
    /// A short id for this request, also in every log line about it.
    public let requestID: String
    /// The WebSocket session, when the request is a WebSocket handshake the transport can accept.
    package let webSocket: WebSocketHandshake?

    private let cache = Mutex<[ObjectIdentifier: any Sendable]>([:])

    init(app: App, request: Request, route: Route, pathParameters: [String: String], requestID: String,
         webSocket: WebSocketHandshake?) {
        self.app = app
        self.request = request
        self.route = route
        self.pathParameters = pathParameters
        self.requestID = requestID
        self.webSocket = webSocket
    }

    /// The component of type `T` for this request, resolved on first use and cached.
    ///
    /// Looks first for a provider registered in `App(components:)`, then for a ``Component``
    /// conformance. Throws ``RouteError`` when neither exists (the app's startup check makes that
    /// impossible for handler parameters).
    public func resolve<T: Sendable>(_ type: T.Type = T.self) async throws -> T {
        let key = ObjectIdentifier(T.self)
        if let cached = cache.withLock({ $0[key] }) { return cached as! T }
        let value: T
        if let provider = app.providers[key] {
            value = try await provider.resolve(self) as! T
        } else if let component = T.self as? any Component.Type {
            value = try await component.resolve(in: self) as! T
        } else {
            throw RouteError.unresolvable(route: route.name, type: T.self)
        }
        cache.withLock { $0[key] = value }
        return value
    }
}
