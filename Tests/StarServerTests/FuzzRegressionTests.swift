import HTTPTypes
import NIOCore
import NIOEmbedded
import NIOWebSocket
import Star
import StarWebSocket
@testable import StarServer
import StarWebSocketEngine
import Testing

/// Inputs the fuzz targets in Fuzz/ found, fed through the path each target exercises.
@Suite struct FuzzRegressionTests {
    /// Wire bytes → the engine's frame parser → the state machine, as WebSocketChannelHandler and
    /// Fuzz/Sources/FuzzWebSocket do; the actions, in order.
    static func actions(wire: [UInt8], maxMessageSize: Int, deflateOffer: String? = nil) throws -> [WebSocketStateMachine.FrameAction] {
        let deflate = try deflateOffer.map { PerMessageDeflate(try #require(PerMessageDeflate.negotiate([$0]))) }
        var machine = WebSocketStateMachine(maxMessageSize: maxMessageSize, deflate: deflate)
        var parser = WebSocketFrameParser(maxFrameSize: maxMessageSize)
        parser.append(ByteBuffer(bytes: wire))
        var actions: [WebSocketStateMachine.FrameAction] = []
        do {
            while let frame = try parser.next() { actions.append(machine.received(frame)) }
        } catch {
            actions.append(machine.decodingFailed(error, now: .uptimeNanoseconds(0)))
        }
        return actions
    }

    /// `Sec-WebSocket-Extensions: permessage-deflate;=` (or `; ;`, or `;"`) trapped on an index out
    /// of range while negotiating: one request crashed the whole server (compression is on by default).
    @Test func anEmptyDeflateParameterDeclinesTheOffer() {
        for offer in ["permessage-deflate;=", "permessage-deflate; ;x", "permessage-deflate;\"", "permessage-deflate; = ; x"] {
            #expect(PerMessageDeflate.negotiate([offer]) == nil, "\(offer)")
        }
        #expect(PerMessageDeflate.negotiate(["permessage-deflate; =, permessage-deflate"])?.responseHeader == "permessage-deflate",
                "the next offer is still taken")
    }

    @concurrent static func connectAndClose(ws: WebSocket) async throws {
        try await ws.connect()
        await ws.close()
    }

    @Test func theServerSurvivesAnEmptyDeflateParameter() async throws {
        let app = App(routes: [Route("/ws", .get, Self.connectAndClose)])
        try await withServer(app) { port in
            for _ in 0..<2 {  // the second connection proves the process is still there
                let socket = try RawSocket(port: port)
                try socket.send("GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    + "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                    + "Sec-WebSocket-Extensions: permessage-deflate;=\r\n\r\n")
                let (head, _) = await socket.read { $0.contains("\r\n\r\n") }
                #expect(head.hasPrefix("HTTP/1.1 101"))
                #expect(!head.lowercased().contains("sec-websocket-extensions"))
            }
        }
    }

    /// A compressed message whose deflate stream ends (BFINAL) before its payload does spun the
    /// event loop forever: zlib read nothing more and the output buffer never filled up to grow.
    /// Found as a 27-byte fuzz input: `03 00` (an empty final block) and then anything.
    @Test(.timeLimit(.minutes(1))) func aDeflateStreamEndingEarlyNeitherHangsNorPasses() throws {
        let wire: [UInt8] = [0xC1, 0x87, 0x03, 0xF2, 0x00, 0x00, 0x00, 0xF2, 0x48, 0xCD, 0xC9, 0xC9, 0x07]
        let actions = try Self.actions(wire: wire, maxMessageSize: 1024, deflateOffer: "permessage-deflate")
        guard actions.count == 1, case .fail(.invalidFramePayloadData, _) = actions[0] else {
            Issue.record("expected a 1007 failure, got \(actions)")
            return
        }
    }

    /// RFC 7692 §7.2.3.4: a sender may end a message with a BFINAL block (followed by one 0x00 octet);
    /// what follows starts a new stream. This is the RFC's own example, then a plain message after it.
    @Test(.timeLimit(.minutes(1))) func aMessageEndingWithAFinalBlockInflates() throws {
        var machine = WebSocketStateMachine(maxMessageSize: 1 << 20, deflate: PerMessageDeflate(PerMessageDeflate.negotiate(["permessage-deflate"])!))
        let final = machine.received(clientFrame(.text, [0xF3, 0x48, 0xCD, 0xC9, 0xC9, 0x07, 0x00, 0x00], rsv1: true))
        #expect(final == .deliver(.text("Hello")))
        let next = machine.received(clientFrame(.text, [0xF2, 0x48, 0xCD, 0xC9, 0xC9, 0x07, 0x00], rsv1: true))
        #expect(next == .deliver(.text("Hello")))
    }

    /// `maxMessageSize: .max` (no limit) overflowed `limit + 1` on the first compressed message.
    @Test func anUnlimitedSizeInflates() throws {
        let deflate = PerMessageDeflate(PerMessageDeflate.negotiate(["permessage-deflate"])!)
        let text = String(repeating: "unlimited ", count: 100)
        let compressed = try #require(deflate.deflate(ByteBuffer(string: text), allocator: ByteBufferAllocator()))
        var wire: [UInt8] = [0xC1, 0x80 | UInt8(compressed.readableBytes), 0, 0, 0, 0]  // masked with a zero key
        wire += compressed.readableBytesView
        #expect(compressed.readableBytes < 126)
        let actions = try Self.actions(wire: wire, maxMessageSize: .max, deflateOffer: "permessage-deflate")
        #expect(actions == [.deliver(.text(text))])
    }

    /// A `Sec-WebSocket-Key` of 24 bytes with a comma passed `checkHandshake` when it counted bytes
    /// only; NIO splits header values at commas and refused to compute the accept key when the
    /// handler called `connect()`, so the client got 403 and the log an error. Found by the
    /// handshake fuzzer; the check now takes 22 base64 characters and `==`.
    @Test(arguments: ["x3JJHMbDL1EzLkh9GB,XDw==", "x3JJHMbDL1EzLkh9GB XDw==", "x3JJHMbDL1EzLkh9GBcXDw=A", "x3JJHMbDL1EzLkh9GBcXDw="])
    func aMalformedKeyIsRefusedByTheHandshakeCheck(key: String) throws {
        let fields: HTTPFields = [.upgrade: "websocket", .connection: "Upgrade", .secWebSocketVersion: "13",
                                  .secWebSocketKey: key]
        let request = Request(head: HTTPRequest(method: .get, scheme: "ws", authority: "x", path: "/ws", headerFields: fields))
        #expect(WebSocketHandshakeRules.check(request)?.response.status == .badRequest)
    }

    @Test func aWellFormedKeyPassesTheHandshakeCheck() {
        let fields: HTTPFields = [.upgrade: "websocket", .connection: "Upgrade", .secWebSocketVersion: "13",
                                  .secWebSocketKey: "dGhlIHNhbXBsZSBub25jZQ=="]
        let request = Request(head: HTTPRequest(method: .get, scheme: "ws", authority: "x", path: "/ws", headerFields: fields))
        #expect(WebSocketHandshakeRules.check(request) == nil)
    }
}
