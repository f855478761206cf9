import Foundation
import NIOCore
import NIOEmbedded
import NIOHTTP1
import NIOWebSocket
import Star
@testable import StarServer
import StarWebSocketEngine
import StarWebSocketNIO
import Testing

/// A masked client frame, as a browser would send it.
func clientFrame(_ opcode: WebSocketOpcode, _ bytes: [UInt8], fin: Bool = true, rsv1: Bool = false, masked: Bool = true) -> WebSocketInboundFrame {
    let key: WebSocketMaskingKey? = masked ? WebSocketMaskingKey([0x11, 0x22, 0x33, 0x44]) : nil
    var data = ByteBuffer(bytes: bytes)
    if let key { data.webSocketMask(key) }
    return WebSocketInboundFrame(WebSocketFrame(fin: fin, rsv1: rsv1, opcode: opcode, maskKey: key, data: data))
}

extension ByteBuffer {
    /// Writes NIO's `frame` as it goes on the wire, its data masked with its key if it has one
    /// (RSV2 and RSV3 are not written): the tests' frame encoder.
    mutating func writeWebSocketFrame(_ frame: WebSocketFrame) {
        let key = frame.maskKey?.networkRepresentation
        writeWebSocketFrameHeader(fin: frame.fin, rsv1: frame.rsv1, opcode: frame.opcode, length: frame.data.readableBytes, maskKey: key)
        if let key { writeMasked(frame.data, key: key) } else { writeImmutableBuffer(frame.data) }
    }
}

extension EmbeddedChannel {
    /// The next frame a `WebSocketChannelHandler` wrote, read back from its bytes (a frame may
    /// be written as two buffers: its header, then its payload), or `nil` when none is queued.
    func readOutboundFrame() throws -> WebSocketInboundFrame? {
        var parser = WebSocketFrameParser(maxFrameSize: 1 << 24)
        while let bytes = try readOutbound(as: ByteBuffer.self) {
            parser.append(bytes)
            if let frame = try parser.next() { return frame }
        }
        return nil
    }
}

/// A received frame (its payload as it came, masked if it has a key) as it was on the wire.
func wire(_ frame: WebSocketInboundFrame) -> ByteBuffer {
    var bytes = ByteBuffer()
    bytes.writeWebSocketFrameHeader(fin: frame.fin, rsv1: frame.rsv1, opcode: frame.opcode, length: frame.payload.readableBytes,
                                    maskKey: frame.maskKey)
    bytes.writeImmutableBuffer(frame.payload)  // masked already, if it has a key
    return bytes
}

func closePayload(_ code: UInt16, _ reason: String = "") -> [UInt8] {
    [UInt8(code >> 8), UInt8(code & 0xFF)] + Array(reason.utf8)
}

@Suite struct WebSocketStateMachineTests {
    @Test func fragmentsWithInterleavedPingMakeOneMessage() {
        var machine = WebSocketStateMachine(maxMessageSize: 100)
        let r1 = machine.received(clientFrame(.text, Array("Hel".utf8), fin: false))
        #expect(r1 == .none)
        let r2 = machine.received(clientFrame(.ping, [9]))
        #expect(r2 == .sendPong(ByteBuffer(bytes: [9])))
        let r3 = machine.received(clientFrame(.continuation, Array("lo".utf8)))
        #expect(r3 == .deliver(.text("Hello")))
    }

    @Test func utf8SplitAcrossFragmentsIsValid() {
        var machine = WebSocketStateMachine(maxMessageSize: 100)
        let euro = Array("€".utf8)  // three bytes
        let r4 = machine.received(clientFrame(.text, [euro[0]], fin: false))
        #expect(r4 == .none)
        let r5 = machine.received(clientFrame(.continuation, [euro[1]], fin: false))
        #expect(r5 == .none)
        let r6 = machine.received(clientFrame(.continuation, [euro[2]]))
        #expect(r6 == .deliver(.text("€")))
    }

