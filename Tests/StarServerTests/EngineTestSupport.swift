import NIOCore
import NIOWebSocket
import Star
import StarWebSocketEngine

/// The engine's rules at time zero, for tests that judge frames and do not need the clock.
extension WebSocketStateMachine {
    init(maxMessageSize: Int, deflate: PerMessageDeflate? = nil) {
        self.init(options: WebSocketOptions(maxMessageSize: maxMessageSize), deflate: deflate, now: .uptimeNanoseconds(0))
    }

    mutating func received(_ frame: WebSocketInboundFrame) -> FrameAction {
        received(frame, now: .uptimeNanoseconds(0))
    }

    mutating func close() -> Bool {
        close(now: .uptimeNanoseconds(0))
    }
}
