public import ArgumentParser
public import Logging
public import Star
import ServiceLifecycle
import UnixSignals

/// The command-line options of `app.main()`, named after Uvicorn's.
public struct ServerOptions: ParsableArguments {
    @Option(help: "Bind to this address.")
    public var host: String = "127.0.0.1"

    @Option(help: "Bind to this port (0 picks a free one).")
    public var port: Int = 8000

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical (any case).",
            transform: { text in
                guard let level = Logger.Level(rawValue: text.lowercased()) else {
                    throw ValidationError("'\(text)' is not a log level: use trace, debug, info, notice, warning, error or critical")
                }
                return level
            })
    public var logLevel: Logger.Level = .info

    @Flag(inversion: .prefixedNo, help: "Log one line per request.")
    public var accessLog: Bool = true

    @Option(help: "Seconds to wait for handlers after SIGTERM/SIGINT before cancelling them.")
    public var timeoutGracefulShutdown: Double = 10

    public init() {}

    /// The server configuration these options describe.
    public var configuration: ServerConfiguration {
        ServerConfiguration(host: host, port: port, logLevel: logLevel, accessLog: accessLog)
    }
}

extension App {
    /// Parses Uvicorn-style options from the command line and serves the app until the
    /// process is stopped. A bad option prints a one-line error and exits.
    public func main(arguments: [String] = Array(CommandLine.arguments.dropFirst())) async throws {
        let options = ServerOptions.parseOrExit(arguments)
        setLogLevel(options.logLevel)
        do {
            try validate()
        } catch {
            logger.critical("cannot start: \(error)")
            throw error
        }
        let server = Server(app: self, configuration: options.configuration)
        var configuration = ServiceGroupConfiguration(
            services: [.init(service: server)], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        configuration.maximumGracefulShutdownDuration = .milliseconds(Int64(options.timeoutGracefulShutdown * 1000))
        try await ServiceGroup(configuration: configuration).run()
        logger.info("Star stopped")
    }
}