    @Test func invalidUTF8Is1007EvenBeforeTheMessageEnds() {
        var machine = WebSocketStateMachine(maxMessageSize: 100)
        let r7 = machine.received(clientFrame(.text, [0x61, 0xFF, 0x61], fin: false))
        #expect(r7 == .fail(.invalidFramePayloadData, reason: "invalid UTF-8 in text message"))
        var single = WebSocketStateMachine(maxMessageSize: 100)
        let r8 = single.received(clientFrame(.text, [0xC3]))
        #expect(r8 == .fail(.invalidFramePayloadData, reason: "invalid UTF-8 in text message"))
        var truncated = WebSocketStateMachine(maxMessageSize: 100)
        let r9 = truncated.received(clientFrame(.text, [0xE2, 0x82], fin: false))
        #expect(r9 == .none)
        let r10 = truncated.received(clientFrame(.continuation, []))
        #expect(r10 == .fail(.invalidFramePayloadData, reason: "invalid UTF-8 in text message"))
    }

    @Test func fragmentationRulesAre1002() {
        var orphan = WebSocketStateMachine(maxMessageSize: 100)
        guard case .fail(.protocolError, _) = orphan.received(clientFrame(.continuation, [1])) else { Issue.record("orphan continuation"); return }
        var interleaved = WebSocketStateMachine(maxMessageSize: 100)
        _ = interleaved.received(clientFrame(.binary, [1], fin: false))
        guard case .fail(.protocolError, _) = interleaved.received(clientFrame(.text, [0x61])) else { Issue.record("new message mid-message"); return }
    }

    @Test func framesBreakingTheRulesAre1002() {
        for frame in [clientFrame(.text, [0x61], masked: false), clientFrame(.text, [0x61], rsv1: true),
                      WebSocketInboundFrame(fin: true, opcode: WebSocketOpcode(encodedWebSocketOpcode: 3)!, maskKey: 0x0102_0304, payload: ByteBuffer())] {
            var machine = WebSocketStateMachine(maxMessageSize: 100)
            guard case .fail(.protocolError, _) = machine.received(frame) else {
                Issue.record("expected 1002 for \(frame)")
                continue
            }
            #expect(machine.state == .closed)
        }
    }

    @Test func messagesOverTheLimitAre1009() {
        var machine = WebSocketStateMachine(maxMessageSize: 4)
        let r11 = machine.received(clientFrame(.binary, [1, 2, 3, 4]))
        #expect(r11 == .deliver(.binary(ByteBuffer(bytes: [1, 2, 3, 4]))))
        _ = machine.received(clientFrame(.binary, [1, 2, 3], fin: false))
        guard case .fail(.messageTooBig, _) = machine.received(clientFrame(.continuation, [4, 5])) else { Issue.record("expected 1009"); return }
    }

    @Test func closeFramesAreValidated() {
        func firstAction(_ payload: [UInt8]) -> WebSocketStateMachine.FrameAction {
            var machine = WebSocketStateMachine(maxMessageSize: 100)
            return machine.received(clientFrame(.connectionClose, payload))
        }
        #expect(firstAction([]) == .echoClose(.noStatusReceived, reason: ""))
        #expect(firstAction(closePayload(1000, "bye")) == .echoClose(.normalClosure, reason: "bye"))
        #expect(firstAction(closePayload(4321)) == .echoClose(WebSocketCloseCode(4321), reason: ""))
        guard case .fail(.protocolError, _) = firstAction([0x03]) else { Issue.record("one-byte close"); return }
        for invalid: UInt16 in [0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 5000] {
            guard case .fail(.protocolError, _) = firstAction(closePayload(invalid)) else { Issue.record("code \(invalid)"); return }
        }
        guard case .fail(.invalidFramePayloadData, _) = firstAction(closePayload(1000) + [0xFF]) else { Issue.record("bad reason"); return }
    }

    @Test func serverInitiatedCloseHandshake() {
        var machine = WebSocketStateMachine(maxMessageSize: 100)
        let r12 = machine.close()
        #expect(r12)
        let r13 = machine.close()
        #expect(!r13, "close is sent once")
        let r14 = machine.received(clientFrame(.text, [0x61]))
        #expect(r14 == .none, "messages after our close are dropped")
        let r15 = machine.received(clientFrame(.ping, []))
        #expect(r15 == .none)
        let r16 = machine.received(clientFrame(.connectionClose, closePayload(1000)))
        #expect(r16 == .closeHandshakeDone(.normalClosure, reason: ""))
        #expect(machine.state == .closed)
    }

