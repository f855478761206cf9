import HTTPTypes
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOWebSocket
import Star
import StarServer
import StarWebSocket
@testable import StarWebSocketClient
import Synchronization
import Testing

/// The client against Star's own server: every option of the handshake and the session.
@Suite struct WebSocketClientTests {
    struct Point: Codable, Equatable { var x: Int; var y: Int }

    @concurrent static func echo(ws: WebSocket) async throws {
        try await ws.connect(subprotocol: ws.subprotocols.last)
        for try await message in ws.messages { try await ws.send(message) }
    }

    @concurrent static func headers(ws: WebSocket) async throws {
        try await ws.connect(headers: [HTTPField.Name("X-Answer")!: "42"])
        let fields = ws.request.headers
        try await ws.send(text: "\(fields[HTTPField.Name("X-Token")!] ?? "-") \(fields[.origin] ?? "-") "
            + "\(fields[.secWebSocketExtensions] ?? "-")")
    }

    @concurrent static func deny(ws: WebSocket) async throws {
        try ws.deny(HTTPError(.unauthorized, detail: "token required").response)
    }

    @concurrent static func closeWithCode(ws: WebSocket) async throws {
        try await ws.connect()
        await ws.close(code: WebSocketCloseCode(4001), reason: "bye")
    }

    @concurrent static func big(ws: WebSocket) async throws {
        try await ws.connect()
        try await ws.send(text: String(repeating: "x", count: 2000))
        _ = try? await ws.receive()
    }

    /// Sends back the code and reason the client closed with, over a second connection.
    static let lastClose = Mutex<WebSocketDisconnect?>(nil)
    @concurrent static func recordClose(ws: WebSocket) async throws {
        try await ws.connect()
        do {
            while true { _ = try await ws.receive() }
        } catch let disconnect as WebSocketDisconnect {
            lastClose.withLock { $0 = disconnect }
        }
    }

    /// The same for the connection a reconnecting loop leaves by `break`.
    static let leftClose = Mutex<WebSocketDisconnect?>(nil)
    @concurrent static func recordLeft(ws: WebSocket) async throws {
        try await ws.connect()
        do {
            while true { _ = try await ws.receive() }
        } catch let disconnect as WebSocketDisconnect {
            leftClose.withLock { $0 = disconnect }
        }
    }

    @concurrent static func redirect() async -> Response {
        Response(status: .found, headers: [.location: "/echo"])
    }

    static let app = App(routes: [
        Route("/echo", .get, echo), Route("/headers", .get, headers), Route("/deny", .get, deny),
        Route("/close", .get, closeWithCode), Route("/big", .get, big), Route("/record", .get, recordClose), Route("/left", .get, recordLeft),
        Route("/redirect", .get, redirect),
    ])

    @Test func echoesTextBinaryAndJSON() async throws {
        try await withServer(Self.app) { port in
            try await WebSocketClient.connect(to: "ws://127.0.0.1:\(port)/echo") { ws in
                try await ws.send(text: "hello")
                #expect(try await ws.receiveText() == "hello")
                try await ws.send(bytes: [1, 2, 3])
                #expect(try await ws.receiveBytes() == ByteBuffer(bytes: [1, 2, 3]))
                try await ws.send(json: Point(x: 1, y: 2))
                #expect(try await ws.receiveJSON(as: Point.self) == Point(x: 1, y: 2))
                try await ws.send(text: "")
                #expect(try await ws.receive() == .text(""), "an empty message is a message")
            }
        }
    }

    @Test func offersSubprotocolsAndReadsTheChosenOne() async throws {
        try await withServer(Self.app) { port in
            let configuration = WebSocketClientConfiguration(subprotocols: ["chat.v1", "chat.v2"])
            let chosen = try await WebSocketClient.connect(to: "ws://127.0.0.1:\(port)/echo", configuration: configuration) { ws in
                ws.subprotocol
            }
            #expect(chosen == "chat.v2")
            let none = try await WebSocketClient.connect(to: "ws://127.0.0.1:\(port)/echo") { ws in ws.subprotocol }
            #expect(none == nil)
        }
    }

    @Test func sendsHeadersAndOriginAndReadsTheResponseHeaders() async throws {
        try await withServer(Self.app) { port in
            var configuration = WebSocketClientConfiguration(origin: "https://app.example")
            configuration.headers[HTTPField.Name("X-Token")!] = "secret"
            configuration.options.perMessageDeflate = false
            try await WebSocketClient.connect(to: "ws://127.0.0.1:\(port)/headers", configuration: configuration) { ws in
                let seen = try await ws.receiveText()
                #expect(seen == "secret https://app.example -", "no extension offered when deflate is off")
                #expect(ws.responseHeaders[HTTPField.Name("X-Answer")!] == "42")
                #expect(!ws.isCompressed)
            }
        }
    }

