import HTTPTypes
import NIOCore
import NIOHTTP1
import NIOHTTPTypesHTTP1
import Star

/// One complete request as the connection handler hands it to the connection's task.
struct ReceivedRequest: Sendable {
    /// The request with its whole body.
    var request: Request
    /// The head as NIO parsed it.
    var head: HTTPRequestHead
    /// The version and keep-alive rules of HTTP/1.
    var version: HTTPVersion
    var keepAlive: Bool
    /// Whether the client asked for a WebSocket upgrade.
    var wantsWebSocket: Bool
}

/// Collects the parts of each request into a ``ReceivedRequest`` (enforcing the body limit
/// while the body streams in) and writes responses. Lives on the channel's event loop; the
/// connection's task talks to it only through ``HTTPConnection``.
final class HTTPConnectionHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private enum State {
        case idle
        case receiving(head: HTTPRequestHead, body: ByteBuffer)
        /// A request was refused while its body still streams in; its remaining parts are ignored.
        case discarding
    }

    private let maxBodySize: Int
    private let clientAddress: String?
    private let requests: AsyncStream<ReceivedRequest>.Continuation
    private var state = State.idle
    private var context: ChannelHandlerContext?

    init(maxBodySize: Int, clientAddress: String?, requests: AsyncStream<ReceivedRequest>.Continuation) {
        self.maxBodySize = maxBodySize
        self.clientAddress = clientAddress
        self.requests = requests
    }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch (unwrapInboundIn(data), state) {
        case (.head(let head), _):
            if let length = head.headers.first(name: "content-length").flatMap(Int.init), length > maxBodySize {
                refuse(context: context, .contentTooLarge, "Request body is larger than \(maxBodySize) bytes")
                return
            }
            state = .receiving(head: head, body: context.channel.allocator.buffer(capacity: 0))
        case (.body(var part), .receiving(let head, var body)):
            guard body.readableBytes + part.readableBytes <= maxBodySize else {
                refuse(context: context, .contentTooLarge, "Request body is larger than \(maxBodySize) bytes")
                return
            }
            state = .idle  // let `body` be uniquely referenced while we append
            body.writeBuffer(&part)
            state = .receiving(head: head, body: body)
        case (.end, .receiving(let head, let body)):
            state = .idle
            deliver(context: context, head: head, body: body)
        case (.body, _), (.end, _):
            if case .discarding = state, case .end = unwrapInboundIn(data) { state = .idle }
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        requests.finish()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        requests.finish()
        context.close(promise: nil)
    }

    private func deliver(context: ChannelHandlerContext, head: HTTPRequestHead, body: ByteBuffer) {
        let request: HTTPRequest
        do {
            request = try HTTPRequest(head, secure: false, splitCookie: false)
        } catch {
            refuse(context: context, .badRequest, "Malformed request")
            return
        }
        let upgrade = head.headers[canonicalForm: "upgrade"].contains { $0.lowercased() == "websocket" }
        requests.yield(ReceivedRequest(
            request: Request(head: request, body: body, clientAddress: clientAddress), head: head,
            version: head.version, keepAlive: head.isKeepAlive, wantsWebSocket: upgrade
        ))
    }

    /// Answers an error before the app sees the request, then closes the connection: the rest
    /// of the request cannot be trusted to be read.
    private func refuse(context: ChannelHandlerContext, _ status: HTTPResponse.Status, _ detail: String) {
        state = .discarding
        let response = HTTPError(status, detail: detail).response
        write(response, version: .http1_1, keepAlive: false, headOnly: false, context: context)
    }

    /// Writes `101 Switching Protocols` with `headers`; must run on the event loop.
    func writeSwitchingProtocols(_ headers: HTTPHeaders) {
        guard let context else { return }
        let head = HTTPResponseHead(version: .http1_1, status: .switchingProtocols, headers: headers)
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }

    /// Writes a response; must run on the event loop. Closes the connection unless `keepAlive`.
    func write(_ response: Response, version: HTTPVersion, keepAlive: Bool, headOnly: Bool) {
        guard let context else { return }
        write(response, version: version, keepAlive: keepAlive, headOnly: headOnly, context: context)
    }

    private func write(_ response: Response, version: HTTPVersion, keepAlive: Bool, headOnly: Bool, context: ChannelHandlerContext) {
        var head = HTTPResponseHead(response.head)
        head.version = version
        let status = response.status.code
        let bodyAllowed = status >= 200 && status != 204 && status != 304
        if bodyAllowed {
            head.headers.replaceOrAdd(name: "content-length", value: String(response.body.readableBytes))
        }
        if !keepAlive { head.headers.replaceOrAdd(name: "connection", value: "close") }
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        if bodyAllowed && !headOnly && response.body.readableBytes > 0 {
            context.write(wrapOutboundOut(.body(.byteBuffer(response.body))), promise: nil)
        }
        let done = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: done)
        if !keepAlive {
            let channel = context.channel
            done.futureResult.whenComplete { _ in channel.close(promise: nil) }
        }
    }
}