    @Test func keepaliveTimersRunOnTheClockTheDriverPasses() {
        let start = NIODeadline.uptimeNanoseconds(0)
        var machine = WebSocketStateMachine(
            options: WebSocketOptions(pingInterval: .seconds(20), pingTimeout: .seconds(5)), now: start)
        #expect(machine.tick(now: start + .seconds(19)) == .none)
        #expect(machine.tick(now: start + .seconds(20)) == .sendPing(1))
        var payload = ByteBuffer()
        payload.writeInteger(UInt64(1))
        _ = machine.received(clientFrame(.pong, Array(payload.readableBytesView)))
        #expect(machine.outstandingPing == nil, "the pong answers ping 1")
        #expect(machine.tick(now: start + .seconds(26)) == .none, "an answered ping does not time out")
        #expect(machine.tick(now: start + .seconds(40)) == .sendPing(2))
        #expect(machine.tick(now: start + .seconds(44)) == .none)
        #expect(machine.tick(now: start + .seconds(45)) == .fail(.internalServerError, reason: "keepalive ping timeout"))
        #expect(machine.state == .closeSent)
        #expect(machine.tick(now: start + .seconds(54)) == .none)
        #expect(machine.tick(now: start + .seconds(55)) == .closeSocket, "the close timeout (10 s) after our close frame")
        #expect(machine.state == .closed)
    }

    @Test func theClientRoleWantsUnmaskedFramesAndMasksItsOwn() {
        var client = WebSocketStateMachine(role: .client, options: WebSocketOptions(), now: .uptimeNanoseconds(0))
        guard case .fail(.protocolError, _) = client.received(clientFrame(.text, [0x61])) else {
            Issue.record("a masked frame from a server must fail")
            return
        }
        var again = WebSocketStateMachine(role: .client, options: WebSocketOptions(), now: .uptimeNanoseconds(0))
        #expect(again.received(clientFrame(.text, [0x61], masked: false)) == .deliver(.text("a")))
        #expect(WebSocketStateMachine.Role.client.frame(.text, ByteBuffer(string: "a")).maskKey != nil)
        #expect(WebSocketStateMachine.Role.server.frame(.text, ByteBuffer(string: "a")).maskKey == nil)
    }
}

/// Counts the reads that reach the socket.
final class ReadCounter: ChannelOutboundHandler {
    typealias OutboundIn = Never
    var reads = 0
    func read(context: ChannelHandlerContext) {
        reads += 1
        context.read()
    }
}

@Suite struct WebSocketChannelHandlerTests {
    @Test func fullQueueStopsReadingUntilTheAppReceives() async throws {
        let channel = EmbeddedChannel()
        let counter = ReadCounter()
        let session = WebSocketSession(channel: channel) { _, _, _ in }
        let options = WebSocketOptions(maxQueue: 2, pingInterval: nil)
        let handler = WebSocketChannelHandler(session: session, options: options,
                                              ticker: WebSocketTicker(eventLoop: channel.eventLoop), now: channel.eventLoop.now)
        try channel.pipeline.syncOperations.addHandler(counter)
        try channel.pipeline.syncOperations.addHandler(handler)
        session.attach(NIOLoopBound(handler, eventLoop: channel.eventLoop))
        try await session.accept(headers: [:], options: options)

        channel.read()
        #expect(counter.reads == 1)
        try channel.writeInbound(wire(clientFrame(.text, [0x61])))
        try channel.writeInbound(wire(clientFrame(.text, [0x62])))
        channel.read()
        #expect(counter.reads == 1, "two queued messages fill the queue: no more reads")

        #expect(try await session.receive() == .text("a"))
        channel.embeddedEventLoop.run()
        #expect(counter.reads == 2, "receiving makes room and the pending read goes out")
        _ = try? channel.finish()
    }

