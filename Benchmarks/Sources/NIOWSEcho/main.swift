// nio-ws-echo: a WebSocket echo at /echo on raw SwiftNIO, for run-ws.sh: the stack's own limit.
// NIOWebSocketServerUpgrader (frames up to 16 MiB, protocol errors answered by NIO's error
// handler), NIOWebSocketFrameAggregator (fragmented messages up to 16 MiB; unfragmented ones
// pass straight through), then one ChannelInboundHandler that echoes each message with its
// opcode, answers pings and closes. No async, no logging, no compression. Writes are flushed
// once per read burst (channelReadComplete).
//
//   nio-ws-echo --port 9104 [--threads N]
//
// --threads defaults to the CPUs this process may run on (its affinity mask), like Star, so
// under `taskset -c 0` it runs one event loop.
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOWebSocket

#if canImport(Glibc)
import Glibc
#endif

let maxSize = 16 * 1024 * 1024

/// `--NAME N` from the command line.
func intArgument(_ name: String) -> Int? {
    let arguments = CommandLine.arguments
    if let index = arguments.firstIndex(of: name), index + 1 < arguments.count {
        return Int(arguments[index + 1])
    }
    return nil
}

/// The CPUs this process may run on (`Cpus_allowed:` in /proc/self/status, the affinity mask in
/// hex), at least 1 and at most the machine's core count.
func allowedCPUs() -> Int {
    #if os(Linux)
    guard let file = fopen("/proc/self/status", "r") else { return System.coreCount }
    defer { fclose(file) }
    var line = [CChar](repeating: 0, count: 4096)
    while fgets(&line, Int32(line.count), file) != nil {
        let text = String(decoding: line.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        guard text.hasPrefix("Cpus_allowed:") else { continue }
        let allowed = text.dropFirst("Cpus_allowed:".count).reduce(0) { count, character in
            count + (character.hexDigitValue ?? 0).nonzeroBitCount
        }
        if allowed > 0 { return min(allowed, System.coreCount) }
    }
    #endif
    return System.coreCount
}

/// Echoes text and binary messages with their opcode; pong for ping; close handshake.
final class EchoHandler: ChannelInboundHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    private var sentClose = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = Self.unwrapInboundIn(data)
        switch frame.opcode {
        case .text, .binary:
            // The aggregator hands over whole messages only (fin set).
            guard !self.sentClose else { return }
            let echo = WebSocketFrame(fin: true, opcode: frame.opcode, data: frame.unmaskedData)
            context.write(Self.wrapOutboundOut(echo), promise: nil)
        case .ping:
            guard !self.sentClose else { return }
            let pong = WebSocketFrame(fin: true, opcode: .pong, data: frame.unmaskedData)
            context.write(Self.wrapOutboundOut(pong), promise: nil)
        case .pong:
            break
        case .connectionClose:
            if self.sentClose {
                context.close(promise: nil)  // the answer to our own close
                return
            }
            // Echo the peer's status code (or none), then close the TCP connection.
            self.sentClose = true
            var payload = frame.unmaskedData
            let code = payload.readSlice(length: 2) ?? ByteBuffer()
            let close = WebSocketFrame(fin: true, opcode: .connectionClose, data: code)
            context.writeAndFlush(Self.wrapOutboundOut(close)).assumeIsolated().whenComplete { _ in
                context.close(promise: nil)
            }
        default:
            self.closeWithError(context: context, code: .protocolError)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        context.flush()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // Aggregator errors (too large, bad fragments); decoder errors are answered by NIO's
        // WebSocketProtocolErrorHandler before they get here.
        if error is NIOWebSocketFrameAggregator.Error {
            self.closeWithError(context: context, code: .messageTooLarge)
        } else {
            context.close(promise: nil)
        }
    }

    private func closeWithError(context: ChannelHandlerContext, code: WebSocketErrorCode) {
        guard !self.sentClose else {
            context.close(promise: nil)
            return
        }
        self.sentClose = true
        var data = context.channel.allocator.buffer(capacity: 2)
        data.write(webSocketErrorCode: code)
        let close = WebSocketFrame(fin: true, opcode: .connectionClose, data: data)
        context.writeAndFlush(Self.wrapOutboundOut(close)).assumeIsolated().whenComplete { _ in
            context.close(promise: nil)
        }
    }
}

/// Any plain HTTP request (not an upgrade to /echo): 404 and close. Removed on upgrade.
final class NotFoundHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .end = Self.unwrapInboundIn(data) else { return }
        var headers = HTTPHeaders()
        headers.add(name: "Content-Length", value: "0")
        headers.add(name: "Connection", value: "close")
        context.write(Self.wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .notFound, headers: headers))), promise: nil)
        context.writeAndFlush(Self.wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in
            context.close(promise: nil)
        }
    }
}

let port = intArgument("--port") ?? 9104
let threads = intArgument("--threads") ?? allowedCPUs()
let group = MultiThreadedEventLoopGroup(numberOfThreads: threads)

let bootstrap = ServerBootstrap(group: group)
    .serverChannelOption(.backlog, value: 2048)
    .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
    .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
    .childChannelInitializer { channel in
        let upgrader = NIOWebSocketServerUpgrader(
            maxFrameSize: maxSize,
            automaticErrorHandling: true,
            shouldUpgrade: { channel, head in
                channel.eventLoop.makeSucceededFuture(head.uri == "/echo" ? HTTPHeaders() : nil)
            },
            upgradePipelineHandler: { channel, _ in
                channel.eventLoop.makeCompletedFuture {
                    // The WebSocket codec went in after NotFoundHandler: take it out of the way.
                    channel.pipeline.syncOperations.removeHandler(name: "not-found", promise: nil)
                    try channel.pipeline.syncOperations.addHandlers([
                        NIOWebSocketFrameAggregator(
                            minNonFinalFragmentSize: 0,
                            maxAccumulatedFrameCount: 1 << 20,
                            maxAccumulatedFrameSize: maxSize
                        ),
                        EchoHandler(),
                    ])
                }
            }
        )
        return channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.configureHTTPServerPipeline(
                withServerUpgrade: (upgraders: [upgrader], completionHandler: { _ in })
            )
            try channel.pipeline.syncOperations.addHandler(NotFoundHandler(), name: "not-found")
        }
    }

let server = try bootstrap.bind(host: "127.0.0.1", port: port).wait()
try server.closeFuture.wait()
try group.syncShutdownGracefully()
