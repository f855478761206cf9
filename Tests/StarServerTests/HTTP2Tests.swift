import ArgumentParser
import NIOCore
import NIOEmbedded
import NIOHTTP1
import NIOTLS
import Star
@testable import StarServer
import StarWebSocket
import Testing

/// HTTP/2's parts that can be played in memory (swift-nio's style: EmbeddedChannel), the options,
/// and what the server advertises. The protocol itself is played by real peers: curl, nghttp,
/// h2load and an RFC 8441 client on PyPI's h2 (Tests/Peers/test_http2.py), and Chromium
/// (Tests/Browser/test_http2_browser.py).
@Suite struct HTTP2Tests {
    // MARK: Options

    @Test func http2IsOnByDefaultWithTheProtocolsDefaults() throws {
        let http2 = try ServerOptions.parse([]).configuration.http2
        #expect(http2 == HTTP2Options())
        #expect(http2.enabled && http2.maxConcurrentStreams == 100)
        #expect(http2.initialWindowSize == 65_535 && http2.maxHeaderListSize == 16_384)
    }

    @Test func http2OptionsMapToTheConfiguration() throws {
        let http2 = try ServerOptions.parse([
            "--no-http2", "--http2-max-concurrent-streams", "8", "--http2-initial-window-size", "1048576",
            "--http2-max-header-list-size", "8192",
        ]).configuration.http2
        #expect(!http2.enabled && http2.maxConcurrentStreams == 8)
        #expect(http2.initialWindowSize == 1 << 20 && http2.maxHeaderListSize == 8192)
        let fromEnvironment = ServerOptions.arguments([], environment: ["STAR_HTTP2": "false", "STAR_HTTP2_MAX_CONCURRENT_STREAMS": "7"])
        #expect(fromEnvironment == ["--http2-max-concurrent-streams", "7", "--no-http2"])
    }

    @Test(arguments: [["--http2-max-concurrent-streams", "0"], ["--http2-initial-window-size", "2147483648"],
                      ["--http2-initial-window-size", "0"], ["--http2-max-header-list-size", "100"]])
    func badHTTP2ValuesAreRejected(_ arguments: [String]) {
        #expect(throws: (any Error).self) { try ServerOptions.parse(arguments) }
    }

    // MARK: Choosing the version

    /// Records which version a selector chose.
    final class Choice {
        var version: String?
    }

    private func selector(_ mode: HTTPVersionSelector.Mode, _ choice: Choice) -> HTTPVersionSelector {
        HTTPVersionSelector(mode: mode, switchToHTTP1: { choice.version = "1.1" }, switchToHTTP2: { choice.version = "2" })
    }

    @Test func anHTTP1RequestIsPassedOnToHTTP1() throws {
        let choice = Choice()
        let channel = EmbeddedChannel(handler: selector(.priorKnowledge, choice))
        try channel.writeInbound(ByteBuffer(string: "GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
        #expect(choice.version == "1.1")
        #expect(try channel.readInbound(as: ByteBuffer.self) == ByteBuffer(string: "GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
        #expect(throws: ChannelPipelineError.self) { try channel.pipeline.syncOperations.context(handlerType: HTTPVersionSelector.self) }
    }

    @Test func thePrefaceChoosesHTTP2EvenWhenItArrivesInPieces() throws {
        let choice = Choice()
        let channel = EmbeddedChannel(handler: selector(.priorKnowledge, choice))
        let preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
        try channel.writeInbound(ByteBuffer(string: String(preface.prefix(10))))
        #expect(choice.version == nil, "a prefix of the preface decides nothing")
        #expect(try channel.readInbound(as: ByteBuffer.self) == nil)
        try channel.writeInbound(ByteBuffer(string: String(preface.dropFirst(10)) + "rest"))
        #expect(choice.version == "2")
        #expect(try channel.readInbound(as: ByteBuffer.self) == ByteBuffer(string: preface + "rest"), "the whole preface goes on")
    }

    @Test func aMethodThatStartsLikeThePrefaceIsHTTP1() throws {
        let choice = Choice()
        let channel = EmbeddedChannel(handler: selector(.priorKnowledge, choice))
        try channel.writeInbound(ByteBuffer(string: "PRI * HTTP/1.1\r\n"))
        #expect(choice.version == "1.1")
    }

    @Test(arguments: [("h2", "2"), ("http/1.1", "1.1"), (nil, "1.1")] as [(String?, String)])
    func alpnChooses(_ negotiated: String?, _ expected: String) throws {
        let choice = Choice()
        let channel = EmbeddedChannel(handler: selector(.alpn, choice))
        channel.pipeline.fireUserInboundEventTriggered(TLSUserEvent.handshakeCompleted(negotiatedProtocol: negotiated))
        #expect(choice.version == expected)
    }

    // MARK: A WebSocket on a stream

    /// Collects the user events that reach the end of the pipeline.
    final class EventRecorder: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        var inputClosed = 0
        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            if case ChannelEvent.inputClosed = event { inputClosed += 1 }
        }
    }

