import NIOCore
import NIOHTTP1

/// Carries a WebSocket over an HTTP/2 stream (RFC 8441): the bytes of WebSocket frames in DATA
/// frames, both ways, under the stream's flow control.
///
/// It sits behind NIO's HTTP/2-to-HTTP/1 codec (which cannot leave a pipeline), so the DATA frames
/// arrive as body parts and leave as body parts. The peer's END_STREAM (the request's end) is passed
/// on as `ChannelEvent.inputClosed`. Closing the output — what the session does right after its
/// close frame — ends the response, which is END_STREAM: Chromium waits 2 s, then resets the stream,
/// when a server's close frame is not followed by one. Closing the channel ends the stream first,
/// once, so that a close handshake completed from both sides leaves the stream closed, not reset.
final class HTTP2WebSocketStreamHandler: ChannelDuplexHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = HTTPServerResponsePart

    private var outputClosed = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .body(let bytes):
            context.fireChannelRead(wrapInboundOut(bytes))
        case .end:
            context.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        case .head:
            break  // a stream carries one head, read before the session began
        }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard !outputClosed else {
            promise?.fail(ChannelError.outputClosed)
            return
        }
        context.write(wrapOutboundOut(.body(.byteBuffer(unwrapOutboundIn(data)))), promise: promise)
    }

    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        guard mode != .input, !outputClosed else { return context.close(mode: mode, promise: promise) }
        outputClosed = true
        guard mode == .all else {
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            promise?.succeed()
            return
        }
        // The channel closes once END_STREAM is out (through this handler again: then it passes).
        let written = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: written)
        let channel = context.channel
        written.futureResult.whenComplete { _ in channel.close(mode: .all, promise: promise) }
    }
}
