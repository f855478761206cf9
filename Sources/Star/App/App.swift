public import Logging
import Synchronization

/// A Star application: routes, the components that feed handlers, and event hooks.
///
/// ```swift
/// let app = App(
///     routes: [Route("/hello/{name}", .get, hello)],
///     components: [Provide(Database(url: "…"))],
///     eventHooks: [TimingHook()]
/// )
/// try await app.main()   // from StarServer
/// ```
///
/// An app is immutable and can be served by several transports at once (the NIO server, the
/// in-memory test client).
public final class App: Sendable {
    /// Settings that are the app's own, not the server's.
    public struct Configuration: Sendable {
        /// The largest request body accepted, in bytes; larger bodies are answered `413`.
        public var maxBodySize: Int
        /// Where StarBroadcast's `BroadcastComponent()` (made without a URL) publishes: `memory://` or
        /// `postgres://user:password@host:port/database`; `nil` means `memory://`. `app.main()` sets it
        /// from `--broadcast-url` (or `STAR_BROADCAST_URL`) when either is given.
        public var broadcastURL: String?

        /// Creates a configuration; the body limit defaults to 1 MiB.
        public init(maxBodySize: Int = 1 << 20, broadcastURL: String? = nil) {
            self.maxBodySize = maxBodySize
            self.broadcastURL = broadcastURL
        }
    }

    /// The route entries as given.
    public let entries: [any RouteEntry]
    /// The event hooks, in `onRequest` order.
    public let eventHooks: [any EventHook]
    /// The app's settings: those given to `init`, with what `app.main()` filled in from its options.
    public var configuration: Configuration { configurationBox.withLock { $0 } }
    /// ``Configuration/maxBodySize``, read on every request without the lock (it never changes).
    package let maxBodySize: Int
    private let configurationBox: Mutex<Configuration>
    /// The logger the app and its requests log through (`label: "star"` unless given).
    public var logger: Logger { loggerBox.withLock { $0 } }
    private let loggerBox: Mutex<Logger>

    let providers: [ObjectIdentifier: AnyComponentProvider]
    let routing: Result<Router, RouteError>
    private let requestCounter = Atomic<UInt64>(0)

    /// Creates an app. Mistakes in routes and components are reported by ``validate()``, which
    /// the server and the test client call before they serve anything.
    public init(
        routes: [any RouteEntry],
        components: [any ComponentProvider] = [],
        eventHooks: [any EventHook] = [],
        configuration: Configuration = Configuration(),
        logger: Logger = Logger(label: "star")
    ) {
        self.entries = routes
        self.eventHooks = eventHooks
        self.configurationBox = Mutex(configuration)
        self.maxBodySize = configuration.maxBodySize
        self.loggerBox = Mutex(logger)
        var providers: [ObjectIdentifier: AnyComponentProvider] = [:]
        for component in components {
            let provider = AnyComponentProvider(component)
            providers[ObjectIdentifier(provider.valueType)] = provider
        }
        self.providers = providers
        self.routing = Result { () throws(RouteError) in try Router(routes) }
    }

    /// The router, or the mistake that made one impossible.
    package var router: Router {
        get throws(RouteError) { try routing.get() }
    }

    /// Checks everything that can be checked before the first request: templates, names, and
    /// that every handler parameter and every dependency of a component has a provider.
    /// Throws a ``RouteError`` naming the route and the type.
    public func validate() throws(RouteError) {
        let router = try self.router
        for route in router.routes {
            if let result = route.unrenderableResult { throw .unrenderableResult(route: route.name, type: result) }
            for type in route.parameterTypes {
                try checkProvided(type, route: route.name, chain: [])
            }
        }
    }

    private func checkProvided(_ type: Any.Type, route: String, chain: [Any.Type]) throws(RouteError) {
        if chain.contains(where: { $0 == type }) {
            throw .dependencyCycle(route: route, type: type)
        }
        if let provider = providers[ObjectIdentifier(type)] {
            for dependency in provider.dependencies {
                try checkProvided(dependency, route: route, chain: chain + [type])
            }
        } else if !(type is any Component.Type) {
            throw .unresolvable(route: route, type: type, neededBy: chain.last)
        }
    }

    /// The path of the route named `name` (`"users:detail"`) with `parameters` filled in.
    public func url(for name: String, _ parameters: [String: String] = [:]) throws(RouteError) -> String {
        try router.url(for: name, parameters)
    }

    /// Changes the level of the app's logger (the server sets it from `--log-level`).
    package func setLogLevel(_ level: Logger.Level) {
        loggerBox.withLock { $0.logLevel = level }
    }

    /// Sets ``Configuration/broadcastURL`` (`app.main()` does, from `--broadcast-url`, before it serves).
    package func setBroadcastURL(_ url: String) {
        configurationBox.withLock { $0.broadcastURL = url }
    }

    /// A new request id, unique within this app's life: `req-` and the request's number in
    /// decimal, at least six digits (`req-000014`), so that a log line reads `request-id=req-000014`
    /// rather than a bare `request-id=e`.
    package func makeRequestID() -> String {
        let number = requestCounter.add(1, ordering: .relaxed).newValue
        let digits = String(number)
        return "req-" + String(repeating: "0", count: max(0, 6 - digits.count)) + digits
    }
}
