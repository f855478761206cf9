// vapor-hello: the benchmark routes on Vapor 4, log level warning and no request logging.
//
//   vapor-hello --port 8083
//   STAR_BENCH_TLS=cert.pem:key.pem vapor-hello --port 8083   # https, h2 or http/1.1 by ALPN (run-h2.sh)
import NIOSSL
import Vapor

struct Message: Content {
    var message: String
}

/// `--port N` from the command line (default 8083).
func portArgument() -> Int {
    let arguments = CommandLine.arguments
    if let index = arguments.firstIndex(of: "--port"), index + 1 < arguments.count, let port = Int(arguments[index + 1]) {
        return port
    }
    return 8083
}

var environment = Environment.production
environment.arguments = ["vapor-hello"]  // Vapor's own `serve` command, options set below
let app = try await Application.make(environment)
app.logger.logLevel = .warning
app.http.server.configuration.hostname = "127.0.0.1"
app.http.server.configuration.port = portArgument()
// With STAR_BENCH_TLS=CERT:KEY (PEM files): TLS, and HTTP/2 or HTTP/1.1 by ALPN (Vapor's own switch).
if let tls = Environment.get("STAR_BENCH_TLS") {
    let files = tls.split(separator: ":", maxSplits: 1).map(String.init)
    precondition(files.count == 2, "STAR_BENCH_TLS must be CERT:KEY")
    app.http.server.configuration.supportVersions = [.one, .two]
    app.http.server.configuration.tlsConfiguration = .makeServerConfiguration(
        certificateChain: try NIOSSLCertificate.fromPEMFile(files[0]).map { .certificate($0) },
        privateKey: .privateKey(try NIOSSLPrivateKey(file: files[1], format: .pem))
    )
}
// The default middleware logs every request (RouteLoggingMiddleware); keep only the error middleware.
app.middleware = Middlewares()
app.middleware.use(ErrorMiddleware.default(environment: app.environment))
// With STAR_BENCH_PUBLIC=DIR, DIR's files are served (DIR/static/x at /static/x), as star-hello does.
if let folder = Environment.get("STAR_BENCH_PUBLIC") {
    app.middleware.use(FileMiddleware(publicDirectory: folder + "/"))
}

// Plain (non-async) closures: Vapor's idiomatic hello world, answered on the event loop.
app.get("plaintext") { _ -> String in
    "Hello, World!"
}
app.get("json") { _ -> Message in
    Message(message: "Hello, World!")
}

do {
    try await app.execute()
} catch {
    app.logger.critical("\(error)")
    try? await app.asyncShutdown()
    throw error
}
try await app.asyncShutdown()
