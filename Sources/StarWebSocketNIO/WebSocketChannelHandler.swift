package import NIOCore
import NIOWebSocket
package import Star
package import StarWebSocketEngine

/// Runs one WebSocket session on the event loop: cuts the bytes read into frames
/// (``WebSocketFrameParser``), applies ``WebSocketStateMachine`` to every frame, answers pings,
/// sends keepalive pings, completes the close handshake, and stops reading the socket while the
/// session's queue is full. Control frames are handled here whether or not the app is receiving.
/// The server's sessions and the client's connections both run on it (in their role: the client
/// masks what it sends).
///
/// It is the session's whole codec: the app's messages come in through ``send(_:)`` (not as
/// writes through the pipeline) and leave as wire bytes, so no frame value, `NIOAny` box or
/// encoder handler is on the way, and a server's text message leaves as one buffer of header and
/// UTF-8 (one `write(2)` where NIO's encoder made two buffers and a `writev`).
package final class WebSocketChannelHandler: ChannelDuplexHandler {
    package typealias InboundIn = ByteBuffer
    /// Nothing is written through this handler: messages come in through ``send(_:)``.
    package typealias OutboundIn = Never
    package typealias OutboundOut = ByteBuffer

    private let session: any WebSocketChannelSession
    private var machine: WebSocketStateMachine
    private var parser: WebSocketFrameParser
    private var context: ChannelHandlerContext?
    private var readPending = false
    private var paused = false
    // The session's timers are deadlines in the machine that the loop's ticker checks (no
    // scheduled task each).
    private let ticker: WebSocketTicker
    /// This session's place in the ticker's list, kept by the ticker.
    package var tickerSlot = -1
    private let deflate: PerMessageDeflate?
    /// The header of a frame whose payload is written as its own buffer, reused from frame to
    /// frame (a new one only when the last is still queued in the channel).
    private var headerBuffer = ByteBuffer()
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
        self.parser = WebSocketFrameParser(maxFrameSize: options.maxMessageSize)
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
        parser.append(unwrapInboundIn(data))
        defer { parser.endOfRead() }
        while true {
            do {
                guard let frame = try parser.next() else { return }
                perform(machine.received(frame, now: context.eventLoop.now), context: context)
            } catch {
                perform(machine.decodingFailed(error, now: context.eventLoop.now), context: context)
                return
            }
        }
    }

    /// The connection failed (reset, unclean TLS shutdown): the session ends with 1006.
    package func errorCaught(context: ChannelHandlerContext, error: any Error) {
        machine.connectionLost()
        session.finish(WebSocketDisconnect(code: .abnormalClosure, reason: "connection lost"))
        context.close(promise: nil)
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
            writeFrame(.pong, payload, context: context)
            context.flush()
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

    /// Writes `message` as one frame (compressed when permessage-deflate was negotiated), without
    /// flushing; on the event loop. Once the close frame is out nothing more may be sent (RFC 6455
    /// §5.5.1): a message sent then is dropped.
    package func send(_ message: WebSocketMessage) {
        guard let context, machine.state == .open else { return }
        switch message {
        case .text(let text) where deflate == nil && machine.role == .server:
            // The most common frame: header and UTF-8 in one buffer, the text copied once.
            let length = text.utf8.count
            var buffer = context.channel.allocator.buffer(capacity: ByteBuffer.maxWebSocketFrameHeaderSize + length)
            buffer.writeWebSocketFrameHeader(opcode: .text, length: length)
            buffer.writeString(text)
            context.write(wrapOutboundOut(buffer), promise: nil)
        case .text(let text):
            writeFrame(.text, context.channel.allocator.buffer(string: text), context: context)
        case .binary(let bytes):
            writeFrame(.binary, bytes, context: context)
        }
    }

    /// Flushes what ``send(_:)`` wrote.
    package func flush() {
        context?.flush()
    }

    /// Writes one frame in this handler's role: a data frame compressed when permessage-deflate
    /// was negotiated (and it pays), a client's frame masked with a fresh key.
    private func writeFrame(_ opcode: WebSocketOpcode, _ payload: ByteBuffer, context: ChannelHandlerContext,
                            promise: EventLoopPromise<Void>? = nil) {
        var payload = payload
        var compressed = false
        if let deflate, opcode == .text || opcode == .binary,
           let deflated = deflate.deflate(payload, allocator: context.channel.allocator) {
            payload = deflated
            compressed = true
        }
        let length = payload.readableBytes
        if let maskKey = machine.role.sendingMaskKey() {
            var buffer = context.channel.allocator.buffer(capacity: ByteBuffer.maxWebSocketFrameHeaderSize + length)
            buffer.writeWebSocketFrameHeader(rsv1: compressed, opcode: opcode, length: length, maskKey: maskKey)
            buffer.writeMasked(payload, key: maskKey)
            context.write(wrapOutboundOut(buffer), promise: promise)
        } else {
            headerBuffer.clear()
            headerBuffer.writeWebSocketFrameHeader(rsv1: compressed, opcode: opcode, length: length)
            context.write(wrapOutboundOut(headerBuffer), promise: nil)
            context.write(wrapOutboundOut(payload), promise: promise)
        }
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
        guard thenCloseSocket else {
            writeFrame(.connectionClose, payload, context: context)
            context.flush()
            if endsStreamAfterCloseFrame { context.close(mode: .output, promise: nil) }
            return
        }
        let written = context.eventLoop.makePromise(of: Void.self)
        writeFrame(.connectionClose, payload, context: context, promise: written)
        context.flush()
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
            writeFrame(.ping, payload, context: context)
            context.flush()
        }
    }
}

extension NIOLoopBound<WebSocketChannelHandler> {
    /// Sends `message` and flushes, from any thread: at once on the handler's event loop, else as
    /// a task on it.
    package func sendAndFlush(_ message: WebSocketMessage) {
        if eventLoop.inEventLoop {
            value.send(message)
            value.flush()
        } else {
            eventLoop.execute {
                self.value.send(message)
                self.value.flush()
            }
        }
    }
}
