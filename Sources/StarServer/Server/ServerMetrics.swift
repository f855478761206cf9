import CoreMetrics
import Star
import Synchronization

/// The server's swift-metrics instruments, made once per server from one factory.
///
/// | label | kind | dimensions |
/// |---|---|---|
/// | `star_connections_open` | meter | |
/// | `star_http_requests_total` | counter | `status` |
/// | `star_http_request_duration` | timer | |
/// | `star_websocket_handshakes_total` | counter | `result` (`accepted`, `denied`) |
/// | `star_websocket_messages_total` | counter | `direction` (`in`, `out`) |
/// | `star_websocket_bytes_total` | counter | `direction` (`in`, `out`) |
/// | `star_websocket_closes_total` | counter | `code` |
final class ServerMetrics: Sendable {
    let factory: any MetricsFactory
    let openConnections: Meter
    let requestDuration: Timer
    let messagesIn: Counter
    let messagesOut: Counter
    let bytesIn: Counter
    let bytesOut: Counter
    /// `star_http_requests_total` by status, made on first use: a factory's lookup per request
    /// would cost more than the count.
    private let requestsByStatus = Mutex<[Int: Counter]>([:])

    init(factory: any MetricsFactory) {
        self.factory = factory
        openConnections = Meter(label: "star_connections_open", factory: factory)
        requestDuration = Timer(label: "star_http_request_duration", factory: factory)
        messagesIn = Counter(label: "star_websocket_messages_total", dimensions: [("direction", "in")], factory: factory)
        messagesOut = Counter(label: "star_websocket_messages_total", dimensions: [("direction", "out")], factory: factory)
        bytesIn = Counter(label: "star_websocket_bytes_total", dimensions: [("direction", "in")], factory: factory)
        bytesOut = Counter(label: "star_websocket_bytes_total", dimensions: [("direction", "out")], factory: factory)
    }

    func requestAnswered(status: Int, duration: Duration) {
        let factory = self.factory
        let counter = requestsByStatus.withLock { counters in
            if let counter = counters[status] { return counter }
            let counter = Counter(label: "star_http_requests_total", dimensions: [("status", String(status))], factory: factory)
            counters[status] = counter
            return counter
        }
        counter.increment()
        requestDuration.recordNanoseconds(duration.nanoseconds)
    }

    func handshake(accepted: Bool) {
        Counter(label: "star_websocket_handshakes_total", dimensions: [("result", accepted ? "accepted" : "denied")],
                factory: factory).increment()
    }

    func closed(code: WebSocketCloseCode?) {
        Counter(label: "star_websocket_closes_total", dimensions: [("code", code.map { String($0.rawValue) } ?? "none")],
                factory: factory).increment()
    }

    static func size(of message: WebSocketMessage) -> Int {
        switch message {
        case .text(let text): text.utf8.count
        case .binary(let bytes): bytes.readableBytes
        }
    }
}