    /// A connected embedded channel with a session's handler in `role`, without keepalive pings.
    private func connectedHandler(role: WebSocketStateMachine.Role = .server) throws -> (EmbeddedChannel, WebSocketChannelHandler) {
        let channel = EmbeddedChannel()
        let session = WebSocketSession(channel: channel) { _, _, _ in }
        let handler = WebSocketChannelHandler(session: session, role: role, options: WebSocketOptions(pingInterval: nil),
                                              ticker: WebSocketTicker(eventLoop: channel.eventLoop), now: channel.eventLoop.now)
        try channel.pipeline.syncOperations.addHandler(handler)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 9)).wait()
        return (channel, handler)
    }

    @Test func pingIsAnsweredWhileTheAppOnlySends() throws {
        let (channel, _) = try connectedHandler()
        try channel.writeInbound(wire(clientFrame(.ping, [1, 2])))
        let pong = try #require(try channel.readOutboundFrame())
        #expect(pong.opcode == .pong && pong.payload == ByteBuffer(bytes: [1, 2]))

        try channel.writeInbound(wire(clientFrame(.connectionClose, closePayload(1000))))
        let close = try #require(try channel.readOutboundFrame())
        #expect(close.opcode == .connectionClose && close.payload == ByteBuffer(bytes: closePayload(1000)))
        #expect(!channel.isActive, "the server closes the socket after echoing the close")
    }

    /// `send(_:)` writes wire bytes: a server's text as one buffer of header and UTF-8, a larger
    /// binary as header then payload, a client's frames masked with a fresh key; nothing after
    /// the close frame.
    @Test func sendWritesFramesAsWireBytes() throws {
        let (channel, handler) = try connectedHandler()
        handler.send(.text("hé"))
        #expect(try channel.readOutbound(as: ByteBuffer.self) == nil, "written, not flushed: the caller flushes")
        handler.flush()
        #expect(try channel.readOutbound(as: ByteBuffer.self) == ByteBuffer(bytes: [0x81, 0x03, 0x68, 0xC3, 0xA9]))
        let bytes = ByteBuffer(repeating: 7, count: 300)
        handler.send(.binary(bytes))
        handler.flush()
        #expect(try channel.readOutbound(as: ByteBuffer.self) == ByteBuffer(bytes: [0x82, 0x7E, 0x01, 0x2C]))
        #expect(try channel.readOutbound(as: ByteBuffer.self) == bytes)
        handler.initiateClose(code: .normalClosure, reason: "")
        #expect(try channel.readOutboundFrame()?.opcode == .connectionClose)
        handler.send(.text("late"))
        handler.flush()
        #expect(try channel.readOutbound(as: ByteBuffer.self) == nil, "nothing may follow the close frame")

        let (clientChannel, client) = try connectedHandler(role: .client)
        for message in [WebSocketMessage.text("hé"), .text("hé"), .binary(bytes)] { client.send(message) }
        client.flush()
        let frames = try (0..<3).map { _ in try #require(try clientChannel.readOutboundFrame()) }
        #expect(frames.map(\.opcode) == [.text, .text, .binary] && frames.allSatisfy { $0.maskKey != nil && $0.fin })
        #expect(frames[0].maskKey != frames[1].maskKey, "a fresh key per frame")
        #expect(frames.map(\.unmaskedPayload) == [ByteBuffer(string: "hé"), ByteBuffer(string: "hé"), bytes])
        #expect(frames[0].payload != frames[0].unmaskedPayload || frames[0].maskKey == 0, "the payload goes masked")
        _ = try? clientChannel.finish()
    }
}

