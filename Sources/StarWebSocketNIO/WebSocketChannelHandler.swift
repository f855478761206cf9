package import NIOCore
package import NIOWebSocket
package import Star
package import StarWebSocketEngine

/// Runs one WebSocket session on the event loop: applies ``WebSocketStateMachine`` to every
/// frame, answers pings, sends keepalive pings, completes the close handshake, and stops reading
/// the socket while the session's queue is full. Control frames are handled here whether or not
/// the app is receiving. The server's sessions and the client's connections both run on it (in
/// their role: the client masks what it sends).
package final class WebSocketChannelHandler: ChannelDuplexHandler {
    package typealias InboundIn = WebSocketFrame
    package typealias OutboundIn = WebSocketFrame
    package typealias OutboundOut = WebSocketFrame

    private let session: any WebSocketChannelSession
    private var machine: WebSocketStateMachine
    private var context: ChannelHandlerContext?
    private var readPending = false
    private var paused = false
    // The session's timers are deadlines in the machine that the loop's ticker checks (no
    // scheduled task each).
    private let ticker: WebSocketTicker
    /// This session's place in the ticker's list, kept by the ticker.
    package var tickerSlot = -1
    private let deflate: PerMessageDeflate?
    /// The channel is an HTTP/2 stream (RFC 8441): END_STREAM follows our close frame at once.
    private let endsStreamAfterCloseFrame: Bool

    /// Creates the handler of `session`, whose session starts `now` (its loop's time);
    /// `ticker` is its event loop's (it drives the timers). With `endsStreamAfterCloseFrame`
    /// (an HTTP/2 stream), the output is closed right after the close frame.
    package init(session: any WebSocketChannelSession, role: WebSocketStateMachine.Role = .server, options: WebSocketOptions,
                 ticker: WebSocketTicker, deflate: PerMessageDeflate? = nil, now: NIODeadline,
                 endsStreamAfterCloseFrame: Bool = false) {
        self.session = session
        self.ticker = ticker
        self.deflate = deflate
        self.endsStreamAfterCloseFrame = endsStreamAfterCloseFrame
        self.machine = WebSocketStateMachine(role: role, options: options, deflate: deflate, now: now)
    }

    package func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        ticker.add(self, shortestTimer: machine.shortestTimer)
    }

    package func handlerRemoved(context: ChannelHandlerContext) {
        ticker.remove(self)
        self.context = nil
        session.detach()  // the session and this handler reference each other: break the cycle
    }

    // MARK: Inbound

    package func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        perform(machine.received(unwrapInboundIn(data), now: context.eventLoop.now), context: context)
    }

    package func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard error is NIOWebSocketError else {
            // The connection failed (reset, unclean TLS shutdown): the session ends with 1006.
            machine.connectionLost()
            session.finish(WebSocketDisconnect(code: .abnormalClosure, reason: "connection lost"))
            context.close(promise: nil)
            return
        }
        perform(machine.decodingFailed(error, now: context.eventLoop.now), context: context)
    }

    /// The peer ended an HTTP/2 stream (END_STREAM): after its close frame that is the close
    /// handshake's end; without one, the session is lost (1006), as when a socket closes.
    package func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard case ChannelEvent.inputClosed = event else { return context.fireUserInboundEventTriggered(event) }
        guard machine.state != .closed else { return }
        machine.connectionLost()
        session.finish(WebSocketDisconnect(code: .abnormalClosure, reason: "stream ended without a close frame"))
        context.close(promise: nil)
    }

    package func channelInactive(context: ChannelHandlerContext) {
        machine.connectionLost()
        ticker.remove(self)
        session.finish(WebSocketDisconnect(code: .abnormalClosure, reason: "connection lost"))
        context.fireChannelInactive()
    }

    package func channelWritabilityChanged(context: ChannelHandlerContext) {
        let writable = context.channel.isWritable
        session.setWritable(writable)
        if writable { readIfPending(context: context) }
        context.fireChannelWritabilityChanged()
    }

    private func perform(_ action: WebSocketStateMachine.FrameAction, context: ChannelHandlerContext) {
        switch action {
        case .none:
            break
        case .deliver(let message):
            if session.deliver(message) { paused = true }
        case .sendPong(let payload):
            context.writeAndFlush(wrapOutboundOut(machine.role.frame(.pong, payload)), promise: nil)
        case .fail(let code, let reason):
            session.finish(WebSocketDisconnect(code: code, reason: reason))
            sendClose(code: code, reason: reason, context: context, thenCloseSocket: true)
        case .echoClose(let code, let reason):
            session.finish(WebSocketDisconnect(code: code, reason: reason))
            sendClose(code: code, reason: "", context: context, thenCloseSocket: true)
        case .closeHandshakeDone(let code, let reason):
            session.finish(WebSocketDisconnect(code: code, reason: reason))
            context.close(promise: nil)
        }
    }

    // MARK: Outbound

    package func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        // Messages written after the close frame would break the protocol: drop them.
        guard machine.state == .open else {
            promise?.fail(WebSocketDisconnect(code: .normalClosure, reason: "session closed"))
            return
        }
        if let deflate {
            var frame = unwrapOutboundIn(data)
            if frame.opcode == .text || frame.opcode == .binary,
                let compressed = deflate.deflate(frame.data, allocator: context.channel.allocator)
            {
                frame.data = compressed
                frame.rsv1 = true
                context.write(wrapOutboundOut(frame), promise: promise)
                return
            }
        }
        context.write(data, promise: promise)
    }

    /// Reads only while the session's queue has room and the socket takes our writes: a peer that
    /// floods pings without reading the pongs would otherwise grow the outbound buffer without bound.
    package func read(context: ChannelHandlerContext) {
        if paused || !context.channel.isWritable {
            readPending = true
        } else {
            context.read()
        }
    }

    /// The session's queue has room again.
    package func resumeReading() {
        paused = false
        if let context { readIfPending(context: context) }
    }

    private func readIfPending(context: ChannelHandlerContext) {
        guard readPending, !paused, context.channel.isWritable else { return }
        readPending = false
        context.read()
    }

    /// The app closes the session: send the close frame, and close the socket when the peer
    /// answers or after the close timeout.
    package func initiateClose(code: WebSocketCloseCode, reason: String) {
        guard let context else { return }
        if machine.close(now: context.eventLoop.now) {
            session.finish(WebSocketDisconnect(code: code, reason: reason))
            sendClose(code: code, reason: reason, context: context, thenCloseSocket: false)
            resumeReading()  // the peer's close must be read even if the queue is full
        } else if machine.state == .closed {
            context.close(promise: nil)
        }
    }

    /// Writes a close frame; with `thenCloseSocket`, closes the socket once it is written (or
    /// when the machine's close timeout passes, for a peer that does not read).
    private func sendClose(code: WebSocketCloseCode, reason: String, context: ChannelHandlerContext, thenCloseSocket: Bool) {
        let payload = WebSocketCloseFrame.payload(code: code, reason: reason, allocator: context.channel.allocator)
        let frame = machine.role.frame(.connectionClose, payload)
        guard thenCloseSocket else {
            context.writeAndFlush(wrapOutboundOut(frame), promise: nil)
            if endsStreamAfterCloseFrame { context.close(mode: .output, promise: nil) }
            return
        }
        let written = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(wrapOutboundOut(frame), promise: written)
        if endsStreamAfterCloseFrame { context.close(mode: .output, promise: nil) }
        let channel = context.channel
        written.futureResult.whenComplete { _ in channel.close(promise: nil) }
    }

    // MARK: Timers

    /// Called by the ticker: carries out what the machine's timers ask for.
    package func tick(now: NIODeadline) {
        guard let context else { return }
        switch machine.tick(now: now) {
        case .none:
            break
        case .closeSocket:
            context.close(promise: nil)
        case .fail(let code, let reason):
            session.finish(WebSocketDisconnect(code: code, reason: reason))
            sendClose(code: code, reason: reason, context: context, thenCloseSocket: true)
        case .sendPing(let id):
            var payload = context.channel.allocator.buffer(capacity: 8)
            payload.writeInteger(id)
            context.writeAndFlush(wrapOutboundOut(machine.role.frame(.ping, payload)), promise: nil)
        }
    }
}
