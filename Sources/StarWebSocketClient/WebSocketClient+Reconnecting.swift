import HTTPTypes

/// The reconnecting form, for long-lived feeds: `for try await ws in WebSocketClient.connections(to: url)`.
extension WebSocketClient {
    /// Connections to `url`, one after another, for a feed that must survive restarts and network
    /// failures: each iteration closes the previous connection (if the body left it open) and
    /// opens a new one, retrying failed attempts after an exponential backoff with jitter. The
    /// sequence ends when the iterating task is cancelled.
    ///
    /// ```swift
    /// for try await ws in WebSocketClient.connections(to: "wss://feed.example.com/ticks") {
    ///     for try await message in ws.messages { handle(message) }
    ///     // the server closed or the network dropped: the loop reconnects
    /// }
    /// ```
    ///
    /// It stops with an error only on what no retry can fix: an invalid URL, `wss://` without
    /// Star's `TLS` trait, unreadable TLS files, or a handshake denied with a 4xx status.
    ///
    /// - Parameters:
    ///   - url: A `ws://` or `wss://` URL.
    ///   - configuration: Subprotocols, header fields, timeouts, TLS and the session's options.
    ///   - backoff: The delays between failed attempts.
    public static func connections(
        to url: String,
        configuration: WebSocketClientConfiguration = WebSocketClientConfiguration(),
        backoff: Backoff = Backoff()
    ) -> Connections {
        Connections(url: url, configuration: configuration, backoff: backoff)
    }

    /// The delays between a reconnecting client's failed attempts: the n-th retry waits a random
    /// time between zero and `min(maximum, initial × factor^(n-1))` ("full jitter", so that clients
    /// dropped together do not come back together). A new attempt after a connection that was
    /// open starts at once, with the delays from the beginning.
    public struct Backoff: Sendable, Equatable {
        /// The longest delay of the first retry.
        public var initial: Duration
        /// The most any delay can be.
        public var maximum: Duration
        /// How much the longest delay grows with each failed attempt (at least 1).
        public var factor: Double

        /// Creates a backoff.
        ///
        /// - Parameters:
        ///   - initial: The longest delay of the first retry (1 s by default).
        ///   - maximum: The most any delay can be (60 s by default).
        ///   - factor: How much the longest delay grows with each failed attempt (2 by default).
        public init(initial: Duration = .seconds(1), maximum: Duration = .seconds(60), factor: Double = 2) {
            self.initial = initial
            self.maximum = maximum
            self.factor = max(1, factor)
        }

        /// The delay before retry number `attempt` (from 1).
        func delay(attempt: Int) -> Duration {
            var ceiling = Double(initial.nanoseconds)
            for _ in 1..<max(1, attempt) where ceiling < Double(maximum.nanoseconds) { ceiling *= factor }
            return .nanoseconds(Int64(Double.random(in: 0...max(0, min(ceiling, Double(maximum.nanoseconds))))))
        }
    }

    /// An endless sequence of connections to one URL; see ``connections(to:configuration:backoff:)``.
    public struct Connections: AsyncSequence, Sendable {
        /// An open connection.
        public typealias Element = WebSocketClient
        let url: String
        let configuration: WebSocketClientConfiguration
        let backoff: Backoff

        /// Makes the iterator.
        public func makeAsyncIterator() -> Iterator { Iterator(connections: self) }

        /// Opens the next connection on each call.
        public struct Iterator: AsyncIteratorProtocol {
            let connections: Connections
            private var current: WebSocketClient?

            init(connections: Connections) { self.connections = connections }

            /// Closes the previous connection and opens the next; `nil` once the task is cancelled.
            public mutating func next() async throws -> WebSocketClient? {
                if let current {
                    self.current = nil
                    await current.close()
                }
                var attempt = 0
                while !Task.isCancelled {
                    if attempt > 0 {
                        do {
                            try await Task.sleep(for: connections.backoff.delay(attempt: attempt))
                        } catch {
                            return nil  // cancelled while waiting
                        }
                    }
                    do {
                        let client = try await WebSocketClient.open(connections.url, configuration: connections.configuration)
                        current = client
                        return client
                    } catch let error as WebSocketClientError where !error.isRetriable {
                        throw error
                    } catch {
                        attempt += 1
                    }
                }
                return nil
            }
        }
    }
}

extension WebSocketClientError {
    /// Whether a reconnecting client tries again after this error.
    var isRetriable: Bool {
        switch kind {
        case .invalidURL, .tlsUnavailable, .tlsConfiguration: false
        case .handshakeDenied: !(400..<500).contains(status?.code ?? 0) || status?.code == 429
        default: true
        }
    }
}

extension Duration {
    fileprivate var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}
