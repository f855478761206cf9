import NIOCore

/// Passes an HTTP/2 connection's flushes to the socket once per burst instead of once per stream.
///
/// Every stream channel's flush flushes the connection (swift-nio-http2's stream channel hands its
/// frames to the connection handler, which flushes the socket): 64 WebSocket streams that each answer
/// a message of the same read made 64 `writev` calls. Sits between the socket (or TLS) and NIO's
/// HTTP/2 handler: the first flush of a burst queues one loop task, which flushes after everything
/// the loop had queued meanwhile (the other sessions' jobs among them); later flushes of the burst
/// find it queued. A close flushes first, so nothing written is dropped.
final class HTTP2FlushCoalescer: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = IOData

    private var flushQueued = false

    func flush(context: ChannelHandlerContext) {
        guard !flushQueued else { return }
        flushQueued = true
        context.eventLoop.assumeIsolated().execute {
            self.flushNow(context)
        }
    }

    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        flushNow(context)
        context.close(mode: mode, promise: promise)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        flushNow(context)
    }

    private func flushNow(_ context: ChannelHandlerContext) {
        guard flushQueued else { return }
        flushQueued = false
        context.flush()
    }
}
