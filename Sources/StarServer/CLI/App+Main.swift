public import Star
import ServiceLifecycle
import UnixSignals
import Foundation

extension App {
    /// Parses Uvicorn-style options (``ServerOptions``) from the command line and `STAR_*`
    /// variables and serves the app until SIGTERM/SIGINT. A bad option prints a one-line error
    /// and exits with status 2.
    public func main(arguments: [String] = Array(CommandLine.arguments.dropFirst())) async throws {
        let options = ServerOptions.parseOrExit2(arguments)
        setLogLevel(options.logLevel)
        if options.reload {
            logger.critical("--reload is not supported by this version of Star")
            Foundation.exit(2)
        }
        do {
            try validate()
        } catch {
            logger.critical("cannot start: \(error)")
            throw error
        }
        let server = Server(app: self, configuration: options.configuration)
        var configuration = ServiceGroupConfiguration(
            services: [.init(service: server)], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        configuration.maximumGracefulShutdownDuration = options.configuration.gracefulShutdownTimeout
        try await ServiceGroup(configuration: configuration).run()
        logger.info("Star stopped")
    }
}
