// vapor-ws-echo: a WebSocket echo at /echo on Vapor 4 (websocket-kit through `app.webSocket`),
// for run-ws.sh. Text comes back as text, binary as binary. Frames up to 16 MiB (websocket-kit
// aggregates fragments up to the same size); no compression; log level warning and no request
// logging middleware.
//
//   vapor-ws-echo --port 9103
//   VAPOR_LOOPS=1 vapor-ws-echo --port 9103   # one event loop (NIO's default: the machine's cores)
import Foundation
import NIOCore
import Vapor

let maxSize = 16 * 1024 * 1024

/// `--port N` from the command line (default 9103).
func portArgument() -> Int {
    let arguments = CommandLine.arguments
    if let index = arguments.firstIndex(of: "--port"), index + 1 < arguments.count, let port = Int(arguments[index + 1]) {
        return port
    }
    return 9103
}

// NIO sizes its shared group by the machine's cores, not the CPUs the process may use: under
// `taskset -c 0` that is two loops on one core. VAPOR_LOOPS sets the count (before the group exists).
if let loops = ProcessInfo.processInfo.environment["VAPOR_LOOPS"].flatMap(Int.init), loops > 0 {
    NIOSingletons.groupLoopCountSuggestion = loops
}

var environment = Environment.production
environment.arguments = ["vapor-ws-echo"]  // Vapor's own `serve` command, options set below
let app = try await Application.make(environment)
app.logger.logLevel = .warning
app.http.server.configuration.hostname = "127.0.0.1"
app.http.server.configuration.port = portArgument()
// The default middleware logs every request (RouteLoggingMiddleware); keep only the error middleware.
app.middleware = Middlewares()
app.middleware.use(ErrorMiddleware.default(environment: app.environment))

// Vapor's documented style: callbacks on the connection's event loop.
app.webSocket("echo", maxFrameSize: WebSocketMaxFrameSize(integerLiteral: maxSize)) { _, ws in
    ws.onText { ws, text in ws.send(text) }
    ws.onBinary { ws, buffer in ws.send(buffer) }
}

do {
    try await app.execute()
} catch {
    app.logger.critical("\(error)")
    try? await app.asyncShutdown()
    throw error
}
try await app.asyncShutdown()
