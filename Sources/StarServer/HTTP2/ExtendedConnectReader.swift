import NIOCore
import NIOHPACK
import NIOHTTP2

/// Reads the `:protocol` pseudo-header of an HTTP/2 request (extended CONNECT, RFC 8441), which
/// NIO's HTTP/2-to-HTTP/1 codec does not carry over, and reports it to ``HTTPConnectionHandler``
/// as an ``Event`` just before the request's head. Everything passes through unchanged.
final class ExtendedConnectReader: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTP2Frame.FramePayload
    typealias InboundOut = HTTP2Frame.FramePayload

    /// The `:protocol` of the request whose head follows.
    struct Event {
        /// The protocol asked for (`websocket`).
        let protocolName: String
    }

    private var sawHead = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if !sawHead, case .headers(let headers) = unwrapInboundIn(data) {
            sawHead = true
            if let name = headers.headers.first(name: ":protocol") {
                context.fireUserInboundEventTriggered(Event(protocolName: name))
            }
        }
        context.fireChannelRead(data)
    }
}
