package import Star

/// The app's side of a session as ``WebSocketChannelHandler`` sees it: the server's session and
/// the client's connection each keep a `WebSocketMailbox` and forward these calls to it (the
/// server counts messages for its metrics on the way).
///
/// Called only on the channel's event loop.
package protocol WebSocketChannelSession: AnyObject, Sendable {
    /// Hands a received message to the app; returns whether the queue is now full, so that the
    /// handler stops reading the socket.
    func deliver(_ message: WebSocketMessage) -> Bool
    /// Ends the session (the first end wins).
    func finish(_ end: WebSocketDisconnect)
    /// Records whether the socket takes more writes, and wakes waiting senders when it does.
    func setWritable(_ writable: Bool)
    /// The handler left the pipeline: forget it (the two reference each other).
    func detach()
}