/// The timers of WebSocket sessions, driven by their event loop's ``WebSocketTicker`` (in the
/// embedded loop's virtual time).
@Suite struct WebSocketTimerTests {
    private func session(on loop: EmbeddedEventLoop, ticker: WebSocketTicker,
                         _ options: WebSocketOptions) throws -> (EmbeddedChannel, WebSocketChannelHandler) {
        let channel = EmbeddedChannel(loop: loop)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 9)).wait()
        let session = WebSocketSession(channel: channel) { _, _, _ in }
        let handler = WebSocketChannelHandler(session: session, options: options, ticker: ticker, now: loop.now)
        try channel.pipeline.syncOperations.addHandler(handler)
        session.attach(NIOLoopBound(handler, eventLoop: loop))
        return (channel, handler)
    }

    @Test func keepalivePingIsSentWhenDueAndAnUnansweredOneCloses1011() throws {
        let loop = EmbeddedEventLoop()
        let ticker = WebSocketTicker(eventLoop: loop)
        let (channel, _) = try session(on: loop, ticker: ticker,
                                       WebSocketOptions(pingInterval: .seconds(1), pingTimeout: .milliseconds(500)))
        #expect(ticker.count == 1)

        loop.advanceTime(by: .milliseconds(900))
        #expect(try channel.readOutboundFrame() == nil, "no ping before the interval")
        loop.advanceTime(by: .milliseconds(200))
        let ping = try #require(try channel.readOutboundFrame())
        #expect(ping.opcode == .ping && ping.payload.readableBytes == 8)
        try channel.writeInbound(wire(clientFrame(.pong, Array(ping.payload.readableBytesView))))
        loop.advanceTime(by: .milliseconds(800))  // 1.9 s: past the first ping's timeout, but it was answered
        #expect(try channel.readOutboundFrame() == nil)
        #expect(channel.isActive)

        loop.advanceTime(by: .milliseconds(200))  // 2.1 s: the second ping, never answered
        let second = try #require(try channel.readOutboundFrame())
        #expect(second.opcode == .ping && second.payload != ping.payload)
        loop.advanceTime(by: .milliseconds(300))
        #expect(channel.isActive, "2.4 s: the second ping's timeout is at 2.5 s")
        loop.advanceTime(by: .milliseconds(200))
        let close = try #require(try channel.readOutboundFrame())
        #expect(close.opcode == .connectionClose)
        #expect(close.payload == ByteBuffer(bytes: closePayload(1011, "keepalive ping timeout")))
        #expect(!channel.isActive)
        #expect(ticker.count == 0, "a closed session leaves the ticker")
    }

    @Test func peerThatNeverAnswersOurCloseIsCutOffAtTheCloseTimeout() throws {
        let loop = EmbeddedEventLoop()
        let ticker = WebSocketTicker(eventLoop: loop)
        let (channel, handler) = try session(on: loop, ticker: ticker,
                                             WebSocketOptions(pingInterval: nil, closeTimeout: .seconds(2)))
        handler.initiateClose(code: .normalClosure, reason: "bye")
        let close = try #require(try channel.readOutboundFrame())
        #expect(close.payload == ByteBuffer(bytes: closePayload(1000, "bye")))
        loop.advanceTime(by: .milliseconds(1900))
        #expect(channel.isActive, "the peer still has time to answer")
        loop.advanceTime(by: .milliseconds(300))
        #expect(!channel.isActive)
        #expect(ticker.count == 0)
    }

    /// Sessions leave the ticker in any order (each departure moves the last one into its slot);
    /// the others keep their timers.
    @Test func sessionsLeaveInAnyOrderAndTheRestKeepTicking() throws {
        let loop = EmbeddedEventLoop()
        let ticker = WebSocketTicker(eventLoop: loop)
        let options = WebSocketOptions(pingInterval: .seconds(1), pingTimeout: nil)
        let sessions = try (0..<100).map { _ in try session(on: loop, ticker: ticker, options).0 }
        #expect(ticker.count == 100)
        // (Not `finish()`: that drains the shared loop's scheduled tasks, the ticker's included.)
        for (index, channel) in sessions.enumerated() where index % 3 != 1 { channel.close(promise: nil) }
        loop.run()
        #expect(ticker.count == 33)
        loop.advanceTime(by: .milliseconds(1100))
        for (index, channel) in sessions.enumerated() where index % 3 == 1 {
            let ping = try #require(try channel.readOutboundFrame(), "session \(index)")
            #expect(ping.opcode == .ping)
        }
        for channel in sessions where channel.isActive { channel.close(promise: nil) }
        loop.run()
        #expect(ticker.count == 0)
    }
}

