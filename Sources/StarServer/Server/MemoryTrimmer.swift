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
///   after the last trim, and are more than a quarter of what is in use (5,000 connections that
///   each echoed one 70 kB message left about 26 KiB each free:
///   RSS per idle connection 41.9 → 16.0 KiB).
enum MemoryTrimmer {
    /// Starts sampling `open` on `eventLoop`; cancel the returned task when the server stops.
    static func start(on eventLoop: any EventLoop, open: OpenConnections, every interval: TimeAmount = .seconds(5)) -> RepeatedTask {
        _ = tuneAllocator
        let freeLow = NIOLoopBoundBox.makeEmptyBox(valueType: Int64.self, eventLoop: eventLoop)  // the lowest free bytes since the last trim
        return eventLoop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { _ in
            let count = open.count.load(ordering: .relaxed)
            let highest = max(open.peakSinceTrim.load(ordering: .relaxed), count)
            let manyClosed = highest >= 256 && count <= highest / 2
            var inUse: Int64 = 0, free: Int64 = 0
            let known = star_malloc_usage(&inUse, &free) == 1
            let low = min(freeLow.value ?? free, free)
            freeLow.value = low
            let muchFreed = known && free - low > 32 << 20 && free > inUse / 4
            if manyClosed || muchFreed {
                _ = star_malloc_trim()
                open.peakSinceTrim.store(count, ordering: .relaxed)
                // Trimmed chunks still count as free: measure growth from here.
                freeLow.value = free
            } else {
                open.peakSinceTrim.store(highest, ordering: .relaxed)
            }
        }
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
