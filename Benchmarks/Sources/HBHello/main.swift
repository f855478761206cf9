// hb-hello: the benchmark routes on Hummingbird 2, with its defaults (no logging
// middleware, default event-loop group).
//
//   hb-hello --port 8082
//   STAR_BENCH_TLS=cert.pem:key.pem hb-hello --port 8082   # https, h2 or http/1.1 by ALPN (run-h2.sh)
import Foundation
import Hummingbird
import HummingbirdCore
import HummingbirdHTTP2
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
// With STAR_BENCH_TLS=CERT:KEY (PEM files): TLS, and HTTP/2 or HTTP/1.1 by ALPN (HummingbirdHTTP2's
// `http2Upgrade`, its default configuration).
var server: HTTPServerBuilder = .http1()
if let tls = ProcessInfo.processInfo.environment["STAR_BENCH_TLS"] {
    let files = tls.split(separator: ":", maxSplits: 1).map(String.init)
    precondition(files.count == 2, "STAR_BENCH_TLS must be CERT:KEY")
    let tlsConfiguration = TLSConfiguration.makeServerConfiguration(
        certificateChain: try NIOSSLCertificate.fromPEMFile(files[0]).map { .certificate($0) },
        privateKey: .privateKey(try NIOSSLPrivateKey(file: files[1], format: .pem))
    )
    server = try .http2Upgrade(tlsConfiguration: tlsConfiguration)
}
let app = Application(
    router: router,
    server: server,
    configuration: .init(address: .hostname("127.0.0.1", port: portArgument()), serverName: "hb-hello"),
    logger: logger
)
try await app.runService()