@Suite struct UnmaskingTests {
    /// The word-at-a-time unmask agrees with NIO's byte-at-a-time one for every length around the
    /// word size and for random keys and payloads.
    @Test func agreesWithNIOsUnmask() {
        var generator = SystemRandomNumberGenerator()
        for length in Array(0...33) + [1000, 65537] {
            let key = WebSocketMaskingKey.random(using: &generator)
            let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
            let nioFrame = WebSocketFrame(fin: true, opcode: .binary, maskKey: key, data: ByteBuffer(bytes: bytes))
            let frame = WebSocketInboundFrame(nioFrame)
            let expected = bytes.enumerated().map { $0.element ^ key[$0.offset % 4] }
            #expect(Array(frame.unmaskedPayload.readableBytesView) == expected, "length \(length)")
            #expect(frame.unmaskedPayload == nioFrame.unmaskedData, "length \(length)")
            #expect(frame.payload == ByteBuffer(bytes: bytes), "the frame's own payload is left masked")
        }
    }

    /// A masked text payload becomes the same `String` as unmasking then decoding would give, or
    /// `nil` when it is not UTF-8, for every length around the word size and beyond the stack's share.
    @Test func unmaskedStringIsTheUnmaskedTextOrNil() {
        var generator = SystemRandomNumberGenerator()
        let alphabet = Array("aé€😀 Z")
        for length in Array(0...33) + [1000, 70000] {
            let key = WebSocketMaskingKey.random(using: &generator)
            let text = String((0..<length).map { _ in alphabet.randomElement(using: &generator)! })
            var masked = ByteBuffer(string: text)
            masked.webSocketMask(key)
            #expect(masked.unmaskedString(key: key.networkRepresentation) == text, "length \(length)")
            var invalid = ByteBuffer(bytes: Array(text.utf8) + [0xC3])  // a lead byte with nothing after it
            invalid.webSocketMask(key)
            #expect(invalid.unmaskedString(key: key.networkRepresentation) == nil, "length \(length)")
        }
    }

    /// The machine's path for whole masked text messages: the exact text, 1007 for bad UTF-8, 1009 over the limit.
    @Test func wholeMaskedTextMessagesTakeTheDirectPath() {
        var machine = WebSocketStateMachine(maxMessageSize: 64)
        let text = "a message of 43 bytes, with €s: €€€"
        #expect(machine.received(clientFrame(.text, Array(text.utf8))) == .deliver(.text(text)))
        #expect(machine.received(clientFrame(.text, [])) == .deliver(.text("")))
        var invalid = WebSocketStateMachine(maxMessageSize: 64)
        #expect(invalid.received(clientFrame(.text, Array("€".utf8.dropLast()))) == .fail(.invalidFramePayloadData, reason: "invalid UTF-8 in text message"))
        var tooBig = WebSocketStateMachine(maxMessageSize: 4)
        guard case .fail(.messageTooBig, _) = tooBig.received(clientFrame(.text, Array("hello".utf8))) else {
            Issue.record("a 5-byte text over a 4-byte limit was not 1009"); return
        }
    }
}

