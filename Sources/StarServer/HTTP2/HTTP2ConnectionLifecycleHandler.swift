import NIOCore
import NIOHTTP2

/// Closes an HTTP/2 connection the way an HTTP/1.1 connection closes: when it has had no open
/// stream for the keep-alive timeout, and on graceful shutdown (`ChannelShouldQuiesceEvent`) at
/// once if no stream is open, else as soon as the last one ends. Each time with one GOAWAY that
/// names the last stream the client opened (RFC 9113 §6.8: the client may retry any later one).
/// NIO reports streams opening and closing to its ``streamDelegate``, the connection's pipeline
/// the graceful-shutdown event.
///
/// Not NIO's `NIOHTTP2ServerConnectionManagementHandler`: added to a connection that chose HTTP/2
/// after it became active (ALPN, the preface), it never starts its idle timer, and its graceful
/// close waits for a PING acknowledgement that a client which does not read never sends (found
/// with Chromium's spare TLS connections: SIGTERM then waited for the whole graceful timeout).
final class HTTP2ConnectionLifecycleHandler: ChannelDuplexHandler {
    typealias InboundIn = HTTP2Frame
    typealias OutboundIn = HTTP2Frame
    typealias OutboundOut = HTTP2Frame

    private let idleTimeout: TimeAmount
    private var context: ChannelHandlerContext?
    private var openStreams = 0
    private var lastStreamID = HTTP2StreamID.rootStream
    private var quiescing = false
    private var idleTimer: Scheduled<Void>?

    /// Creates the handler of a connection that closes after `idleTimeout` without an open stream.
    init(idleTimeout: TimeAmount) {
        self.idleTimeout = idleTimeout
    }

    /// What NIO's HTTP/2 handler of the connection on `eventLoop` tells about streams
    /// (`configureAsyncHTTP2Pipeline(streamDelegate:)`).
    func streamDelegate(on eventLoop: any EventLoop) -> StreamDelegate {
        StreamDelegate(handler: NIOLoopBound(self, eventLoop: eventLoop))
    }

    /// Passes streams opening and closing on to the handler (NIO calls it on the connection's loop).
    struct StreamDelegate: NIOHTTP2StreamDelegate {
        fileprivate let handler: NIOLoopBound<HTTP2ConnectionLifecycleHandler>

        func streamCreated(_ id: HTTP2StreamID, channel: any Channel) {
            handler.value.streamCreated(id)
        }

        func streamClosed(_ id: HTTP2StreamID, channel: any Channel) {
            handler.value.streamClosed()
        }
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if context.channel.isActive { armIdleTimer(context: context) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        idleTimer?.cancel()
        idleTimer = nil
        self.context = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        armIdleTimer(context: context)
        context.fireChannelActive()
    }

    private func streamCreated(_ id: HTTP2StreamID) {
        openStreams += 1
        lastStreamID = max(lastStreamID, id)
        idleTimer?.cancel()
        idleTimer = nil
    }

    private func streamClosed() {
        openStreams -= 1
        guard openStreams == 0, let context else { return }
        if quiescing { goAwayAndClose(context: context) } else { armIdleTimer(context: context) }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent, !quiescing {
            quiescing = true
            if openStreams == 0 {
                goAwayAndClose(context: context)
            } else {
                // No new streams: those open finish, then the connection closes.
                context.writeAndFlush(wrapOutboundOut(goAway()), promise: nil)
            }
        }
        context.fireUserInboundEventTriggered(event)
    }

    private func goAway() -> HTTP2Frame {
        HTTP2Frame(streamID: .rootStream, payload: .goAway(lastStreamID: lastStreamID, errorCode: .noError, opaqueData: nil))
    }

    private func armIdleTimer(context: ChannelHandlerContext) {
        idleTimer?.cancel()
        let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
        let context = NIOLoopBound(context, eventLoop: context.eventLoop)
        idleTimer = context.value.eventLoop.scheduleTask(in: idleTimeout) {
            handler.value.idleTimer = nil
            handler.value.goAwayAndClose(context: context.value)
        }
    }

    /// GOAWAY, then close on the next loop tick: frames just written (a stream's END_STREAM) are
    /// flushed first.
    private func goAwayAndClose(context: ChannelHandlerContext) {
        idleTimer?.cancel()
        idleTimer = nil
        context.writeAndFlush(wrapOutboundOut(goAway()), promise: nil)
        let channel = context.channel
        context.eventLoop.execute { channel.close(promise: nil) }
    }
}
