// hb-ws-echo: a WebSocket echo at /echo on Hummingbird 2 + HummingbirdWebSocket, for run-ws.sh.
// Text comes back as text, binary as binary. Messages up to 16 MiB; no compression (no
// extensions are configured), no logging middleware, log level warning, default event loops.
//
//   hb-ws-echo --port 9102
import Hummingbird
import HummingbirdWebSocket
import Logging

let maxSize = 16 * 1024 * 1024

/// `--port N` from the command line (default 9102).
func portArgument() -> Int {
    let arguments = CommandLine.arguments
    if let index = arguments.firstIndex(of: "--port"), index + 1 < arguments.count, let port = Int(arguments[index + 1]) {
        return port
    }
    return 9102
}

let wsRouter = Router(context: BasicWebSocketRequestContext.self)
wsRouter.ws("/echo") { inbound, outbound, _ in
    for try await message in inbound.messages(maxSize: maxSize) {
        switch message {
        case .text(let text): try await outbound.write(.text(text))
        case .binary(let buffer): try await outbound.write(.binary(buffer))
        }
    }
}

var logger = Logger(label: "hb-ws-echo")
logger.logLevel = .warning
let app = Application(
    router: Router(),
    server: .http1WebSocketUpgrade(
        webSocketRouter: wsRouter,
        configuration: .init(ws: .init(maxFrameSize: maxSize))
    ),
    configuration: .init(address: .hostname("127.0.0.1", port: portArgument()), serverName: "hb-ws-echo"),
    logger: logger
)
try await app.runService()
