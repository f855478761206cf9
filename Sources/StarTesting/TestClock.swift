import NIOCore
import Synchronization

/// The clock of a ``TestClient``'s WebSocket sessions: it stands still until a test moves it, so
/// keepalive pings, ping timeouts and close timeouts happen when the test says, without sleeping.
///
/// ```swift
/// let client = try TestClient(app)
/// let ws = try await client.websocketConnect("/feed", respondsToPings: false)
/// client.clock.advance(by: .seconds(20))   // the server pings; this client does not answer
/// client.clock.advance(by: .seconds(20))   // the ping timeout passes
/// #expect(try await ws.waitForClose().code == .internalServerError)
/// ```
public final class TestClock: Sendable {
    private struct State {
        var now: Duration = .zero
        var sessions: [ObjectIdentifier: InMemoryWebSocketSession] = [:]
    }
    private let state = Mutex(State())

    /// Creates a clock at zero.
    public init() {}

    /// The time since the clock was created, as far as the tests moved it.
    public var now: Duration { state.withLock { $0.now } }

    /// Moves the clock forward and runs every timer that falls due, in steps of at most a tenth of
    /// the shortest timer of the open sessions (10 ms to 1 s, as the server's ticker does), so a
    /// long jump behaves like the time passing.
    public func advance(by duration: Duration) {
        precondition(duration >= .zero, "a clock only moves forward")
        let target = now + duration
        while true {
            let (sessions, reached) = state.withLock { state in
                let shortest = state.sessions.values.map(\.shortestTimer).min() ?? .seconds(1)
                let step = min(max(shortest / 10, .milliseconds(10)), .seconds(1))
                state.now = min(state.now + step, target)
                return (Array(state.sessions.values), state.now)
            }
            for session in sessions { session.tick(now: Self.deadline(reached)) }
            if reached >= target { return }
        }
    }

    /// The engine's time for a point on this clock.
    static func deadline(_ time: Duration) -> NIODeadline {
        let (seconds, attoseconds) = time.components
        return .uptimeNanoseconds(UInt64(seconds) * 1_000_000_000 + UInt64(attoseconds / 1_000_000_000))
    }

    /// The current time as the engine's time.
    var deadline: NIODeadline { Self.deadline(now) }

    func add(_ session: InMemoryWebSocketSession) {
        state.withLock { $0.sessions[ObjectIdentifier(session)] = session }
    }

    func remove(_ session: InMemoryWebSocketSession) {
        _ = state.withLock { $0.sessions.removeValue(forKey: ObjectIdentifier(session)) }
    }
}
