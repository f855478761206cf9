public import Logging
public import Star
import Synchronization

/// Provides one shared ``Broadcast`` to every handler that declares it; register it in
/// `App(components:)`.
///
/// ```swift
/// App(routes: routes, components: [try BroadcastComponent()])   // the app's broadcastURL, else memory://
/// App(routes: routes, components: [try BroadcastComponent(url: "postgres://star:secret@db:5432/chat")])
/// ```
///
/// Without a URL of its own, the component uses the app's `configuration.broadcastURL`, which
/// `app.main()` sets from `--broadcast-url` (or `STAR_BROADCAST_URL`); with neither, `memory://`.
///
/// The broadcast is made on first use and logs through the app's logger (so `--log-level`
/// applies) unless a logger is given.
public struct BroadcastComponent: ComponentProvider {
    private let shared: SharedBroadcast

    /// A broadcast on `url`, or — when `url` is `nil` — on the app's `configuration.broadcastURL`,
    /// read on first use, else `memory://`.
    ///
    /// - Throws: ``BroadcastError`` for a malformed `url` (a malformed app URL is reported on first use).
    public init(url: String? = nil, logger: Logger? = nil) throws(BroadcastError) {
        if let url { _ = try BroadcastURL(url) }
        shared = SharedBroadcast(url: url, logger: logger)
    }

    /// The shared broadcast. A malformed `configuration.broadcastURL` fails every request that
    /// needs it: the reason is logged and the client gets a 500.
    public func resolve(in context: RequestContext) throws -> Broadcast {
        try shared.get(app: context.app)
    }
}

/// The one broadcast of a component, made at most once.
private final class SharedBroadcast: Sendable {
    private let url: String?
    private let logger: Logger?
    private let made = Mutex<Result<Broadcast, BroadcastError>?>(nil)

    init(url: String?, logger: Logger?) {
        self.url = url
        self.logger = logger
    }

    func get(app: App) throws(BroadcastError) -> Broadcast {
        try made.withLock { made in
            if let made { return made }
            let logger = self.logger ?? app.logger
            let url = self.url ?? app.configuration.broadcastURL ?? "memory://"
            let result = Result { () throws(BroadcastError) in try Broadcast(url: url, logger: logger) }
            if case .failure(let error) = result { logger.error("broadcast URL: \(error)") }
            made = result
            return result
        }.get()
    }
}
