import Foundation
import NIOCore

/// The CPUs this process may run on: its affinity mask, capped by a cgroup CPU quota — not the
/// machine's core count, which NIO uses by default and which makes event loops share a core
/// under `taskset` or a container limit.
enum AvailableCPUs {
    static var count: Int {
        var cpus = System.coreCount
        #if os(Linux)
        // `Cpus_allowed:` in /proc/self/status is the affinity mask in hex, comma-grouped.
        if let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Cpus_allowed:") })
        {
            let mask = line.dropFirst("Cpus_allowed:".count).filter { $0.isHexDigit }
            let allowed = mask.reduce(0) { $0 + (Int(String($1), radix: 16) ?? 0).nonzeroBitCount }
            if allowed > 0 { cpus = min(cpus, allowed) }
        }
        if let quota = try? String(contentsOfFile: "/sys/fs/cgroup/cpu.max", encoding: .utf8) {
            let parts = quota.split(whereSeparator: { $0 == " " || $0 == "\n" })
            if parts.count == 2, let limit = Double(parts[0]), let period = Double(parts[1]), period > 0 {
                cpus = min(cpus, max(1, Int((limit / period).rounded(.up))))
            }
        }
        #endif
        return max(1, cpus)
    }
}
