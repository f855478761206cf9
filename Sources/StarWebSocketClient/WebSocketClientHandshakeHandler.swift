import HTTPTypes
import NIOCore
import NIOHTTP1

/// Sends the opening handshake once the channel is active and reads the server's answer: a `101`
/// hands the channel to `upgrade` (which switches the pipeline to WebSocket frames at once: NIO's
/// HTTP decoder keeps the bytes after the 101 until it is removed, then passes them on); any other status fails `outcome` with the status, the header
/// fields and the body (its first 64 KiB). It fails `outcome` too when the connection closes
/// first, the answer is not HTTP, or the handshake timeout passes.
final class WebSocketClientHandshakeHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundOut = HTTPClientRequestPart

    /// The most of a denial's body that is kept.
    static let maxBodySize = 64 * 1024

    let outcome: EventLoopPromise<WebSocketClient>
    private let request: HTTPRequestHead
    private let timeout: Duration
    private let upgrade: (HTTPResponseHead) throws -> WebSocketClient
    private var head: HTTPResponseHead?
    private var body: ByteBuffer?
    private var timer: Scheduled<Void>?
    private var done = false

    init(request: HTTPRequestHead, timeout: Duration, outcome: EventLoopPromise<WebSocketClient>,
         upgrade: @escaping (HTTPResponseHead) throws -> WebSocketClient) {
        self.request = request
        self.timeout = timeout
        self.outcome = outcome
        self.upgrade = upgrade
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { sendRequest(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        sendRequest(context: context)
        context.fireChannelActive()
    }

    /// Sends the request and starts the handshake timeout (the connect timeout came before).
    private func sendRequest(context: ChannelHandlerContext) {
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        timer = context.eventLoop.scheduleTask(in: TimeAmount(timeout)) {
            let (handler, context) = loopBound.value
            handler.fail(.handshakeTimeout(handler.timeout), context: context)
        }
        context.write(wrapOutboundOut(.head(request)), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !done else { return }
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            if head.status != .switchingProtocols { body = context.channel.allocator.buffer(capacity: 0) }
        case .body(var part):
            if var body, body.readableBytes < Self.maxBodySize {
                body.writeBuffer(&part)
                if body.readableBytes > Self.maxBodySize { body.moveWriterIndex(to: body.readerIndex + Self.maxBodySize) }
                self.body = body
            }
        case .end:
            guard let head else { return }
            done = true
            timer?.cancel()
            guard head.status == .switchingProtocols else {
                outcome.fail(WebSocketClientError.handshakeDenied(Self.status(head), Self.fields(head.headers), body ?? ByteBuffer()))
                context.close(promise: nil)
                return
            }
            do {
                outcome.succeed(try upgrade(head))
            } catch {
                outcome.fail(error)
                context.close(promise: nil)
            }
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if error is HTTPParserError {
            fail(.invalidHandshakeResponse("the answer is not HTTP (\(error))"), context: context)
        } else {
            fail(.connectionFailed(request.headers.first(name: "Host") ?? "the server", error), context: context)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        fail(.closedDuringHandshake, context: context)
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
    }

    private func fail(_ error: WebSocketClientError, context: ChannelHandlerContext) {
        guard !done else { return }
        done = true
        timer?.cancel()
        outcome.fail(error)
        context.close(promise: nil)
    }

    static func status(_ head: HTTPResponseHead) -> HTTPResponse.Status {
        HTTPResponse.Status(code: Int(head.status.code), reasonPhrase: head.status.reasonPhrase)
    }

    static func fields(_ headers: HTTPHeaders) -> HTTPFields {
        var fields = HTTPFields()
        for (name, value) in headers {
            if let name = HTTPField.Name(name) { fields.append(HTTPField(name: name, value: value)) }
        }
        return fields
    }
}
