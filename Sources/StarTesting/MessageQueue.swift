@_spi(Transport) import Star
import Synchronization

/// An unbounded FIFO between tasks whose `next` suspends until an element or the end arrives,
/// with an optional timeout so that a test never hangs. Several tasks may wait at once; each is
/// one entry of a ``Waiters`` queue, so a timeout (or cancellation) ends that wait only.
final class MessageQueue<Element: Sendable>: Sendable {
    private struct State {
        var elements: [Element] = []
        var waiters = Waiters<Element?>()
        var finished = false
    }
    private let state = Mutex(State())

    func push(_ element: Element) {
        let waiter: Waiters<Element?>.Continuation? = state.withLock { state in
            guard !state.finished else { return nil }
            if let waiter = state.waiters.popFirst() { return waiter }
            state.elements.append(element)
            return nil
        }
        waiter?.resume(returning: .success(element))
    }

    /// Ends the queue: waiting and later `next` calls return `nil` once the elements are taken.
    func finish() {
        let waiters = state.withLock { state in
            state.finished = true
            return state.waiters.removeAll()
        }
        for waiter in waiters { waiter.resume(returning: .success(nil)) }
    }

    /// The next element, `nil` after `finish()`; throws ``TestTimeout`` after `timeout`.
    func next(timeout: Duration?) async throws -> Element? {
        guard let timeout else { return try await next() }
        return try await withThrowingTaskGroup(of: Element?.self) { group in
            group.addTask { try await self.next() }
            group.addTask {
                try await Task.sleep(for: timeout)
                throw TestTimeout(after: timeout)
            }
            defer { group.cancelAll() }
            return try await group.next()!
        }
    }

    private func next() async throws -> Element? {
        try await Waiters<Element?>.suspend { id, continuation in
            state.withLock { state in
                if !state.elements.isEmpty { return .success(state.elements.removeFirst()) }
                if state.finished { return .success(nil) }
                return state.waiters.enqueue(id: id, continuation)
            }
        } cancel: { id in
            self.state.withLock { $0.waiters.remove(id: id) }
        }.get()
    }
}

/// A test waited longer than its timeout for a message or a handshake.
public struct TestTimeout: Error, Sendable, CustomStringConvertible {
    /// How long the test waited.
    public let after: Duration
    public var description: String { "nothing arrived within \(after)" }
}