    @Test func negotiatesPerMessageDeflate() async throws {
        try await withServer(Self.app) { port in
            try await WebSocketClient.connect(to: "ws://127.0.0.1:\(port)/headers") { ws in
                let seen = try await ws.receiveText()
                #expect(seen.hasSuffix(" permessage-deflate; server_max_window_bits=12; client_max_window_bits"))
                #expect(ws.isCompressed)
                #expect(ws.responseHeaders[.secWebSocketExtensions]?.hasPrefix("permessage-deflate") == true)
            }
            try await WebSocketClient.connect(to: "ws://127.0.0.1:\(port)/echo") { ws in
                #expect(ws.isCompressed)
                let large = String(repeating: "compress me ", count: 10_000)
                for _ in 0..<3 {  // several messages: the server's inflater and ours keep their state right
                    try await ws.send(text: large)
                    #expect(try await ws.receiveText() == large)
                }
                let bytes = (0..<100_000).map { UInt8($0 % 251) }
                try await ws.send(bytes: bytes)
                #expect(try await ws.receiveBytes() == ByteBuffer(bytes: bytes))
            }
        }
    }

    @Test func aDenialCarriesStatusHeadersAndBody() async throws {
        try await withServer(Self.app) { port in
            let error = await #expect(throws: WebSocketClientError.self) {
                try await WebSocketClient.connect(to: "ws://127.0.0.1:\(port)/deny") { _ in }
            }
            #expect(error?.kind == .handshakeDenied)
            #expect(error?.status == .unauthorized)
            #expect(error?.headers[.contentType]?.hasPrefix("application/json") == true)
            #expect(error.flatMap { $0.body.map { String(buffer: $0) } }?.contains("token required") == true)
        }
    }

    @Test func theServersCloseCodeAndReasonReachTheClient() async throws {
        try await withServer(Self.app) { port in
            try await WebSocketClient.connect(to: "ws://127.0.0.1:\(port)/close") { ws async throws in
                await #expect(throws: WebSocketDisconnect(code: WebSocketCloseCode(4001), reason: "bye")) { try await ws.receive() }
                #expect(ws.disconnect == WebSocketDisconnect(code: WebSocketCloseCode(4001), reason: "bye"))
                await #expect(throws: WebSocketDisconnect.self) { try await ws.send(text: "late") }
            }
        }
    }

    @Test func theClientsCloseCodeAndReasonReachTheServer() async throws {
        try await withServer(Self.app) { port in
            try await WebSocketClient.connect(to: "ws://127.0.0.1:\(port)/record") { ws in
                try await ws.send(text: "one")
                await ws.close(code: WebSocketCloseCode(4002), reason: "done here")
            }
            #expect(Self.lastClose.withLock { $0 } == WebSocketDisconnect(code: WebSocketCloseCode(4002), reason: "done here"))
        }
    }

    @Test func aMessageOverTheLimitClosesWith1009() async throws {
        try await withServer(Self.app) { port in
            var configuration = WebSocketClientConfiguration()
            configuration.options.maxMessageSize = 1000
            try await WebSocketClient.connect(to: "ws://127.0.0.1:\(port)/big", configuration: configuration) { ws async throws in
                let error = await #expect(throws: WebSocketDisconnect.self) { try await ws.receive() }
                #expect(error?.code == .messageTooBig)
            }
        }
    }

    @Test func redirectsAreFollowedOnlyWhenAsked() async throws {
        try await withServer(Self.app) { port in
            let error = await #expect(throws: WebSocketClientError.self) {
                try await WebSocketClient.connect(to: "ws://127.0.0.1:\(port)/redirect") { _ in }
            }
            #expect(error?.kind == .handshakeDenied && error?.status == .found && error?.headers[.location] == "/echo")
            let configuration = WebSocketClientConfiguration(followRedirects: 1)
            try await WebSocketClient.connect(to: "ws://127.0.0.1:\(port)/redirect", configuration: configuration) { ws in
                try await ws.send(text: "after a redirect")
                #expect(try await ws.receiveText() == "after a redirect")
            }
        }
    }

    @Test func reconnectsAfterTheServerCloses() async throws {
        try await withServer(Self.app) { port in
            var opened = 0
            for try await ws in WebSocketClient.connections(to: "ws://127.0.0.1:\(port)/close") {
                opened += 1
                for try await _ in ws.messages {}
                #expect(ws.disconnect?.code == WebSocketCloseCode(4001))
                if opened == 3 { break }
            }
            #expect(opened == 3)
        }
    }

    @Test func aConnectionLeftByBreakClosesWith1001() async throws {
        try await withServer(Self.app) { port in
            for try await ws in WebSocketClient.connections(to: "ws://127.0.0.1:\(port)/left") {
                try await ws.send(text: "one")
                break
            }
            let deadline = ContinuousClock.now + .seconds(5)
            while Self.leftClose.withLock({ $0 }) == nil, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
            #expect(Self.leftClose.withLock { $0 }?.code == .goingAway)
        }
    }

    @Test func reconnectingStopsOnCancellationWhileNoServerAnswers() async throws {
        let port = try await FakeServer.unusedPort()
        let feed = Task {
            var opened = 0
            for try await _ in WebSocketClient.connections(to: "ws://127.0.0.1:\(port)/",
                                                           backoff: .init(initial: .milliseconds(20), maximum: .milliseconds(50))) {
                opened += 1
            }
            return opened
        }
        try await Task.sleep(for: .milliseconds(300))
        feed.cancel()
        #expect(try await feed.value == 0)
    }

    @Test func aDeniedHandshakeEndsTheReconnectingForm() async throws {
        try await withServer(Self.app) { port in
            let error = await #expect(throws: WebSocketClientError.self) {
                for try await _ in WebSocketClient.connections(to: "ws://127.0.0.1:\(port)/deny") {}
            }
            #expect(error?.status == .unauthorized)
        }
    }

    @Test func invalidURLsAreTypedErrors() async throws {
        for url in ["http//x", "ftp://host/", "ws://", "ws://host:0/", "ws://[::1/"] {
            let error = await #expect(throws: WebSocketClientError.self) { try await WebSocketClient.connect(to: url) { _ in } }
            #expect(error?.kind == .invalidURL, "\(url)")
        }
        let v6 = try WebSocketURL("ws://[::1]:9000/a?b#c")
        #expect(!v6.isSecure && v6.host == "::1" && v6.port == 9000 && v6.target == "/a?b" && v6.hostField == "[::1]:9000")
        #expect(try WebSocketURL("wss://example.com?x=1").target == "/?x=1")
        #expect(try WebSocketURL("wss://example.com").hostField == "example.com")
    }

    @Test func wssWithoutTheTLSTraitSaysHowToTurnItOn() async throws {
        guard !ClientTLS.isAvailable else { return }  // this build has TLS: the Examples' tests cover wss://
        let error = await #expect(throws: WebSocketClientError.self) {
            try await WebSocketClient.connect(to: "wss://127.0.0.1:1/") { _ in }
        }
        #expect(error?.kind == .tlsUnavailable)
        #expect(error?.description.contains("traits: [\"TLS\"]") == true)
    }
}

