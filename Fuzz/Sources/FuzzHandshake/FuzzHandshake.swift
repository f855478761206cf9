// Request head bytes → NIO's HTTP/1 parser (the server's decoder, fed in pieces) → what
// HTTPConnectionHandler and HTTPConnection do with each request: the HTTPTypes conversion,
// forwarding headers, the WebSocket handshake checks, NIO's Sec-WebSocket-Accept computation and
// permessage-deflate negotiation (then a deflate/inflate round trip with the agreed windows).
//
// Input: one flags byte, then the bytes a client sends.
//   bit 0      the peer is a trusted proxy (forwarding headers count)
//   bit 1      the connection is TLS (scheme https / wss)
//   bits 2–4   piece size for feeding the parser (see chunkSize)

import FuzzSupport
import HTTPTypes
import NIOCore
import NIOEmbedded
import NIOHTTP1
import NIOHTTPTypesHTTP1
import NIOWebSocket
@testable import Star
import Synchronization
@testable import StarServer
@testable import StarWebSocketEngine

/// What NIO's parser made of the bytes, in order.
final class PartCollector: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    var parts: [HTTPServerRequestPart] = []
    var failed = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) { parts.append(unwrapInboundIn(data)) }
    func errorCaught(context: ChannelHandlerContext, error: any Error) { failed = true }
}

/// A transport that is never used: `WebSocketHandshake` only needs one to exist.
struct UnusedTransport: WebSocketTransport {
    var defaultOptions: WebSocketOptions { WebSocketOptions() }
    func accept(headers: HTTPFields, options: WebSocketOptions) async throws {}
    func receive() async throws -> WebSocketMessage { .text("") }
    func send(_ message: WebSocketMessage) async throws {}
    func close(code: WebSocketCloseCode, reason: String) async {}
}

/// The upgrader HTTPConnection uses to compute `Sec-WebSocket-Accept` with NIO's code.
let acceptKeyUpgrader = NIOWebSocketServerUpgrader(
    maxFrameSize: 1 << 14, automaticErrorHandling: false,
    shouldUpgrade: { channel, _ in channel.eventLoop.makeSucceededFuture(HTTPHeaders()) },
    upgradePipelineHandler: { channel, _ in channel.eventLoop.makeSucceededVoidFuture() }
)

/// What libFuzzer runs on each input (its LLVMFuzzerTestOneInput).
func fuzzHandshake(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    var input = FuzzInput(data, size)
    let flags = input.byte()
    let trusted = flags & 1 != 0
    let scheme = flags & 2 != 0 ? "https" : "http"
    let bytes = input.rest

    let channel = EmbeddedChannel()
    defer { _ = try? channel.finish(acceptAlreadyClosed: true) }
    let collector = PartCollector()
    do {
        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .forwardBytes)))
        try channel.pipeline.syncOperations.addHandler(collector)
    } catch {
        fatalError("cannot set up the pipeline: \(error)")
    }
    for piece in bytes.pieces(of: chunkSize(flags >> 2)) {
        _ = try? channel.writeInbound(ByteBuffer(bytes: piece))
        if collector.failed { break }
    }

    var head: HTTPRequestHead?
    var body = ByteBuffer()
    for part in collector.parts {
        switch part {
        case .head(let next):
            head = next
            body.clear()
        case .body(var more):
            body.writeBuffer(&more)
        case .end:
            if let head { examine(head, body: body, trusted: trusted, scheme: scheme, channel: channel, payload: bytes) }
            head = nil
        }
    }
    return 0
}

/// What the server does with one complete request (HTTPConnectionHandler.deliver, then
/// HTTPConnection.run for a WebSocket handshake, then the upgrade that `connect()` runs).
func examine(_ head: HTTPRequestHead, body: ByteBuffer, trusted: Bool, scheme: String, channel: EmbeddedChannel,
             payload: ArraySlice<UInt8>) {
    guard let converted = try? HTTPRequest(head, secure: false, splitCookie: false) else { return }  // the server answers 400
    let upgrade = head.headers[canonicalForm: "upgrade"].contains { $0.lowercased() == "websocket" }
    var forwarded = ForwardedHeaders.apply(to: converted, clientAddress: "192.0.2.7:40000", scheme: scheme, trusted: trusted)
    if upgrade { forwarded.request.scheme = forwarded.request.scheme == "https" ? "wss" : "ws" }
    let request = Request(head: forwarded.request, body: body, clientAddress: forwarded.clientAddress)
    // What handlers and the router read from every request.
    check(request.path.count <= request.target.count, "the path is part of the target")
    _ = (request.queryString, request.url, request.cookies, request.scheme)

    guard upgrade, request.method == .get else { return }
    if let refusal = WebSocketHandshakeRules.check(request)?.response {
        check(refusal.status == .upgradeRequired || refusal.status == .badRequest, "refusal \(refusal.status)")
        return
    }
    let handshake = WebSocketHandshake(transport: UnusedTransport(), request: request)
    check(handshake.offeredSubprotocols.allSatisfy { !$0.isEmpty && !$0.contains(",") },
          "offered subprotocols \(handshake.offeredSubprotocols)")

    // checkHandshake accepted the request: NIO's accept computation must succeed too (a failure there
    // happens inside the handler's `connect()`, after the app took the request for a valid handshake).
    let accepted = Mutex<Result<HTTPHeaders, any Error>?>(nil)
    acceptKeyUpgrader.buildUpgradeResponse(channel: channel, upgradeRequest: head, initialResponseHeaders: HTTPHeaders())
        .whenComplete { result in accepted.withLock { $0 = result } }
    channel.embeddedEventLoop.run()
    switch accepted.withLock({ $0 }) {
    case .success(let headers):
        check(headers["Sec-WebSocket-Accept"].first?.utf8.count == 28, "accept key \(headers)")
    case .failure(let error):
        check(false, "checkHandshake accepted a handshake that NIO refuses: \(error); key \(head.headers["sec-websocket-key"]), version \(head.headers["sec-websocket-version"])")
    case nil:
        check(false, "NIO's accept computation did not complete")
    }

    let offers = head.headers[canonicalForm: "sec-websocket-extensions"].map(String.init)
    guard let agreement = PerMessageDeflate.negotiate(offers) else { return }
    check((8...15).contains(agreement.clientMaxWindowBits), "client window \(agreement.clientMaxWindowBits)")
    check((9...PerMessageDeflate.serverWindowBits).contains(agreement.serverMaxWindowBits), "server window \(agreement.serverMaxWindowBits)")
    let header = agreement.responseHeader
    check(header.utf8.allSatisfy { (0x20..<0x7F).contains($0) }, "response header \(header)")
    check(PerMessageDeflate.negotiate([header]) != nil, "our own response header \(header) does not parse as an offer")

    // Our compressor must stay within the window the client agreed to: the client inflates with it.
    let server = PerMessageDeflate(agreement)
    var message = ByteBuffer()
    while message.readableBytes < 3 * (1 << agreement.serverMaxWindowBits) {
        message.writeBytes(payload)
        message.writeInteger(UInt32(message.readableBytes))
    }
    guard let compressed = server.deflate(message, allocator: ByteBufferAllocator()) else { return }
    let client = PerMessageDeflate(PerMessageDeflate.Agreement(clientMaxWindowBits: agreement.serverMaxWindowBits))
    do {
        let inflated = try client.inflate(compressed, limit: message.readableBytes, allocator: ByteBufferAllocator())
        check(inflated == message, "deflate round trip changed the message")
    } catch {
        check(false, "deflate round trip failed: \(error)")
    }
}
