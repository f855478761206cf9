import NIOCore
import Star
import StarServer
import StarWebSocket
import Synchronization
import Testing

/// Several tasks on one session over a real socket: the documented promise that sends from
/// several tasks are safe, and that one cancelled waiter leaves the others alone.
@Suite struct WebSocketConcurrencyTests {
    static let chunk = 16 * 1024
    /// 16 MB per sender: more than the kernel's socket buffers on loopback take.
    static let messages = 1000

    /// Two sender tasks fill the socket while the client does not read; one is cancelled while
    /// both wait for the socket to drain; the other must still deliver everything.
    @concurrent static func twoSenders(ws: WebSocket) async throws {
        try await ws.connect()
        let a = Task { for _ in 0..<messages { try await ws.send(text: String(repeating: "A", count: chunk)) } }
        let b = Task { for _ in 0..<messages { try await ws.send(text: String(repeating: "B", count: chunk)) } }
        try await Task.sleep(for: .milliseconds(500))  // both wait for the client to read by now
        a.cancel()
        var aWasCancelled = false
        if case .failure(let error) = await a.result { aWasCancelled = error is CancellationError }
        try await b.value
        try await ws.send(text: "a-cancelled=\(aWasCancelled) sender-b-finished")
    }

    @Test func oneCancelledSenderLeavesTheOtherSending() async throws {
        var configuration = ServerConfiguration(port: 0, accessLog: false)
        configuration.webSocket.writeBufferHighWater = 32 * 1024
        configuration.webSocket.perMessageDeflate = false
        let app = App(routes: [Route("/ws", .get, Self.twoSenders)])
        try await withServer(app, configuration: configuration) { port in
            let socket = try RawSocket(port: port, timeoutSeconds: 10, receiveBuffer: 8 * 1024)
            try socket.send("GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                + "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
            let (head, _) = await socket.read { $0.contains("\r\n\r\n") }
            #expect(head.hasPrefix("HTTP/1.1 101"))
            try await Task.sleep(for: .seconds(1))  // not reading: both senders wait for the socket
            let stream = await socket.readBytes(until: "sender-b-finished")
            let tail = String(decoding: stream.suffix(64), as: UTF8.self)
            #expect(tail.contains("sender-b-finished"), "the other sender finished (the session did not close with 1011)")
            #expect(tail.contains("a-cancelled=true"), "the cancelled sender saw CancellationError")
            var counts: [UInt8: Int] = [:]
            for byte in stream { counts[byte, default: 0] += 1 }
            #expect(counts[UInt8(ascii: "B"), default: 0] >= Self.messages * Self.chunk, "every message of the other sender arrived")
            #expect(counts[UInt8(ascii: "A"), default: 0] < Self.messages * Self.chunk, "the cancelled sender stopped early")
        }
    }
}
