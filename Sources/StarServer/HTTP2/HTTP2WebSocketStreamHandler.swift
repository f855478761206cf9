import NIOCore
import NIOHTTP2

/// Carries a WebSocket over an HTTP/2 stream (RFC 8441): the bytes of WebSocket frames in DATA
/// frames, both ways, under the stream's flow control.
///
/// The peer's END_STREAM is passed on as `ChannelEvent.inputClosed` (after the bytes it came with).
/// Closing the output — what the session does right after its close frame — sends END_STREAM:
/// Chromium waits 2 s, then resets the stream, when a server's close frame is not followed by
/// one. Closing the channel ends the stream first, once, so that a close handshake completed from
/// both sides leaves the stream closed rather than reset.
final class HTTP2WebSocketStreamHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTP2Frame.FramePayload
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = HTTP2Frame.FramePayload

    private var outputClosed = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let endStream: Bool
        switch unwrapInboundIn(data) {
        case .data(let data):
            if case .byteBuffer(let bytes) = data.data, bytes.readableBytes > 0 {
                context.fireChannelRead(wrapInboundOut(bytes))
            }
            endStream = data.endStream
        case .headers(let trailers):
            endStream = trailers.endStream
        default:
            endStream = false
        }
        if endStream { context.fireUserInboundEventTriggered(ChannelEvent.inputClosed) }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard !outputClosed else {
            promise?.fail(ChannelError.outputClosed)
            return
        }
        let payload = HTTP2Frame.FramePayload.data(.init(data: .byteBuffer(unwrapOutboundIn(data))))
        context.write(wrapOutboundOut(payload), promise: promise)
    }

    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        guard mode != .input, !outputClosed else { return context.close(mode: mode, promise: promise) }
        outputClosed = true
        let end = HTTP2Frame.FramePayload.data(.init(data: .byteBuffer(ByteBuffer()), endStream: true))
        guard mode == .all else {
            context.writeAndFlush(wrapOutboundOut(end), promise: nil)
            promise?.succeed()
            return
        }
        // The channel closes once END_STREAM is out (through this handler again: then it passes).
        let written = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(wrapOutboundOut(end), promise: written)
        let channel = context.channel
        written.futureResult.whenComplete { _ in channel.close(mode: .all, promise: promise) }
    }
}
