import CStarMemory
import Foundation
import NIOCore
import Synchronization

/// Gives freed memory back to the system when it piles up, and keeps glibc from giving it back
/// (and faulting it in again) at nearly every `free` while connections are busy.
///
/// glibc keeps what its arenas freed. Every five seconds this trims (`malloc_trim(0)`: a walk of
/// the heap, a few milliseconds for hundreds of MB) when either
/// - many connections closed: the open ones fell to half a peak of at least 256 since the last
///   trim (after a soak of 10,000 connections the server held 465 MB of which 4 MB were in use,
///   and a trim brought its RSS from 492 MB to 33 MB); or
/// - much was freed: the arenas' free bytes grew by more than 32 MiB since the lowest point seen
///   (from the server's start, then from the last trim), and are more than a quarter of what is in
///   use. 5,000 connections that each echoed one 70 kB message, then held idle: 35.0 KiB of RSS per
///   connection without this, 14.6 with it.
enum MemoryTrimmer {
    /// Starts sampling `open` on `eventLoop`; cancel the returned task when the server stops.
    static func start(on eventLoop: any EventLoop, open: OpenConnections, every interval: TimeAmount = .seconds(5)) -> RepeatedTask {
        _ = tuneAllocator
        let policy = NIOLoopBoundBox.makeBoxSendingValue(TrimPolicy(freeAtStart: usage()?.free), eventLoop: eventLoop)
        return eventLoop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { _ in
            let count = open.count.load(ordering: .relaxed)
            let peak = open.peakSinceTrim.load(ordering: .relaxed)
            if policy.value.shouldTrim(open: count, peak: peak, usage: usage()) {
                _ = star_malloc_trim()
                open.peakSinceTrim.store(count, ordering: .relaxed)
            } else {
                open.peakSinceTrim.store(max(peak, count), ordering: .relaxed)
            }
        }
    }

    /// The allocator's bytes in use and free, or `nil` where the C library does not tell.
    private static func usage() -> (inUse: Int64, free: Int64)? {
        var inUse: Int64 = 0, free: Int64 = 0
        return star_malloc_usage(&inUse, &free) == 1 ? (inUse, free) : nil
    }

    /// Sets glibc's trim and mmap thresholds to 4 MiB, once per process, unless `GLIBC_TUNABLES`
    /// sets malloc options itself.
    ///
    /// By default glibc gives the top of a heap back to the system as soon as more than 128 KiB
    /// of it is free, and the next allocation faults those pages in again. Echoing 64 KiB messages,
    /// the fresh receive buffers of large reads (``WebSocketReceiveAllocator``) made that happen
    /// for nearly every message: 450,000 page faults in 2 s and half the throughput (1,147 →
    /// 1,997 MB/s once set, and 67 faults). Setting the trim threshold also freezes the mmap
    /// threshold, which glibc otherwise raises as large blocks are freed: 4 MiB keeps most
    /// messages in the heaps. What stays free below the threshold is what ``start(on:open:every:)`` trims.
    private static let tuneAllocator: Void = {
        if let tunables = ProcessInfo.processInfo.environment["GLIBC_TUNABLES"], tunables.contains("malloc.") { return }
        _ = star_malloc_set_thresholds(4 << 20, 4 << 20)
    }()
}

/// When ``MemoryTrimmer`` trims, decided from one sample every few seconds.
struct TrimPolicy {
    /// The fewest free bytes seen since the start or the last trim.
    private var lowestFree: Int64?

    init(freeAtStart: Int64?) {
        lowestFree = freeAtStart
    }

    /// Whether to trim now, given the open connections, the most open at once since the last
    /// trim, and the allocator's bytes in use and free (`nil` where unknown).
    mutating func shouldTrim(open: Int, peak: Int, usage: (inUse: Int64, free: Int64)?) -> Bool {
        let highest = max(peak, open)
        let manyClosed = highest >= 256 && open <= highest / 2
        var muchFreed = false
        if let usage {
            let low = min(lowestFree ?? usage.free, usage.free)
            lowestFree = low
            muchFreed = usage.free - low > 32 << 20 && usage.free > usage.inUse / 4
        }
        guard manyClosed || muchFreed else { return false }
        // Trimmed memory still counts as free: growth is measured from here.
        lowestFree = usage?.free
        return true
    }
}