/// The client against servers that misbehave: each ends in a typed error, within its deadline.
@Suite struct WebSocketClientFaultTests {
    @Test func aRefusedConnectionIsConnectionFailed() async throws {
        let port = try await FakeServer.unusedPort()
        let error = await #expect(throws: WebSocketClientError.self) {
            try await WebSocketClient.connect(to: "ws://127.0.0.1:\(port)/") { _ in }
        }
        #expect(error?.kind == .connectionFailed)
    }

    @Test func aServerThatNeverAnswersTimesOut() async throws {
        try await FakeServer.with(.silent) { port in
            var configuration = WebSocketClientConfiguration()
            configuration.handshakeTimeout = .milliseconds(200)
            let error = await #expect(throws: WebSocketClientError.self) {
                try await WebSocketClient.connect(to: "ws://127.0.0.1:\(port)/", configuration: configuration) { _ in }
            }
            #expect(error?.kind == .handshakeTimeout)
        }
    }

    @Test func aServerThatSendsGarbageIsAnInvalidResponse() async throws {
        try await FakeServer.with(.garbage) { port in
            let error = await #expect(throws: WebSocketClientError.self) {
                try await WebSocketClient.connect(to: "ws://127.0.0.1:\(port)/") { _ in }
            }
            #expect(error?.kind == .invalidHandshakeResponse)
        }
    }

    @Test func aWrongAcceptKeyIsAnInvalidResponse() async throws {
        try await FakeServer.with(.wrongAccept) { port in
            let error = await #expect(throws: WebSocketClientError.self) {
                try await WebSocketClient.connect(to: "ws://127.0.0.1:\(port)/") { _ in }
            }
            #expect(error?.kind == .invalidHandshakeResponse)
        }
    }

    @Test func aServerThatClosesMidFrameEndsWith1006() async throws {
        try await FakeServer.with(.closeMidFrame) { port in
            try await WebSocketClient.connect(to: "ws://127.0.0.1:\(port)/") { ws async throws in
                let error = await #expect(throws: WebSocketDisconnect.self) { try await ws.receive() }
                #expect(error?.code == .abnormalClosure)
            }
        }
    }

    @Test func aMaskedFrameFromTheServerClosesWith1002() async throws {
        try await FakeServer.with(.maskedFrame) { port in
            try await WebSocketClient.connect(to: "ws://127.0.0.1:\(port)/") { ws async throws in
                let error = await #expect(throws: WebSocketDisconnect.self) { try await ws.receive() }
                #expect(error?.code == .protocolError)
            }
        }
    }

    @Test func anUnansweredKeepalivePingClosesWith1011() async throws {
        try await FakeServer.with(.silentAfterUpgrade) { port in
            var configuration = WebSocketClientConfiguration()
            configuration.options.pingInterval = .milliseconds(50)
            configuration.options.pingTimeout = .milliseconds(100)
            configuration.options.closeTimeout = .milliseconds(200)
            try await WebSocketClient.connect(to: "ws://127.0.0.1:\(port)/", configuration: configuration) { ws async throws in
                let error = await #expect(throws: WebSocketDisconnect.self) { try await ws.receive() }
                #expect(error?.code == .internalServerError && error?.reason == "keepalive ping timeout")
            }
        }
    }
}

