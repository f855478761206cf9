#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
package import Star

/// The checks of an opening handshake (RFC 6455 §4.2.1) that come before routing, the same for
/// every transport: the server answers a refused handshake without running the app, and so does
/// the in-memory test client. The rest of the handshake is the app's: the route decides with
/// `connect()`/`deny()`, `WebSocketComponent` checks `Origin`, and `WebSocketHandshake` the
/// subprotocol.
package enum WebSocketHandshakeRules {
    /// Whether a request asks to open a WebSocket: a `GET` with `Upgrade: websocket`
    /// (the transport reads the header tokens; this adds the method). An HTTP/2 transport reports
    /// an extended CONNECT with `:protocol websocket` (RFC 8441) as such a `GET`.
    package static func isHandshake(_ request: Request, wantsWebSocket: Bool) -> Bool {
        wantsWebSocket && request.method == .get
    }

    /// Why a handshake is refused before routing.
    package enum Refusal: Sendable, Equatable {
        /// `Sec-WebSocket-Version` is not 13: 426 with `Sec-WebSocket-Version: 13`.
        case unsupportedVersion
        /// `Sec-WebSocket-Key` is missing or not 16 bytes of base64: 400.
        case malformedKey

        /// The response that answers the handshake.
        package var response: Response {
            switch self {
            case .unsupportedVersion:
                HTTPError(.upgradeRequired, detail: "Unsupported WebSocket version: use 13",
                          headers: [.secWebSocketVersion: "13"]).response
            case .malformedKey:
                HTTPError(.badRequest, detail: "Missing or malformed Sec-WebSocket-Key").response
            }
        }
    }

    /// Why a handshake is malformed, or `nil` when it is well formed (version 13 and a well-formed
    /// key). A one-byte value, not the response: the connection's task keeps it across a
    /// suspension, and an idle WebSocket keeps that task's frames.
    ///
    /// Over HTTP/2 (RFC 8441 §5) there is no key: the extended CONNECT stream itself is the proof
    /// that the client speaks WebSocket, and only the version is checked.
    package static func check(_ request: Request) -> Refusal? {
        guard request.headers[.secWebSocketVersion] == "13" else { return .unsupportedVersion }
        if request.httpVersion.major >= 2 { return nil }
        guard let key = request.headers[.secWebSocketKey], isWellFormedKey(key) else { return .malformedKey }
        return nil
    }

    /// The `Sec-WebSocket-Accept` that answers `key` (RFC 6455 §4.2.2): the base64 of the SHA-1 of
    /// the key followed by the protocol's GUID.
    package static func acceptValue(forKey key: String) -> String {
        Data(SHA1.digest(Array(key.utf8) + Array("258EAFA5-E914-47DA-95CA-C5AB0DC85B11".utf8))).base64EncodedString()
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
