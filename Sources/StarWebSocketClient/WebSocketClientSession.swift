import NIOCore
import NIOWebSocket
import Star
import StarWebSocketEngine
import StarWebSocketNIO
import Synchronization

/// The app's side of one client connection: the bridge between the tasks that send and receive
/// and the engine's `WebSocketChannelHandler` on the channel's event loop (in the client role).
/// The server's `WebSocketSession` is the same bridge for a server's session.
final class WebSocketClientSession: WebSocketChannelSession {
    let channel: any Channel
    /// Received messages, waiting tasks, and the session's end.
    let mailbox: WebSocketMailbox
    private let handler = Mutex<NIOLoopBound<WebSocketChannelHandler>?>(nil)

    init(channel: any Channel, maxQueue: Int) {
        self.channel = channel
        mailbox = WebSocketMailbox(maxQueue: maxQueue)
    }

    /// Attaches the channel handler once the pipeline switched to WebSocket frames (on the loop).
    func attach(_ handler: NIOLoopBound<WebSocketChannelHandler>) {
        self.handler.withLock { $0 = handler }
    }

    func receive() async throws -> WebSocketMessage {
        try await mailbox.receive {
            guard let handler = handler.withLock({ $0 }) else { return }
            channel.eventLoop.execute { handler.value.resumeReading() }
        }
    }

    func send(_ message: WebSocketMessage) async throws {
        try await mailbox.reserveSend()
        // Without a handler the socket is gone: the message is dropped, as a write to a closed channel is.
        handler.withLock({ $0 })?.sendAndFlush(message)
    }

    /// Starts the close handshake and waits until the socket is closed (when the server answers,
    /// or after the close timeout).
    func close(code: WebSocketCloseCode, reason: String) async {
        startClose(code: code, reason: reason)
        try? await channel.closeFuture.get()
    }

    /// Starts the close handshake without waiting for it.
    func startClose(code: WebSocketCloseCode, reason: String) {
        if let handler = handler.withLock({ $0 }) {
            channel.eventLoop.execute { handler.value.initiateClose(code: code, reason: reason) }
        } else {
            channel.close(promise: nil)
        }
    }

    // MARK: WebSocketChannelSession (on the event loop)

    func deliver(_ message: WebSocketMessage) -> Bool { mailbox.deliver(message) }

    func finish(_ end: WebSocketDisconnect) { mailbox.finish(end) }

    func setWritable(_ writable: Bool) { mailbox.setWritable(writable) }

    func detach() { handler.withLock { $0 = nil } }
}
