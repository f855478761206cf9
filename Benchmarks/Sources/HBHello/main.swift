// hb-hello: the benchmark routes on Hummingbird 2, with its defaults (no logging
// middleware, default event-loop group).
//
//   hb-hello --port 8082
import Foundation
import Hummingbird
import Logging

struct Message: ResponseEncodable {
    var message: String
}

/// `--port N` from the command line (default 8082).
func portArgument() -> Int {
    let arguments = CommandLine.arguments
    if let index = arguments.firstIndex(of: "--port"), index + 1 < arguments.count, let port = Int(arguments[index + 1]) {
        return port
    }
    return 8082
}

let router = Router()
// With STAR_BENCH_PUBLIC=DIR, DIR's files are served (DIR/static/x at /static/x), as star-hello does.
if let folder = ProcessInfo.processInfo.environment["STAR_BENCH_PUBLIC"] {
    router.add(middleware: FileMiddleware(folder))
}
router.get("plaintext") { _, _ -> String in
    "Hello, World!"
}
router.get("json") { _, _ -> Message in
    Message(message: "Hello, World!")
}

var logger = Logger(label: "hb-hello")
logger.logLevel = .warning
let app = Application(
    router: router,
    configuration: .init(address: .hostname("127.0.0.1", port: portArgument()), serverName: "hb-hello"),
    logger: logger
)
try await app.runService()
