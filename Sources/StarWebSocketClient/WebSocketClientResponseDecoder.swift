import NIOCore
import NIOHTTP1

/// NIO's HTTP response decoder, told of the handshake's request up front instead of watching the
/// channel's writes for it.
///
/// Wrapped in `ByteToMessageHandler` as it is, NIO's decoder reads every outbound write as an
/// HTTP request part; when it is removed after the `101` it passes the bytes that followed on to
/// the session's handler, and an answer the session writes to them (a pong, a close) reaches the
/// decoder while it is still in the pipeline, as a WebSocket frame it cannot read.
struct WebSocketClientResponseDecoder: ByteToMessageDecoder {
    typealias InboundOut = HTTPClientResponsePart
    private let decoder = HTTPResponseDecoder(leftOverBytesStrategy: .forwardBytes)

    init(request: HTTPRequestHead) {
        decoder.write(data: .head(request))
    }

    func decoderAdded(context: ChannelHandlerContext) {
        decoder.decoderAdded(context: context)
    }

    func decoderRemoved(context: ChannelHandlerContext) {
        decoder.decoderRemoved(context: context)
    }

    func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        try decoder.decode(context: context, buffer: &buffer)
    }

    func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        try decoder.decodeLast(context: context, buffer: &buffer, seenEOF: seenEOF)
    }
}
