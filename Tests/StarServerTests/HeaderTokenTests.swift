import NIOHTTP1
@testable import StarServer
import Testing

/// `HTTPHeaders.lists(_:in:)`, which decides whether a request asks for a WebSocket upgrade and
/// whether NIO's parser stopped after it.
@Suite struct HeaderTokenTests {
    @Test(arguments: [
        ("Upgrade", "websocket", true),
        ("UPGRADE", "WebSocket", true),
        ("upgrade", " websocket ", true),
        ("upgrade", "h2c, websocket", true),
        ("upgrade", "websocket,h2c", true),
        ("upgrade", "h2c,\twebsocket\t,", true),
        ("upgrade", "websockets", false),
        ("upgrade", "web socket", false),
        ("upgrade", "", false),
        ("upgrade", ",,", false),
        ("x-upgrade", "websocket", false),
    ])
    func upgradeFieldListsWebSocket(field: String, value: String, expected: Bool) {
        #expect(HTTPHeaders([(field, value)]).lists("websocket", in: "upgrade") == expected)
    }

    @Test func everyFieldOfTheNameCounts() {
        let headers = HTTPHeaders([("Connection", "keep-alive"), ("Host", "upgrade"), ("connection", "Upgrade")])
        #expect(headers.lists("upgrade", in: "connection"))
        #expect(headers.lists("keep-alive", in: "Connection"))
        #expect(!headers.lists("close", in: "connection"))
        #expect(!HTTPHeaders([("Host", "upgrade")]).lists("upgrade", in: "connection"))
    }
}
