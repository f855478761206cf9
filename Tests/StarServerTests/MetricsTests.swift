import MetricsTestKit
import NIOCore
import Star
import StarServer
import StarWebSocket
import Testing

@Suite struct MetricsTests {
    @Sendable @concurrent static func denyAll(ws: WebSocket) async throws {}
    @Sendable @concurrent static func ok() async -> String { "ok" }

    @Test func requestsHandshakesAndConnectionsAreCounted() async throws {
        let metrics = TestMetrics()
        var configuration = ServerConfiguration(port: 0, accessLog: false)
        configuration.metricsFactory = metrics
        let app = App(routes: [Route("/ok", .get, Self.ok), Route("/ws", .get, Self.denyAll)])
        try await withServer(app, configuration: configuration) { port in
            let socket = try RawSocket(port: port)
            try socket.send("GET /ok HTTP/1.1\r\nHost: x\r\n\r\n")
            _ = await socket.read { $0.hasSuffix("ok") }
            try socket.send("GET /missing HTTP/1.1\r\nHost: x\r\n\r\n")
            _ = await socket.read { $0.hasSuffix("}") }
            let handshake = try RawSocket(port: port)
            try handshake.send("GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                + "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
            let (denial, _) = await handshake.read { $0.hasSuffix("}") }
            #expect(denial.hasPrefix("HTTP/1.1 403"))
            #expect(metrics.counterTotal(label: "star_http_requests_total", dimensions: [("status", "200")]) == 1)
            #expect(metrics.counterTotal(label: "star_http_requests_total", dimensions: [("status", "404")]) == 1)
            #expect(metrics.counterTotal(label: "star_websocket_handshakes_total", dimensions: [("result", "denied")]) == 1)
            #expect(try metrics.expectTimer("star_http_request_duration").values.count == 3)
            #expect(try metrics.expectMeter("star_connections_open").values.max() == 2)
        }
    }
}