@Suite struct HandshakeAcceptTests {
    private func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }

    /// FIPS 180-4's examples and the padding edges (55, 56 and 64 bytes: one or two blocks).
    @Test func sha1MatchesTheStandardsVectors() {
        #expect(hex(SHA1.digest([])) == "da39a3ee5e6b4b0d3255bfef95601890afd80709")
        #expect(hex(SHA1.digest(Array("abc".utf8))) == "a9993e364706816aba3e25717850c26c9cd0d89d")
        #expect(hex(SHA1.digest(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)))
                == "84983e441c3bd26ebaae4aa1f95129e5e54670f1")
        #expect(hex(SHA1.digest(Array(repeating: UInt8(ascii: "a"), count: 55))) == "c1c8bbdc22796e28c0e15163d20899b65621d65a")
        #expect(hex(SHA1.digest(Array(repeating: UInt8(ascii: "a"), count: 64))) == "0098ba824b5c16427bd7a1122a5a442a25ec644d")
        #expect(hex(SHA1.digest(Array(repeating: UInt8(ascii: "a"), count: 1_000))) == "291e9a6c66994949b57ba5e650361e98fc36b1ba")
    }

    /// RFC 6455 §1.3's example, then random keys against NIO's own upgrader.
    @Test func acceptValueAgreesWithTheRFCAndWithNIO() throws {
        #expect(WebSocketHandshakeRules.acceptValue(forKey: "dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
        let loop = EmbeddedEventLoop()
        let channel = EmbeddedChannel(loop: loop)
        let nio = NIOWebSocketServerUpgrader(shouldUpgrade: { channel, _ in channel.eventLoop.makeSucceededFuture(HTTPHeaders()) },
                                             upgradePipelineHandler: { channel, _ in channel.eventLoop.makeSucceededVoidFuture() })
        for _ in 0..<200 {
            let key = Data((0..<16).map { _ in UInt8.random(in: 0...255) }).base64EncodedString()
            let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: "/", headers: [
                "Sec-WebSocket-Key": key, "Sec-WebSocket-Version": "13",
            ])
            let headers = try nio.buildUpgradeResponse(channel: channel, upgradeRequest: head, initialResponseHeaders: [:]).wait()
            #expect(headers["Sec-WebSocket-Accept"] == [WebSocketHandshakeRules.acceptValue(forKey: key)], "key \(key)")
        }
    }
}

