import Foundation
import Logging

/// `--reload`: runs the server as a child process, watches the sources, rebuilds on a change,
/// and restarts the child when the build succeeds. When the build fails it prints the
/// compiler's output and keeps the old child serving.
struct ReloadSupervisor: Sendable {
    /// The folders to watch.
    let watcher: SourceWatcher
    /// The build command (`swift build` by default), run in the current directory.
    let build: [String]
    /// The server command: this executable with the same options; the child serves instead of
    /// supervising because its environment has `STAR_RELOAD_CHILD`.
    let serve: [String]
    /// Extra environment for the server child.
    let serveEnvironment: [String: String]
    /// How often the sources are checked.
    let interval: Duration
    /// How long the old server may take to stop after SIGTERM before it is killed.
    var stopGrace: Duration = .seconds(5)
    let logger: Logger

    /// Supervises until the task is cancelled; then stops the child (SIGTERM) and returns.
    func run() async throws {
        var child = try start()
        var stamps = watcher.snapshot()
        logger.info("reload: watching \(watcher.folders.joined(separator: ", ")); build command: \(build.joined(separator: " "))")
        defer { stop(child) }
        while !Task.isCancelled {
            try? await Task.sleep(for: interval)
            let current = watcher.snapshot()
            let changed = SourceWatcher.changes(from: stamps, to: current)
            guard !changed.isEmpty else { continue }
            stamps = current
            logger.info("reload: \(changed.count) file(s) changed (\(changed.prefix(3).joined(separator: ", "))), building")
            let (status, output) = try await runBuild()
            // Files written during the build count as changes of this round.
            stamps = watcher.snapshot()
            guard status == 0 else {
                logger.error("reload: build failed (exit \(status)); the old server keeps running\n\(output)")
                continue
            }
            logger.info("reload: build succeeded, restarting the server")
            stop(child)
            child = try start()
        }
    }

    private func start() throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: serve[0])
        process.arguments = Array(serve.dropFirst())
        process.environment = ProcessInfo.processInfo.environment.merging(serveEnvironment) { $1 }
        try process.run()
        return process
    }

    /// SIGTERM (the server shuts down gracefully), then SIGKILL after ``stopGrace``.
    private func stop(_ process: Process) {
        guard process.isRunning else { return }
        process.terminate()
        let deadline = ContinuousClock.now + stopGrace
        while process.isRunning && ContinuousClock.now < deadline { usleep(20_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    private func runBuild() async throws -> (Int32, String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = build
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = await Task.detached { pipe.fileHandleForReading.readDataToEndOfFile() }.value
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: output, as: UTF8.self))
    }
}