    @Test func streamDataIsTheWebSocketsBytesAndEndStreamClosesInput() throws {
        let recorder = EventRecorder()
        let channel = EmbeddedChannel(handlers: [HTTP2WebSocketStreamHandler(), recorder])
        try channel.writeInbound(HTTPServerRequestPart.body(ByteBuffer(string: "frame bytes")))
        #expect(try channel.readInbound(as: ByteBuffer.self) == ByteBuffer(string: "frame bytes"))
        #expect(recorder.inputClosed == 0)
        try channel.writeInbound(HTTPServerRequestPart.end(nil))
        #expect(recorder.inputClosed == 1)
    }

    @Test func closingTheOutputEndsTheStreamOnceAndClosingAllEndsItFirst() throws {
        let channel = EmbeddedChannel(handler: HTTP2WebSocketStreamHandler())
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        try channel.writeOutbound(ByteBuffer(string: "close frame"))
        guard case .body(.byteBuffer(let bytes)) = try channel.readOutbound(as: HTTPServerResponsePart.self) else {
            Issue.record("a write is a body part")
            return
        }
        #expect(bytes == ByteBuffer(string: "close frame"))
        channel.pipeline.close(mode: .output, promise: nil)
        guard case .end(nil) = try channel.readOutbound(as: HTTPServerResponsePart.self) else {
            Issue.record("closing the output ends the response (END_STREAM)")
            return
        }
        #expect(channel.isActive, "the stream stays open for the peer's close frame")
        #expect(throws: ChannelError.outputClosed) { try channel.writeOutbound(ByteBuffer(string: "late")) }
        try channel.close().wait()
        #expect(try channel.readOutbound(as: HTTPServerResponsePart.self) == nil, "END_STREAM is sent once")

        let other = EmbeddedChannel(handler: HTTP2WebSocketStreamHandler())
        try other.close().wait()
        guard case .end(nil) = try other.readOutbound(as: HTTPServerResponsePart.self) else {
            Issue.record("closing a stream whose output is open ends it first")
            return
        }
    }

    // MARK: What the server advertises

    /// The server's first SETTINGS frame, after a client's preface and empty SETTINGS.
    private func serverSettings(_ app: App) async throws -> [UInt16: UInt32] {
        try await withServer(app) { port in
            let socket = try RawSocket(port: port)
            try socket.send(bytes: Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8) + [0, 0, 0, 4, 0, 0, 0, 0, 0])
            let header = await socket.receive(atLeast: 9)
            try #require(header.count >= 9 && header[3] == 4, "the server's first frame is SETTINGS")
            let length = Int(header[0]) << 16 | Int(header[1]) << 8 | Int(header[2])
            let frame = header.count >= 9 + length ? header : header + (await socket.receive(atLeast: 9 + length - header.count))
            var settings: [UInt16: UInt32] = [:]
            for offset in stride(from: 9, to: 9 + length, by: 6) {
                let id = UInt16(frame[offset]) << 8 | UInt16(frame[offset + 1])
                settings[id] = frame[(offset + 2)..<(offset + 6)].reduce(0) { $0 << 8 | UInt32($1) }
            }
            return settings
        }
    }

    @Test func extendedConnectIsAdvertisedOnlyWhenTheAppHasAWebSocketRoute() async throws {
        let http = try await serverSettings(App(routes: [Route("/", .get, { "hi" })]))
        #expect(http[3] == 100 && http[4] == 65_535 && http[6] == 16_384, "\(http)")
        #expect(http[8] == nil, "no WebSocket route: SETTINGS_ENABLE_CONNECT_PROTOCOL must not be promised")
        let ws = try await serverSettings(App(routes: [Route("/ws", .get, { (ws: WebSocket) in try await ws.connect() })]))
        #expect(ws[8] == 1)
    }
}
