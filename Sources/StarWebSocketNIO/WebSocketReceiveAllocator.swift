package import NIOCore

/// How a WebSocket channel sizes its reads, so that an idle connection keeps no large buffer.
///
/// NIO keeps a channel's receive buffers in a pool, and a pooled buffer keeps the largest size it
/// ever grew to (and the pool up to `maxMessagesPerRead` of them). With NIO's adaptive sizing,
/// one 70 kB message left each idle connection holding about 114 KiB: 5,000 idle connections
/// measured 129.8 KiB each after such a message, 15.7 KiB without it.
///
/// With this allocator, and one read per wake-up (a pool of one buffer), the pooled buffer stays
/// the small one the connection started with. A read that fills it makes the next reads use
/// fresh buffers, which are freed once their bytes are consumed, until a read is small again.
/// Fresh buffers start at 64 KiB and double while reads fill them (up to 1 MiB), so that a large
/// message takes few wake-ups. Measured (run-ws.sh workloads, 5,000 idle connections after one
/// 70 kB message each): 129.8 → 16.0 KiB per connection; 64 KiB echo unchanged once glibc stopped
/// faulting the fresh buffers' pages in again (see `MemoryTrimmer`).
package struct WebSocketReceiveAllocator: RecvByteBufferAllocator {
    /// Reads at least this large switch to fresh buffers: it is the size of the pooled buffer,
    /// the connection's first (StarServer's `Server.receiveAllocator`), and a read that fills it means more is coming.
    package static let largeThreshold = 1024
    package static let smallestFresh = 64 * 1024
    package static let largestFresh = 1024 * 1024
    /// The size of the next fresh buffer.
    private var freshSize = Self.smallestFresh

    /// Creates the allocator of a new WebSocket channel.
    package init() {}

    package func buffer(allocator: ByteBufferAllocator) -> ByteBuffer {
        allocator.buffer(capacity: freshSize)
    }

    /// No size hint: the pool then reuses its buffer as it is while reads are small, and asks
    /// ``buffer(allocator:)`` for a fresh one after a large read.
    package func nextBufferSize() -> Int? { nil }

    /// Returns whether the next read should get a fresh buffer.
    package mutating func record(actualReadBytes: Int) -> Bool {
        if actualReadBytes >= freshSize {
            freshSize = min(freshSize * 2, Self.largestFresh)
        } else if actualReadBytes < freshSize / 4 {
            freshSize = max(freshSize / 2, Self.smallestFresh)
        }
        return actualReadBytes >= Self.largeThreshold
    }
}
