import Foundation
import Logging
@testable import StarServer
import Testing

@Suite(.serialized) struct ReloadTests {
    func temporaryFolder() throws -> String {
        let path = NSTemporaryDirectory() + "star-reload-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: path + "/Sources/App", withIntermediateDirectories: true)
        try "let a = 1\n".write(toFile: path + "/Sources/App/main.swift", atomically: true, encoding: .utf8)
        return path
    }

    func lines(_ path: String) -> [String] {
        ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
    }

    func waitUntil(_ seconds: Double = 10, _ condition: () -> Bool) async throws -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if condition() { return true }
            try await Task.sleep(for: .milliseconds(50))
        }
        return condition()
    }

    @Test func watcherSeesAddedChangedAndRemovedFiles() throws {
        let root = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let watcher = SourceWatcher(folders: [root + "/Sources"])
        let first = watcher.snapshot()
        #expect(first.count == 1)
        try "let a = 22\n".write(toFile: root + "/Sources/App/main.swift", atomically: true, encoding: .utf8)
        try "x".write(toFile: root + "/Sources/App/New.swift", atomically: true, encoding: .utf8)
        try "hidden".write(toFile: root + "/Sources/App/.swp", atomically: true, encoding: .utf8)
        let second = watcher.snapshot()
        #expect(SourceWatcher.changes(from: first, to: second) == [root + "/Sources/App/New.swift", root + "/Sources/App/main.swift"])
        try FileManager.default.removeItem(atPath: root + "/Sources/App/New.swift")
        #expect(SourceWatcher.changes(from: second, to: watcher.snapshot()) == [root + "/Sources/App/New.swift"])
    }

    func supervisor(root: String, build: String) -> ReloadSupervisor {
        ReloadSupervisor(
            watcher: SourceWatcher(folders: [root + "/Sources"]),
            build: ["/bin/sh", "-c", build],
            serve: ["/bin/sh", "-c", "echo started >> \(root)/starts.log; exec sleep 30"],
            serveEnvironment: [:], interval: .milliseconds(100), stopGrace: .milliseconds(300),
            logger: Logger(label: "reload-test")
        )
    }

    @Test func successfulBuildRestartsTheServer() async throws {
        let root = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let task = Task { try await supervisor(root: root, build: "echo built >> \(root)/builds.log").run() }
        defer { task.cancel() }
        #expect(try await waitUntil { lines(root + "/starts.log").count == 1 })
        try "let a = 333\n".write(toFile: root + "/Sources/App/main.swift", atomically: true, encoding: .utf8)
        #expect(try await waitUntil { lines(root + "/starts.log").count == 2 }, "restarted after the build")
        #expect(lines(root + "/builds.log") == ["built"])
        task.cancel()
        _ = await task.result
    }

    @Test func failedBuildKeepsTheOldServer() async throws {
        let root = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let task = Task { try await supervisor(root: root, build: "echo built >> \(root)/builds.log; exit 1").run() }
        defer { task.cancel() }
        #expect(try await waitUntil { lines(root + "/starts.log").count == 1 })
        try "let a = oops\n".write(toFile: root + "/Sources/App/main.swift", atomically: true, encoding: .utf8)
        #expect(try await waitUntil { lines(root + "/builds.log").count == 1 }, "the change was built")
        try await Task.sleep(for: .milliseconds(500))
        #expect(lines(root + "/starts.log").count == 1, "a failed build does not restart")
        task.cancel()
        _ = await task.result
    }
}