/// A TCP server on 127.0.0.1 that plays one misbehaviour.
enum FakeServer {
    enum Behaviour: Sendable {
        /// Reads the handshake and never answers.
        case silent
        /// Answers the handshake with bytes that are not HTTP.
        case garbage
        /// Answers 101 with a wrong `Sec-WebSocket-Accept`.
        case wrongAccept
        /// Accepts, sends the start of a frame, and closes the connection.
        case closeMidFrame
        /// Accepts and sends a masked text frame.
        case maskedFrame
        /// Accepts and then reads nothing and answers nothing (no pong, no close).
        case silentAfterUpgrade
    }

    static func with(_ behaviour: Behaviour, _ body: (Int) async throws -> Void) async throws {
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try configure(channel, behaviour) }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        do {
            try await body(channel.localAddress?.port ?? 0)
        } catch {
            try? await channel.close()
            throw error
        }
        try await channel.close()
    }

    /// A port with nothing listening (bound, then closed).
    static func unusedPort() async throws -> Int {
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton).bind(host: "127.0.0.1", port: 0).get()
        let port = channel.localAddress?.port ?? 0
        try await channel.close()
        return port
    }

    private static func configure(_ channel: any Channel, _ behaviour: Behaviour) throws {
        let sync = channel.pipeline.syncOperations
        switch behaviour {
        case .silent:
            break
        case .garbage:
            try sync.addHandler(Reply(ByteBuffer(string: "\u{0}\u{1}garbage, not HTTP\r\n\r\n")))
        case .wrongAccept:
            try sync.addHandler(Reply(ByteBuffer(string: "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                + "Connection: Upgrade\r\nSec-WebSocket-Accept: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")))
        case .closeMidFrame, .maskedFrame, .silentAfterUpgrade:
            let upgrader = NIOWebSocketServerUpgrader(
                shouldUpgrade: { channel, _ in channel.eventLoop.makeSucceededFuture(HTTPHeaders()) },
                upgradePipelineHandler: { channel, _ in
                    // NIO's upgrader added its frame codec: raw bytes go out from the encoder's place, past it.
                    let raw = { (bytes: [UInt8]) in
                        channel.eventLoop.makeCompletedFuture {
                            let encoder = try channel.pipeline.syncOperations.context(handlerType: WebSocketFrameEncoder.self)
                            encoder.writeAndFlush(NIOAny(ByteBuffer(bytes: bytes)), promise: nil)
                        }
                    }
                    switch behaviour {
                    case .closeMidFrame:
                        // A text frame that announces 256 bytes, then 3 of them.
                        return raw([0x81, 0x7E, 0x01, 0x00, 0x61, 0x62, 0x63]).flatMap { channel.close() }
                    case .maskedFrame:
                        return raw([0x81, 0x81, 1, 2, 3, 4, 0x61 ^ 1])
                    default:
                        return channel.setOption(.autoRead, value: false)
                    }
                })
            try sync.configureHTTPServerPipeline(withServerUpgrade: (upgraders: [upgrader], completionHandler: { _ in }))
        }
    }

    /// Answers the first bytes it reads with `reply`.
    private final class Reply: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        let reply: ByteBuffer
        var answered = false
        init(_ reply: ByteBuffer) { self.reply = reply }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            guard !answered else { return }
            answered = true
            context.writeAndFlush(wrapOutboundOut(reply), promise: nil)
        }
    }
}
