import NIOCore
import NIOTLS

/// Chooses a new connection's HTTP version before its first request: by TLS's ALPN (`h2`), or on
/// cleartext by the HTTP/2 connection preface (prior knowledge, RFC 9113 §3.3).
///
/// It sits in front of ``HTTPConnectionHandler``, whose header-read timeout runs meanwhile (a
/// client that sends part of the preface, or never finishes its TLS handshake, meets it), and
/// calls `switchToHTTP1` (NIO's HTTP/1 codec goes in) or `switchToHTTP2` (HTTP/2 replaces the
/// handler). Either way it leaves the pipeline once it has chosen, so an HTTP/1.1 connection pays
/// for it once, on its first bytes.
final class HTTPVersionSelector: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    /// How the version is chosen.
    enum Mode {
        /// TLS's handshake reports the protocol ALPN agreed on.
        case alpn
        /// The first bytes are the HTTP/2 preface, or the connection speaks HTTP/1.
        case priorKnowledge
    }

    private static let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)
    private let mode: Mode
    private let switchToHTTP1: () throws -> Void
    private let switchToHTTP2: () throws -> Void
    /// The bytes read while the preface may still be arriving.
    private var buffered: ByteBuffer?
    private var chosen = false

    /// Creates a selector that calls one of the two when it has chosen (on the event loop, before
    /// the bytes read so far go on).
    init(mode: Mode, switchToHTTP1: @escaping () throws -> Void, switchToHTTP2: @escaping () throws -> Void) {
        self.mode = mode
        self.switchToHTTP1 = switchToHTTP1
        self.switchToHTTP2 = switchToHTTP2
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .priorKnowledge = mode, !chosen else { return context.fireChannelRead(data) }
        var bytes = unwrapInboundIn(data)
        if buffered == nil { buffered = bytes } else { buffered!.writeBuffer(&bytes) }
        let view = buffered!.readableBytesView
        let count = min(view.count, Self.preface.count)
        if !view.prefix(count).elementsEqual(Self.preface.prefix(count)) {
            choose(http2: false, context: context)
        } else if count == Self.preface.count {
            choose(http2: true, context: context)
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        context.fireUserInboundEventTriggered(event)
        if case .alpn = mode, !chosen, let event = event as? TLSUserEvent,
           case .handshakeCompleted(let negotiated) = event {
            choose(http2: negotiated == "h2", context: context)
        }
    }

    private func choose(http2: Bool, context: ChannelHandlerContext) {
        chosen = true
        do {
            try http2 ? switchToHTTP2() : switchToHTTP1()
        } catch {
            context.close(promise: nil)
            return
        }
        // What was read goes on to the handlers chosen (the preface included: HTTP/2's handler reads it).
        if let bytes = buffered.take() {
            context.fireChannelRead(wrapInboundOut(bytes))
            context.fireChannelReadComplete()
        }
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }
}
