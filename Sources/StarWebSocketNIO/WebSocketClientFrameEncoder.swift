package import NIOCore
package import NIOWebSocket
import StarWebSocketEngine

/// Encodes the client's frames (RFC 6455 §5.2): the header with its masking key, then the payload
/// masked eight bytes at a time, in one buffer.
///
/// NIO's `WebSocketFrameEncoder` masks one byte at a time with a modulo per byte (as its decoder
/// unmasks, which `WebSocketFrame.unmaskedPayload` replaced on the server's side for issue #6);
/// a client masks every byte it sends, so it uses this encoder instead. The server's frames are
/// not masked and keep NIO's encoder, which writes the header into the payload's headroom.
package final class WebSocketClientFrameEncoder: ChannelOutboundHandler {
    package typealias OutboundIn = WebSocketFrame
    package typealias OutboundOut = ByteBuffer

    package init() {}

    package func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let frame = unwrapOutboundIn(data)
        let length = frame.data.readableBytes
        var buffer = context.channel.allocator.buffer(capacity: 14 + length)
        var first = UInt8(webSocketOpcode: frame.opcode)
        if frame.fin { first |= 0x80 }
        if frame.rsv1 { first |= 0x40 }
        if frame.rsv2 { first |= 0x20 }
        if frame.rsv3 { first |= 0x10 }
        buffer.writeInteger(first)
        let maskBit: UInt8 = frame.maskKey == nil ? 0 : 0x80
        switch length {
        case ..<126:
            buffer.writeInteger(UInt8(length) | maskBit)
        case ..<65536:
            buffer.writeInteger(126 | maskBit)
            buffer.writeInteger(UInt16(length))
        default:
            buffer.writeInteger(127 | maskBit)
            buffer.writeInteger(UInt64(length))
        }
        if let key = frame.maskKey {
            buffer.writeBytes(key)
            buffer.writeMasked(frame.data, key: key)
        } else {
            buffer.writeImmutableBuffer(frame.data)
        }
        context.write(wrapOutboundOut(buffer), promise: promise)
    }
}
