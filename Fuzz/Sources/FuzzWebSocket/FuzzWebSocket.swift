// Bytes a client sends after the handshake → the engine's WebSocketFrameParser (fed in pieces, with
// the server's maximum frame size) → the engine's WebSocketStateMachine, as WebSocketChannelHandler
// drives them: framing, fragmentation, masking, UTF-8, control frames, close codes, permessage-deflate
// and its limits. NIO's WebSocketFrameDecoder gets the same pieces as an oracle: the same frames and
// the same error, or the input is reported.
//
// Input: two configuration bytes, then the wire bytes.
//   byte 0  bits 0–1  the message size limit: 125, 1024, 65536 or Int.max
//           bit 2     permessage-deflate was agreed
//           bit 3     … with client_no_context_takeover
//           bits 4–5  … with client_max_window_bits absent, 8, 9 or 15 (we answer with at most 12)
//           bit 6     the server sends a keepalive ping (id 1) before reading
//           bit 7     the app closes the session after the first frame
//   byte 1  bits 0–2  piece size for feeding the parser (see chunkSize)
//
// Invariants: a delivered message is within the limit and complete; an uncompressed one has
// exactly the bytes of its frames (text: valid UTF-8, nothing replaced); close frames we would
// send fit 125 bytes and parse back to their code; nothing is acted on once the session is closed.

import FuzzSupport
import NIOCore
import NIOEmbedded
import NIOWebSocket
import Star
@testable import StarWebSocketEngine

/// What a frame reader reported: a frame, or the error that ended its reading.
enum FrameEvent<Frame> {
    case frame(Frame)
    case error(any Error)
}

/// What NIO's frame decoder made of the bytes, in order (the oracle for the parser).
final class FrameCollector: ChannelInboundHandler {
    typealias InboundIn = WebSocketFrame
    var events: [FrameEvent<WebSocketFrame>] = []

    func channelRead(context: ChannelHandlerContext, data: NIOAny) { events.append(.frame(unwrapInboundIn(data))) }
    func errorCaught(context: ChannelHandlerContext, error: any Error) { events.append(.error(error)) }
}

/// The message being received, as the frames so far describe it.
struct MessageModel {
    var text: Bool
    var compressed: Bool
    var bytes: [UInt8]
}

/// What libFuzzer runs on each input (its LLVMFuzzerTestOneInput).
func fuzzWebSocket(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    var input = FuzzInput(data, size)
    let config = input.byte()
    let feeding = input.byte()
    let limit = [125, 1024, 65536, Int.max][Int(config & 3)]
    var deflate: PerMessageDeflate?
    if config & 4 != 0 {
        var offer = "permessage-deflate"
        if config & 8 != 0 { offer += "; client_no_context_takeover" }
        switch config >> 4 & 3 {
        case 1: offer += "; client_max_window_bits=8"
        case 2: offer += "; client_max_window_bits=9"
        case 3: offer += "; client_max_window_bits"
        default: break
        }
        guard let agreement = PerMessageDeflate.negotiate([offer]) else { fatalError("offer \(offer) declined") }
        deflate = PerMessageDeflate(agreement)
    }
    // The engine's clock stands still at `start`; the optional ping is due one interval later.
    let start = NIODeadline.uptimeNanoseconds(1_000_000_000)
    var machine = WebSocketStateMachine(options: WebSocketOptions(maxMessageSize: limit, pingInterval: .seconds(1)),
                                        deflate: deflate, now: start)
    let now = config & 64 != 0 ? start + .seconds(1) : start
    if config & 64 != 0 { check(machine.tick(now: now) == .sendPing(1), "first ping not sent") }

    // The decoding: the engine's parser, as WebSocketChannelHandler runs it; NIO's decoder beside it
    // with the same limit (the parser's own cap, WebSocketFrameParser.largestFrameSize, is given to NIO's too).
    let frameLimit = min(limit, WebSocketFrameParser.largestFrameSize)
    var parser = WebSocketFrameParser(maxFrameSize: frameLimit)
    let channel = EmbeddedChannel()
    defer { _ = try? channel.finish(acceptAlreadyClosed: true) }
    let collector = FrameCollector()
    do {
        try channel.pipeline.syncOperations.addHandler(
            ByteToMessageHandler(WebSocketFrameDecoder(maxFrameSize: frameLimit)))
        try channel.pipeline.syncOperations.addHandler(collector)
    } catch {
        fatalError("cannot set up the pipeline: \(error)")
    }

    var model: MessageModel?
    var framesSeen = 0
    var parserFailed = false
    for piece in input.rest.pieces(of: chunkSize(feeding)) {
        _ = try? channel.writeInbound(ByteBuffer(bytes: piece))
        let oracle = collector.events
        collector.events.removeAll()
        var events: [FrameEvent<WebSocketInboundFrame>] = []
        if !parserFailed {
            parser.append(ByteBuffer(bytes: piece))
            do {
                while let frame = try parser.next() { events.append(.frame(frame)) }
            } catch {
                events.append(.error(error))
                parserFailed = true
            }
            parser.endOfRead()
            // (After its error NIO's decoder reports every later read as received in its error state.)
            check(sameEvents(events, oracle), "the parser and NIO's decoder disagree: \(events) / \(oracle)")
        }
        for (event, reference) in zip(events, oracle) {
            let before = machine.state
            let action: WebSocketStateMachine.FrameAction
            switch (event, reference) {
            case (.error(let error), _):
                action = machine.decodingFailed(error, now: now)
                if before == .open {
                    guard case .fail(let code, _) = action, code == .protocolError || code == .messageTooBig else {
                        check(false, "a decoding error (\(error)) gave \(action)")
                        return 0
                    }
                }
            case (.frame(let ours), .frame(let frame)):
                // The model and the judge read NIO's frame; the machine gets the parser's (sameEvents checked they agree).
                framesSeen += 1
                if frame.opcode == .text || frame.opcode == .binary {
                    model = MessageModel(text: frame.opcode == .text, compressed: frame.rsv1, bytes: [])
                }
                if [.text, .binary, .continuation].contains(frame.opcode) {
                    model?.bytes += frame.unmaskedData.readableBytesView
                }
                action = machine.received(ours, now: now)
                judge(action, frame: frame, before: before, limit: limit, model: model)
                if frame.fin, [.text, .binary, .continuation].contains(frame.opcode) { model = nil }
            case (.frame, .error):
                preconditionFailure("sameEvents checked that the parser and NIO's decoder agree")
            }
            if before == .closed {
                check(action == .none, "acted on \(event) after the session closed: \(action)")
            }
            if case .fail = action { check(machine.state == .closed, "failed but not closed") }
            if case .echoClose = action { check(machine.state == .closed, "echoed a close but not closed") }
            if config & 128 != 0, framesSeen == 1, machine.state == .open {
                check(machine.close(now: now), "close() from open did not send a close")
                check(machine.state == .closeSent, "close() did not move to closeSent")
                check(!machine.close(now: now), "a second close() sent another close")
            }
        }
    }
    return 0
}

