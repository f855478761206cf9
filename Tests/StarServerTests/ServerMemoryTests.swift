import NIOCore
import StarWebSocketNIO
import Testing
@testable import StarServer

/// A WebSocket channel's receive buffers: after large reads, the buffer an idle connection keeps
/// is still the small one (NIO's pool, driven the way a channel drives it, one read per wake-up).
@Suite struct ReceiveBufferTests {
    /// One socket read of `bytes` bytes into the pool's next buffer; returns that buffer.
    @discardableResult
    static func read(_ bytes: Int, into pool: inout NIOPooledRecvBufferAllocator) -> ByteBuffer {
        let (buffer, _) = pool.buffer(allocator: ByteBufferAllocator()) { buffer in
            buffer.writeRepeatingByte(1, count: min(bytes, buffer.writableBytes))
        }
        pool.record(actualReadBytes: min(bytes, buffer.readableBytes))
        return buffer
    }

    @Test func largeReadsDoNotGrowThePooledBuffer() {
        // The HTTP phase reads the handshake with NIO's adaptive sizing; the upgrade switches allocators.
        var pool = NIOPooledRecvBufferAllocator(capacity: 1, recvAllocator: Server.receiveAllocator)
        let first = Self.read(300, into: &pool)
        #expect(first.capacity == WebSocketReceiveAllocator.largeThreshold)
        pool.recvAllocator = WebSocketReceiveAllocator()
        #expect(Self.read(100, into: &pool).capacity == first.capacity)
        // A read that fills the small buffer; the decoder still holds it (a partial frame).
        let held = Self.read(first.capacity, into: &pool)
        let large = Self.read(70_000, into: &pool)
        #expect(large.capacity >= WebSocketReceiveAllocator.smallestFresh)
        #expect(large.readableBytes == WebSocketReceiveAllocator.smallestFresh)
        _ = held
        // Small reads again: they reuse the small pooled buffer, which never grew.
        Self.read(10, into: &pool)
        let idle = Self.read(10, into: &pool)
        #expect(idle.capacity == first.capacity)
    }

    @Test func freshBuffersGrowWhileReadsFillThemAndShrinkAfter() {
        var allocator = WebSocketReceiveAllocator()
        let allocate = { (allocator: WebSocketReceiveAllocator) in allocator.buffer(allocator: ByteBufferAllocator()).capacity }
        #expect(allocate(allocator) == WebSocketReceiveAllocator.smallestFresh)
        var size = WebSocketReceiveAllocator.smallestFresh
        while size < WebSocketReceiveAllocator.largestFresh {
            let fresh = allocator.record(actualReadBytes: size)
            #expect(fresh)
            size *= 2
            #expect(allocate(allocator) == size)
        }
        var fresh = allocator.record(actualReadBytes: size)
        #expect(fresh)
        #expect(allocate(allocator) == WebSocketReceiveAllocator.largestFresh)
        // Reads well below the fresh size halve it, down to the smallest; small reads leave fresh buffers.
        fresh = allocator.record(actualReadBytes: 3000)
        #expect(fresh)
        #expect(allocate(allocator) == WebSocketReceiveAllocator.largestFresh / 2)
        fresh = allocator.record(actualReadBytes: 100)
        #expect(!fresh)
        #expect(allocator.nextBufferSize() == nil)
    }
}

/// When the server gives freed memory back (``TrimPolicy``, sampled every 5 s).
@Suite struct TrimPolicyTests {
    static let mib: Int64 = 1 << 20

    @Test func trimsWhenConnectionsFellToHalfAPeak() {
        var policy = TrimPolicy(freeAtStart: nil)
        let trim1 = policy.shouldTrim(open: 200, peak: 300, usage: nil)
        #expect(!trim1)   // 200 > 150
        let trim2 = policy.shouldTrim(open: 150, peak: 300, usage: nil)
        #expect(trim2)
        let trim3 = policy.shouldTrim(open: 50, peak: 200, usage: nil)
        #expect(!trim3)    // a peak under 256 never counts
    }

    @Test func trimsOnceWhenMuchWasFreedSinceTheStart() {
        var policy = TrimPolicy(freeAtStart: 1 * Self.mib)
        let trim4 = policy.shouldTrim(open: 10, peak: 10, usage: (inUse: 100 * Self.mib, free: 20 * Self.mib))
        #expect(!trim4)
        // 40 MiB more free than at the start, and more than a quarter of what is in use.
        let trim5 = policy.shouldTrim(open: 10, peak: 10, usage: (inUse: 100 * Self.mib, free: 41 * Self.mib))
        #expect(trim5)
        // Trimmed pages still count as free: no trim again until more is freed.
        let trim6 = policy.shouldTrim(open: 10, peak: 10, usage: (inUse: 100 * Self.mib, free: 41 * Self.mib))
        #expect(!trim6)
        let trim7 = policy.shouldTrim(open: 10, peak: 10, usage: (inUse: 100 * Self.mib, free: 60 * Self.mib))
        #expect(!trim7)
        let trim8 = policy.shouldTrim(open: 10, peak: 10, usage: (inUse: 100 * Self.mib, free: 80 * Self.mib))
        #expect(trim8)
    }

    @Test func freeMemoryThatIsSmallNextToWhatIsInUseStays() {
        var policy = TrimPolicy(freeAtStart: 0)
        let trim9 = policy.shouldTrim(open: 10, peak: 10, usage: (inUse: 1000 * Self.mib, free: 100 * Self.mib))
        #expect(!trim9)
    }
}
