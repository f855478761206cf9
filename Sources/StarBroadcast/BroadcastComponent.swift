public import Logging
import Foundation
public import Star
import Synchronization

/// Provides one shared ``Broadcast`` to every handler that declares it; register it in
/// `App(components:)`.
///
/// ```swift
/// App(routes: routes, components: [try BroadcastComponent()])   // STAR_BROADCAST_URL, else memory://
/// App(routes: routes, components: [try BroadcastComponent(url: "postgres://star:secret@db:5432/chat")])
/// ```
public struct BroadcastComponent: ComponentProvider {
    private let shared: SharedBroadcast

    /// A broadcast on `url`, or — when `url` is `nil` — on the `STAR_BROADCAST_URL` environment
    /// variable (which `app.main()`'s `--broadcast-url` sets), read on first use, else `memory://`.
    ///
    /// - Throws: ``BroadcastError`` for a malformed `url`.
    public init(url: String? = nil, logger: Logger = Logger(label: "star.broadcast")) throws(BroadcastError) {
        shared = SharedBroadcast(logger: logger)
        if let url { try shared.make(url: url) }
    }

    /// The shared broadcast. A malformed `STAR_BROADCAST_URL` fails every request that needs it:
    /// the reason is logged and the client gets a 500.
    public func resolve(in context: RequestContext) throws -> Broadcast {
        try shared.get()
    }
}

/// The one broadcast of a component, made at most once.
private final class SharedBroadcast: Sendable {
    private let logger: Logger
    private let made = Mutex<Result<Broadcast, BroadcastError>?>(nil)

    init(logger: Logger) {
        self.logger = logger
    }

    func make(url: String) throws(BroadcastError) {
        let broadcast = try Broadcast(url: url, logger: logger)
        made.withLock { $0 = .success(broadcast) }
    }

    func get() throws(BroadcastError) -> Broadcast {
        let logger = self.logger
        return try made.withLock { made in
            if let made { return made }
            let url = ProcessInfo.processInfo.environment[Broadcast.environmentVariable] ?? "memory://"
            let result = Result { () throws(BroadcastError) in try Broadcast(url: url, logger: logger) }
            if case .failure(let error) = result { logger.error("\(Broadcast.environmentVariable): \(error)") }
            made = result
            return result
        }.get()
    }
}