/// Checks one action against the frame that caused it.
func judge(_ action: WebSocketStateMachine.FrameAction, frame: WebSocketFrame, before: WebSocketStateMachine.State,
           limit: Int, model: MessageModel?) {
    switch action {
    case .none:
        break
    case .deliver(let message):
        check(before == .open, "delivered a message in state \(before)")
        check(frame.fin, "delivered a message on a frame without FIN")
        guard let model else { check(false, "delivered a message that no frame started"); return }
        let bytes: [UInt8]
        switch message {
        case .text(let text):
            check(model.text, "a binary message was delivered as text")
            bytes = Array(text.utf8)
        case .binary(let buffer):
            check(!model.text, "a text message was delivered as binary")
            bytes = Array(buffer.readableBytesView)
        }
        check(bytes.count <= limit, "delivered \(bytes.count) bytes over the limit \(limit)")
        if !model.compressed {
            check(bytes == model.bytes, "the message's bytes differ from its frames' (invalid UTF-8 repaired?)")
            if model.text { check(String(validating: model.bytes, as: UTF8.self) != nil, "invalid UTF-8 delivered") }
        }
    case .sendPong(let payload):
        check(before == .open, "answered a ping in state \(before)")
        check(frame.opcode == .ping, "a pong for \(frame.opcode)")
        check(payload == frame.unmaskedData, "the pong does not echo the ping")
        check(payload.readableBytes <= 125, "a pong of \(payload.readableBytes) bytes")
    case .fail(let code, let reason):
        check(before == .open, "failed in state \(before)")
        checkClosePayload(code: code, reason: reason)
    case .echoClose(let code, let reason):
        check(before == .open, "echoed a close in state \(before)")
        check(frame.opcode == .connectionClose, "echoed a close for \(frame.opcode)")
        check(code == .noStatusReceived || code.isValidOnWire, "accepted close code \(code)")
        checkClosePayload(code: code, reason: "")
        _ = reason
    case .closeHandshakeDone:
        check(before == .closeSent, "close handshake done in state \(before)")
    }
}

/// The close frame WebSocketChannelHandler would send for `code` and `reason`.
func checkClosePayload(code: WebSocketCloseCode, reason: String) {
    let payload = WebSocketCloseFrame.payload(code: code, reason: reason, allocator: ByteBufferAllocator())
    check(payload.readableBytes <= 125, "a close payload of \(payload.readableBytes) bytes")
    switch WebSocketCloseFrame.parse(payload) {
    case .success(let (parsed, _)):
        check(parsed == (code.isValidOnWire || code == .noStatusReceived ? code : .normalClosure),
              "close code \(code) was sent as \(parsed)")
    case .failure(let failure):
        check(false, "our own close payload for \(code) does not parse: \(failure)")
    }
}

/// Whether the parser's events are NIO's decoder's: the same frames (and the same bytes once
/// unmasked), the same error.
func sameEvents(_ ours: [FrameEvent<WebSocketInboundFrame>], _ nio: [FrameEvent<WebSocketFrame>]) -> Bool {
    guard ours.count == nio.count else { return false }
    return zip(ours, nio).allSatisfy { pair in
        switch pair {
        case (.frame(let a), .frame(let b)): a == WebSocketInboundFrame(b) && a.unmaskedPayload == b.unmaskedData
        case (.error(let a), .error(let b)): (a as? NIOWebSocketError) == (b as? NIOWebSocketError)
        default: false
        }
    }
}
