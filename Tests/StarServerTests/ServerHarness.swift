import Foundation
import NIOCore
import Star
import StarServer

#if canImport(Glibc)
import Glibc
#endif

/// Runs a real server on an ephemeral 127.0.0.1 port for the duration of `body`.
func withServer<T: Sendable>(
    _ app: App, configuration: ServerConfiguration = ServerConfiguration(port: 0, accessLog: false),
    _ body: @Sendable (Int) async throws -> T
) async throws -> T {
    let (ports, continuation) = AsyncStream<Int>.makeStream()
    return try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask {
            try await Server(app: app, configuration: configuration).run { address in
                continuation.yield(address.port ?? 0)
                continuation.finish()
            }
            return nil
        }
        guard let port = await ports.first(where: { _ in true }) else { throw RawSocketError("server did not start") }
        let result = try await body(port)
        group.cancelAll()
        return result
    }
}

struct RawSocketError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// A TCP client for tests that must send bytes no HTTP client would. Its reads block a thread of
/// their own, never one of the cooperative pool's (one per core), which the server under test needs.
final class RawSocket: Sendable {
    private let fd: Int32

    /// Connects to `port` on 127.0.0.1; `receiveBuffer` shrinks the kernel's receive buffer (set
    /// before connecting, so the window is small from the start) for tests of the server's backpressure.
    init(port: Int, timeoutSeconds: Int = 5, receiveBuffer: Int32? = nil) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw RawSocketError("socket failed") }
        if var size = receiveBuffer {
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }
        var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard result == 0 else {
            close(fd)
            throw RawSocketError("connect failed")
        }
    }

    deinit { close(fd) }

    /// Ends the connection now, as a client that goes away (the descriptor is closed on deinit).
    func closeNow() {
        Glibc.shutdown(fd, Int32(SHUT_RDWR))
    }

    /// Half-closes the connection, as `nc -N` does at the end of its input: the server sees EOF,
    /// and this socket can still read what the server writes.
    func finishSending() {
        Glibc.shutdown(fd, Int32(SHUT_WR))
    }

    func send(_ text: String) throws {
        let bytes = Array(text.utf8)
        let sent = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        guard sent == bytes.count else { throw RawSocketError("send failed") }
    }

    func send(bytes: [UInt8]) throws {
        let sent = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        guard sent == bytes.count else { throw RawSocketError("send failed") }
    }

    /// Reads at least `count` bytes (fewer when the peer closes or the timeout passes).
    func receive(atLeast count: Int) async -> [UInt8] {
        await withCheckedContinuation { continuation in
            Thread.detachNewThread {
                var received: [UInt8] = []
                var chunk = [UInt8](repeating: 0, count: 65536)
                while received.count < count {
                    let read = chunk.withUnsafeMutableBytes { recv(self.fd, $0.baseAddress, $0.count, 0) }
                    if read <= 0 { break }
                    received += chunk[0..<read]
                }
                continuation.resume(returning: received)
            }
        }
    }

    /// Reads until the peer closes or `until` holds for what was read, or the timeout passes.
    func read(until done: @escaping @Sendable (String) -> Bool = { _ in false }) async -> (text: String, closed: Bool) {
        await withCheckedContinuation { continuation in
            Thread.detachNewThread { continuation.resume(returning: self.blockingRead(until: done)) }
        }
    }

    /// Reads raw bytes until `marker` arrives, the peer closes, or the timeout passes; made for
    /// streams of megabytes, which `read(until:)` would decode again at every chunk.
    func readBytes(until marker: String) async -> [UInt8] {
        await withCheckedContinuation { continuation in
            Thread.detachNewThread {
                let marker = Array(marker.utf8)
                var received: [UInt8] = []
                var chunk = [UInt8](repeating: 0, count: 65536)
                while true {
                    let count = chunk.withUnsafeMutableBytes { recv(self.fd, $0.baseAddress, $0.count, 0) }
                    if count <= 0 { break }
                    let searchFrom = max(0, received.count - marker.count)
                    received += chunk[0..<count]
                    if received[searchFrom...].firstRange(of: marker) != nil { break }
                }
                continuation.resume(returning: received)
            }
        }
    }

    private func blockingRead(until done: (String) -> Bool) -> (text: String, closed: Bool) {
        var received: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count == 0 { return (String(decoding: received, as: UTF8.self), true) }
            if count < 0 { return (String(decoding: received, as: UTF8.self), false) }
            received += chunk[0..<count]
            let text = String(decoding: received, as: UTF8.self)
            if done(text) { return (text, false) }
        }
    }
}

extension String {
    /// How many times `needle` occurs.
    func occurrences(of needle: String) -> Int { components(separatedBy: needle).count - 1 }
    /// Whether `first` occurs, and before the first occurrence of `second` (which occurs too).
    func has(_ first: String, before second: String) -> Bool {
        guard let a = range(of: first), let b = range(of: second) else { return false }
        return a.lowerBound < b.lowerBound
    }
}
