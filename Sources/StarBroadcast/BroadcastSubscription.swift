import NIOCore
@_spi(Transport) import Star
import Synchronization

/// The events of the channels one ``Broadcast/subscribe(to:bufferSize:isolation:_:)`` scope
/// listens to, in the order each publisher published them.
///
/// **Slow consumers.** Each subscription buffers at most `bufferSize` events. A publisher never
/// waits for a subscriber: when the buffer is full the oldest event is dropped and ``dropped``
/// counts it (the broadcast logs a warning the first time, then every 1,000 drops). A chat client
/// that falls that far behind loses the oldest lines instead of stalling the room or the server's
/// memory; a handler that must not lose anything can check ``dropped`` and close the socket (1008).
public struct BroadcastSubscription: AsyncSequence, Sendable {
    public typealias Element = BroadcastEvent
    public typealias Failure = Never

    let queue: SubscriberQueue

    /// Events dropped so far because this subscriber fell `bufferSize` events behind.
    public var dropped: Int { queue.dropped }

    public func makeAsyncIterator() -> Iterator { Iterator(queue: queue) }

    /// Waits for the next event; ends when the scope ends or the broadcast shuts down.
    public struct Iterator: AsyncIteratorProtocol {
        let queue: SubscriberQueue
        public mutating func next() async -> BroadcastEvent? { await queue.next() }
        public mutating func next(isolation actor: isolated (any Actor)?) async -> BroadcastEvent? { await queue.next() }
    }
}

/// A bounded, drop-oldest queue with one waiting consumer. `push` never blocks.
final class SubscriberQueue: Sendable {
    private struct State {
        var events = CircularBuffer<BroadcastEvent>()
        /// The consumer, when it waits (one iterator at a time; a ``Waiters`` queue all the same,
        /// so that cancellation resumes exactly the task that waits).
        var waiters = Waiters<BroadcastEvent?>()
        var finished = false
        var dropped = 0
    }

    let id: UInt64
    let channels: Set<String>
    private let capacity: Int
    private let state = Mutex(State())

    init(id: UInt64, channels: Set<String>, capacity: Int) {
        self.id = id
        self.channels = channels
        self.capacity = max(1, capacity)
    }

    var dropped: Int { state.withLock { $0.dropped } }

    /// Adds an event; returns the drop count when this push dropped the oldest event.
    @discardableResult
    func push(_ event: BroadcastEvent) -> Int? {
        let (waiter, dropped): (Waiters<BroadcastEvent?>.Continuation?, Int?) = state.withLock { state in
            guard !state.finished else { return (nil, nil) }
            if let waiter = state.waiters.popFirst() { return (waiter, nil) }
            var dropped: Int?
            if state.events.count >= capacity {
                state.events.removeFirst()
                state.dropped += 1
                dropped = state.dropped
            }
            state.events.append(event)
            return (nil, dropped)
        }
        waiter?.resume(returning: .success(event))
        return dropped
    }

    /// Ends the sequence: a waiting consumer gets `nil`, buffered events are discarded.
    func finish() {
        let waiters = state.withLock { state in
            state.finished = true
            state.events.removeAll()
            return state.waiters.removeAll()
        }
        for waiter in waiters { waiter.resume(returning: .success(nil)) }
    }

    /// The next event; `nil` once finished or when the waiting task is cancelled.
    func next() async -> BroadcastEvent? {
        let result = await Waiters<BroadcastEvent?>.suspend { id, continuation in
            state.withLock { state in
                if let event = state.events.popFirst() { return .success(event) }
                if state.finished { return .success(nil) }
                return state.waiters.enqueue(id: id, continuation)
            }
        } cancel: { id in
            self.state.withLock { $0.waiters.remove(id: id) }
        }
        return try? result.get() ?? nil
    }
}
