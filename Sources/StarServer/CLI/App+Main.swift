public import Star
import ServiceLifecycle
import UnixSignals
import Foundation
import Logging

extension App {
    /// Parses Uvicorn-style options (``ServerOptions``) from the command line and `STAR_*`
    /// variables and serves the app until SIGTERM/SIGINT. A bad option prints a one-line error
    /// and exits with status 2.
    public func main(arguments: [String] = Array(CommandLine.arguments.dropFirst())) async throws {
        let options = ServerOptions.parseOrExit2(arguments)
        adopt(options)
        if options.reload && ProcessInfo.processInfo.environment["STAR_RELOAD_CHILD"] == nil {
            try await superviseWithReload(options: options, arguments: arguments)
            return
        }
        do {
            try validate()
            // The server itself cancels handlers past --timeout-graceful-shutdown.
            let server = Server(app: self, configuration: options.configuration)
            let configuration = ServiceGroupConfiguration(
                services: [.init(service: server)], gracefulShutdownSignals: [.sigterm, .sigint],
                logger: serviceGroupLogger)
            try await ServiceGroup(configuration: configuration).run()
        } catch {
            // A startup failure (routes, a port in use, unreadable TLS files) is one line and exit 1, as in Uvicorn.
            logger.critical("cannot start: \(error)")
            Foundation.exit(1)
        }
        logger.info("Star stopped")
    }

    /// The app's logger for ServiceLifecycle, at `info` or above: at `debug` a `ServiceGroup` logs its
    /// whole configuration (twice, in lines of ~1.5 KB); the server logs one line of its effective
    /// settings at `info` instead.
    private var serviceGroupLogger: Logger {
        var groupLogger = logger
        groupLogger.logLevel = max(groupLogger.logLevel, .info)
        return groupLogger
    }

    /// Takes what belongs to the app from `options`: the log level, and the broadcast URL (which
    /// StarBroadcast's `BroadcastComponent()` reads from the app's configuration on first use).
    func adopt(_ options: ServerOptions) {
        setLogLevel(options.logLevel)
        if let url = options.broadcastUrl { setBroadcastURL(url) }
    }

    /// Runs `--reload`: this process watches and rebuilds; a child process of the same executable
    /// serves. `STAR_RELOAD_BUILD_COMMAND` replaces `swift build` (tests use a fake one).
    private func superviseWithReload(options: ServerOptions, arguments: [String]) async throws {
        let environment = ProcessInfo.processInfo.environment
        let build = environment["STAR_RELOAD_BUILD_COMMAND"].map { ["/bin/sh", "-c", $0] } ?? ["swift", "build"]
        let executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
            ?? CommandLine.arguments[0]
        let supervisor = ReloadSupervisor(
            watcher: SourceWatcher(folders: options.reloadDir.isEmpty ? ["Sources"] : options.reloadDir),
            build: build, serve: [executable] + arguments, serveEnvironment: ["STAR_RELOAD_CHILD": "1"],
            interval: .milliseconds(500), logger: logger
        )
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(
            services: [.init(service: ReloadService(supervisor: supervisor))],
            gracefulShutdownSignals: [.sigterm, .sigint], logger: serviceGroupLogger))
        try await group.run()
    }
}

/// The reload supervisor as a service, so that SIGTERM/SIGINT stop it and its child.
private struct ReloadService: Service {
    let supervisor: ReloadSupervisor
    func run() async throws {
        try await cancelWhenGracefulShutdown { try await supervisor.run() }
    }
}
