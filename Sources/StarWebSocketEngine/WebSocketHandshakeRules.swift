package import Star

/// The checks of an opening handshake (RFC 6455 §4.2.1) that come before routing, the same for
/// every transport: the server answers a refused handshake without running the app, and so does
/// the in-memory test client. The rest of the handshake is the app's: the route decides with
/// `connect()`/`deny()`, `WebSocketComponent` checks `Origin`, and `WebSocketHandshake` the
/// subprotocol.
package enum WebSocketHandshakeRules {
    /// Whether a request asks to open a WebSocket: a `GET` with `Upgrade: websocket`
    /// (the transport reads the header tokens; this adds the method).
    package static func isHandshake(_ request: Request, wantsWebSocket: Bool) -> Bool {
        wantsWebSocket && request.method == .get
    }

    /// The refusal for a handshake that is malformed, or `nil` when it is well formed: version 13
    /// (else 426 with `Sec-WebSocket-Version: 13`) and a well-formed key (else 400).
    package static func refusal(for request: Request) -> Response? {
        guard request.headers[.secWebSocketVersion] == "13" else {
            return HTTPError(.upgradeRequired, detail: "Unsupported WebSocket version: use 13",
                             headers: [.secWebSocketVersion: "13"]).response
        }
        guard let key = request.headers[.secWebSocketKey], isWellFormedKey(key) else {
            return HTTPError(.badRequest, detail: "Missing or malformed Sec-WebSocket-Key").response
        }
        return nil
    }

    /// RFC 6455 §4.2.1: the key is 16 bytes in base64, that is 22 characters of the base64
    /// alphabet and `==`.
    package static func isWellFormedKey(_ key: String) -> Bool {
        let bytes = key.utf8
        guard bytes.count == 24, bytes.suffix(2).elementsEqual("==".utf8) else { return false }
        return bytes.prefix(22).allSatisfy { byte in
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                 UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "+"), UInt8(ascii: "/"): true
            default: false
            }
        }
    }
}
