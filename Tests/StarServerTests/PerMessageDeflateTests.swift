import CompressNIO
import Foundation
import NIOCore
import NIOWebSocket
import Star
import StarWebSocket
@testable import StarServer
import StarWebSocketEngine
import Testing

@Suite struct PerMessageDeflateTests {
    @Test func negotiationPicksTheFirstOfferItCanHonour() {
        #expect(PerMessageDeflate.negotiate([]) == nil)
        #expect(PerMessageDeflate.negotiate(["x-webkit-deflate-frame"]) == nil)
        let plain = PerMessageDeflate.negotiate(["permessage-deflate"])
        #expect(plain?.responseHeader == "permessage-deflate")
        #expect(plain?.clientMaxWindowBits == 15, "without client_max_window_bits the client may use 15 bits")

        let browser = PerMessageDeflate.negotiate(["permessage-deflate; client_max_window_bits"])
        #expect(browser?.responseHeader == "permessage-deflate; client_max_window_bits=12")

        let all = PerMessageDeflate.negotiate([
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10; client_max_window_bits=9",
        ])
        #expect(all?.responseHeader
                == "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10; client_max_window_bits=9")
        #expect(all?.serverMaxWindowBits == 10)

        // An offer we cannot honour is declined and the next one is taken.
        let fallback = PerMessageDeflate.negotiate(["permessage-deflate; server_max_window_bits=8, permessage-deflate"])
        #expect(fallback?.responseHeader == "permessage-deflate")
        for bad in ["permessage-deflate; unknown=1", "permessage-deflate; server_max_window_bits=16",
                    "permessage-deflate; client_max_window_bits=x", "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
                    "permessage-deflate; server_no_context_takeover=1"] {
            #expect(PerMessageDeflate.negotiate([bad]) == nil, "\(bad) is declined")
        }
    }

    @Test func roundTripAndSmallMessagesStayPlain() throws {
        let deflate = PerMessageDeflate(PerMessageDeflate.negotiate(["permessage-deflate"])!)
        let allocator = ByteBufferAllocator()
        #expect(deflate.deflate(ByteBuffer(string: "tiny"), allocator: allocator) == nil)
        let text = String(repeating: "Star is nice. ", count: 200)
        let compressed = try #require(deflate.deflate(ByteBuffer(string: text), allocator: allocator))
        #expect(compressed.readableBytes < text.utf8.count / 5)
        let inflated = try deflate.inflate(compressed, limit: 1 << 20, allocator: allocator)
        #expect(String(buffer: inflated) == text)
    }

    @Test func inflateStopsAtTheLimit() throws {
        let deflate = PerMessageDeflate(PerMessageDeflate.negotiate(["permessage-deflate"])!)
        let bomb = ByteBuffer(repeating: 0, count: 1 << 20)
        let compressed = try #require(deflate.deflate(bomb, allocator: ByteBufferAllocator()))
        #expect(compressed.readableBytes < 4096)
        #expect(throws: WebSocketMessageAssembler.Failure.self) {
            _ = try deflate.inflate(compressed, limit: 64 * 1024, allocator: ByteBufferAllocator())
        }
        #expect(throws: WebSocketMessageAssembler.Failure.self) {
            _ = try deflate.inflate(ByteBuffer(bytes: [0xFF, 0xFF, 0xFF]), limit: 1024, allocator: ByteBufferAllocator())
        }
    }

    /// A payload of many tiny deflate streams (each a final stored block of one byte; RFC 7692
    /// §7.2.3.4 lets a new stream follow one that ended) inflates into an output its own size: the
    /// output once doubled per stream, and the fuzz target found a payload that asked for 2 GiB.
    @Test func manyTinyStreamsDoNotGrowTheOutput() throws {
        let deflate = PerMessageDeflate(PerMessageDeflate.negotiate(["permessage-deflate"])!)
        let stream: [UInt8] = [0x01, 0x01, 0x00, 0xFE, 0xFF, 0x61]  // BFINAL, stored, LEN 1, NLEN, "a"
        let streams = ByteBuffer(bytes: Array([[UInt8]](repeating: stream, count: 200).joined()))
        let inflated = try deflate.inflate(streams, limit: 1 << 24, allocator: ByteBufferAllocator())
        #expect(inflated == ByteBuffer(repeating: 0x61, count: 200))
        #expect(inflated.capacity <= 16 * 1024, "capacity \(inflated.capacity): what the first guess gave, not doubled per stream")
    }

    @Test func compressedFramesThroughTheStateMachine() throws {
        let deflate = PerMessageDeflate(PerMessageDeflate.negotiate(["permessage-deflate"])!)
        let text = String(repeating: "abc", count: 300)
        let compressed = try #require(deflate.deflate(ByteBuffer(string: text), allocator: ByteBufferAllocator()))
        var machine = WebSocketStateMachine(maxMessageSize: 1 << 20, deflate: deflate)
        let bytes = Array(compressed.readableBytesView)
        let first = clientFrame(.text, Array(bytes[..<10]), fin: false, rsv1: true)
        let r1 = machine.received(first)
        #expect(r1 == .none)
        let r2 = machine.received(clientFrame(.continuation, Array(bytes[10...])))
        #expect(r2 == .deliver(.text(text)))

        var plain = WebSocketStateMachine(maxMessageSize: 1 << 20)
        let r3 = plain.received(clientFrame(.text, bytes, rsv1: true))
        guard case .fail(.protocolError, _) = r3 else { Issue.record("RSV1 without deflate must be 1002"); return }
    }
}

/// Compression is on by default and can be switched off for the whole app
/// (`WebSocketComponent(compression:)`) or for one route (`connect(compression:)`).
@Suite struct CompressionSwitchTests {
    @concurrent static func automatic(ws: WebSocket) async throws {
        try await ws.connect()
        await ws.close()
    }

    @concurrent static func uncompressed(ws: WebSocket) async throws {
        try await ws.connect(compression: false)
        await ws.close()
    }

    /// The `Sec-WebSocket-Extensions` value of the 101 when the client offers deflate, or `nil`.
    static func negotiated(_ path: String, port: Int) async throws -> String? {
        let socket = try RawSocket(port: port)
        try socket.send("GET \(path) HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            + "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n")
        let (head, _) = await socket.read { $0.contains("\r\n\r\n") }
        #expect(head.hasPrefix("HTTP/1.1 101"))
        return head.split(separator: "\r\n")
            .first { $0.lowercased().hasPrefix("sec-websocket-extensions:") }
            .map { $0.dropFirst("sec-websocket-extensions:".count).trimmingCharacters(in: .whitespaces) }
    }

    @Test func defaultsOnAndARouteCanSwitchItOff() async throws {
        let app = App(routes: [Route("/auto", .get, Self.automatic), Route("/plain", .get, Self.uncompressed)])
        try await withServer(app) { port in
            let automatic = try await Self.negotiated("/auto", port: port)
            let plain = try await Self.negotiated("/plain", port: port)
            #expect(automatic == "permessage-deflate; client_max_window_bits=12")
            #expect(plain == nil)
        }
    }

    @Test func theComponentSwitchesItOffForTheApp() async throws {
        let app = App(routes: [Route("/auto", .get, Self.automatic)], components: [WebSocketComponent(compression: false)])
        try await withServer(app) { port in
            let automatic = try await Self.negotiated("/auto", port: port)
            #expect(automatic == nil)
        }
    }
}
