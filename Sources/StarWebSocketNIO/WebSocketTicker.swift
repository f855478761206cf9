package import NIOCore

/// One repeating timer per event loop that drives the keepalive pings, the ping timeouts and the
/// close timeouts of every WebSocket session on that loop.
///
/// A scheduled task per session (a ping `RepeatedTask`, a ping timeout, a close timeout) cost
/// about 0.5 KiB per idle connection, and NIO's heap of scheduled tasks keeps the capacity it
/// grew to for good: after 10,000 connections it held 1.05 MB that the server never got back
/// (heaptrack). Here a session's timers are deadlines in its handler, and one tick checks them all.
///
/// The tick runs every tenth of the shortest timer of its sessions, between 10 ms and 1 s, so a
/// ping or a timeout happens at most that much after its due time. It runs only while the loop has
/// sessions. Used only on its event loop.
package final class WebSocketTicker {
    /// The ticks' bounds: fine enough for short test timeouts, coarse enough to cost nothing.
    package static let finestResolution = TimeAmount.milliseconds(10)
    package static let coarsestResolution = TimeAmount.seconds(1)

    private let eventLoop: any EventLoop
    private var sessions: [WebSocketChannelHandler] = []
    private var timer: RepeatedTask?
    private var resolution = WebSocketTicker.coarsestResolution

    package init(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    /// The number of sessions ticked.
    package var count: Int { sessions.count }

    /// Starts ticking `session` until ``remove(_:)``; `shortestTimer` is its shortest timer.
    package func add(_ session: WebSocketChannelHandler, shortestTimer: TimeAmount) {
        session.tickerSlot = sessions.count
        sessions.append(session)
        let wanted = min(max(.nanoseconds(shortestTimer.nanoseconds / 10), Self.finestResolution), Self.coarsestResolution)
        if timer == nil || wanted < resolution {
            resolution = wanted
            timer?.cancel()
            let this = NIOLoopBound(self, eventLoop: eventLoop)
            timer = eventLoop.scheduleRepeatedTask(initialDelay: wanted, delay: wanted) { _ in this.value.tick() }
        }
    }

    /// Stops ticking `session` (O(1): the last session takes its slot).
    package func remove(_ session: WebSocketChannelHandler) {
        let slot = session.tickerSlot
        guard slot >= 0, slot < sessions.count, sessions[slot] === session else { return }
        session.tickerSlot = -1
        let last = sessions.removeLast()
        if slot < sessions.count {
            sessions[slot] = last
            last.tickerSlot = slot
        }
        if sessions.isEmpty {
            timer?.cancel()
            timer = nil
            sessions = []  // give the capacity back: it grew with the peak
        } else if sessions.capacity > 64 && sessions.count < sessions.capacity / 4 {
            var smaller: [WebSocketChannelHandler] = []
            smaller.reserveCapacity(sessions.count * 2)
            smaller.append(contentsOf: sessions)
            sessions = smaller
        }
    }

    private func tick() {
        let now = eventLoop.now
        // Iterates a copy when a session's tick removes sessions (a close that completes at once).
        for session in sessions { session.tick(now: now) }
    }
}