@Suite struct WebSocketFrameParserTests {
    /// What NIO's decoder makes of `bytes` fed in `pieces`: its frames, then its error if any.
    private func nio(_ pieces: [ByteBuffer], maxFrameSize: Int) -> ([WebSocketInboundFrame], NIOWebSocketError?) {
        final class Collect: ChannelInboundHandler {
            typealias InboundIn = WebSocketFrame
            var frames: [WebSocketFrame] = []
            var error: NIOWebSocketError?
            func channelRead(context: ChannelHandlerContext, data: NIOAny) { frames.append(unwrapInboundIn(data)) }
            func errorCaught(context: ChannelHandlerContext, error: any Error) { self.error = error as? NIOWebSocketError }
        }
        let channel = EmbeddedChannel()
        let collect = Collect()
        try! channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(WebSocketFrameDecoder(maxFrameSize: maxFrameSize)))
        try! channel.pipeline.syncOperations.addHandler(collect)
        for piece in pieces { _ = try? channel.writeInbound(piece) }
        _ = try? channel.finish(acceptAlreadyClosed: true)
        return (collect.frames.map(WebSocketInboundFrame.init), collect.error)
    }

    /// What our parser makes of the same pieces, one read each.
    private func ours(_ pieces: [ByteBuffer], maxFrameSize: Int) -> ([WebSocketInboundFrame], NIOWebSocketError?) {
        var parser = WebSocketFrameParser(maxFrameSize: maxFrameSize)
        var frames: [WebSocketInboundFrame] = []
        for piece in pieces {
            parser.append(piece)
            do {
                while let frame = try parser.next() { frames.append(frame) }
            } catch {
                return (frames, error)
            }
            parser.endOfRead()
        }
        return (frames, nil)
    }

    /// Frames of every length encoding, masked and not, control and data, split at many points
    /// into two reads (and into one-byte reads): the same frames as NIO's decoder.
    @Test func framesAgreeWithNIOsDecoderWhereverTheReadsSplit() {
        let key = WebSocketMaskingKey([1, 2, 3, 4])
        let frames = [
            WebSocketFrame(fin: true, opcode: .text, maskKey: key, data: ByteBuffer(string: "hello")),
            WebSocketFrame(fin: false, rsv1: true, opcode: .binary, maskKey: key, data: ByteBuffer(repeating: 7, count: 200)),
            WebSocketFrame(fin: true, opcode: .continuation, data: ByteBuffer(repeating: 9, count: 65_540)),
            WebSocketFrame(fin: true, opcode: .ping, data: ByteBuffer(bytes: [1, 2])),
            WebSocketFrame(fin: true, opcode: .connectionClose, maskKey: key, data: ByteBuffer(bytes: closePayload(1000))),
            WebSocketFrame(fin: true, opcode: .text, data: ByteBuffer()),
        ]
        var all = ByteBuffer()
        for frame in frames { all.writeWebSocketFrame(frame) }
        // On the wire a masked payload is masked: NIO's decoder, given it all at once, is the reference.
        let expected = nio([all], maxFrameSize: 1 << 20).0
        #expect(expected.map(\.unmaskedPayload) == frames.map(\.data) && expected.map(\.opcode) == frames.map(\.opcode))
        let splits = Array(0...300) + Array((all.readableBytes - 40)...all.readableBytes) + [65_000, 65_560, 65_600]
        for split in splits {
            let pieces = [all.getSlice(at: 0, length: split)!, all.getSlice(at: split, length: all.readableBytes - split)!]
            let (got, error) = ours(pieces, maxFrameSize: 1 << 20)
            #expect(error == nil, "split \(split)")
            #expect(got == expected, "split \(split)")
        }
        let small = all.getSlice(at: 0, length: 240)!  // the first frames, a byte a read
        let bytes = (0..<small.readableBytes).map { small.getSlice(at: $0, length: 1)! }
        #expect(ours(bytes, maxFrameSize: 1 << 20).0 == nio(bytes, maxFrameSize: 1 << 20).0)
        #expect(ours([all], maxFrameSize: 1 << 20).0 == nio([all], maxFrameSize: 1 << 20).0)
    }

    /// A frame is refused as soon as its header is in, with NIO's error, and nothing after it is taken.
    @Test func badHeadersAreRefusedBeforeTheirPayloadArrives() throws {
        let cases: [([UInt8], NIOWebSocketError)] = [
            ([0x82, 0x7E, 0x01, 0x00], .invalidFrameLength),                       // 256 > 255, 16-bit length
            ([0x82, 0x7F, 0, 0, 0, 0, 0, 0, 0x01, 0x00], .invalidFrameLength),     // 64-bit length
            ([0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 0], .invalidFrameLength),         // over Int.max
            ([0x09, 0x00], .fragmentedControlFrame),                               // ping without FIN
            ([0x89, 0x7E, 0x00, 0x7E], .multiByteControlFrameLength),              // a 126-byte ping
        ]
        for (header, expected) in cases {
            let pieces = [ByteBuffer(bytes: [0x81, 0x00] + header)]   // an empty text frame first
            let (frames, error) = ours(pieces, maxFrameSize: 255)
            #expect(frames.count == 1 && error == expected, "\(header)")
            #expect(nio(pieces, maxFrameSize: 255).1 == expected, "NIO agrees on \(header)")
        }
        // Without a limit of its own a frame is still refused past largestFrameSize, before its
        // payload: a ByteBuffer cannot hold 4 GiB, and growing one past it stops the process.
        let huge: [UInt8] = [0x82, 0x7F] + withUnsafeBytes(of: UInt64(3 << 30).bigEndian, Array.init)
        #expect(ours([ByteBuffer(bytes: huge)], maxFrameSize: .max).1 == .invalidFrameLength)
        #expect(WebSocketFrameParser(maxFrameSize: .max).maxFrameSize == WebSocketFrameParser.largestFrameSize)
        var machine = WebSocketStateMachine(maxMessageSize: .max)
        guard case .fail(.messageTooBig, _) = machine.decodingFailed(NIOWebSocketError.invalidFrameLength, now: .uptimeNanoseconds(0)) else {
            Issue.record("an oversized frame was not 1009"); return
        }
        #expect(WebSocketMessageAssembler(maxMessageSize: .max).maxMessageSize == Int(UInt32.max), "a message fits one ByteBuffer")

        var parser = WebSocketFrameParser(maxFrameSize: 255)
        parser.append(ByteBuffer(bytes: [0x09, 0x00]))
        #expect(throws: NIOWebSocketError.fragmentedControlFrame) { try parser.next() }
        parser.append(ByteBuffer(bytes: [0x81, 0x00]))
        #expect(try parser.next() == nil, "nothing is taken after a refused frame")
    }
}
