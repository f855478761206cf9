import Logging
import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The listening channel's guard against running out of file descriptors: when `accept(2)` fails
/// with `EMFILE`, `ENFILE`, `ENOBUFS` or `ENOMEM`, accepting pauses for ``pause`` at a time (the
/// waiting connections stay in the kernel's backlog) until an accept succeeds again, and the
/// first failure of such an episode is logged as a warning that says what to raise.
///
/// NIO's `AcceptBackoffHandler` does not do this on Linux: it delays the next `read` request, but a
/// failed accept leaves the server socket's read pending and registered with epoll, and the socket
/// stays readable while connections wait, so the event loop retried `accept(2)` at once, forever —
/// 75 % to 100 % of a core while out of descriptors (measured with a 64-descriptor limit and 100
/// connections; `Tests/Peers/test_faults.py`). Turning `autoRead` off unregisters the socket from
/// epoll; turning it back on registers it again and retries.
final class AcceptPauseHandler: ChannelInboundHandler {
    typealias InboundIn = any Channel
    typealias InboundOut = any Channel

    /// How long accepting pauses after a failure for want of resources.
    static let pause = TimeAmount.milliseconds(100)

    private let logger: Logger
    /// Accepts that failed for want of resources since the last one that succeeded.
    private var failures = 0
    private var resumption: Scheduled<Void>?

    init(logger: Logger) {
        self.logger = logger
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if failures > 0 {
            logger.notice("accepting connections again (\(failures) accepts failed for want of file descriptors)")
            failures = 0
        }
        context.fireChannelRead(data)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let ioError = error as? IOError, Self.isOutOfResources(ioError.errnoCode) else {
            context.fireErrorCaught(error)
            return
        }
        if failures == 0 {
            logger.warning("cannot accept connections: \(ioError) (file descriptor limit: `ulimit -n`); retrying every \(Self.pause.nanoseconds / 1_000_000) ms while they wait in the backlog")
        }
        failures += 1
        guard resumption == nil, let options = context.channel.syncOptions else { return }
        try? options.setOption(.autoRead, value: false)
        resumption = context.eventLoop.assumeIsolated().scheduleTask(in: Self.pause) { [self] in
            resumption = nil
            try? options.setOption(.autoRead, value: true)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        resumption?.cancel()
        resumption = nil
        context.fireChannelInactive()
    }

    private static func isOutOfResources(_ code: CInt) -> Bool {
        code == EMFILE || code == ENFILE || code == ENOBUFS || code == ENOMEM
    }
}
