import Synchronization

/// An unbounded FIFO between tasks whose `next` suspends until an element or the end arrives,
/// with an optional timeout so that a test never hangs.
final class MessageQueue<Element: Sendable>: Sendable {
    private struct State {
        var elements: [Element] = []
        var waiters: [CheckedContinuation<Element?, any Error>] = []
        var finished = false
    }
    private let state = Mutex(State())

    func push(_ element: Element) {
        let waiter: CheckedContinuation<Element?, any Error>? = state.withLock { state in
            guard !state.finished else { return nil }
            if !state.waiters.isEmpty { return state.waiters.removeFirst() }
            state.elements.append(element)
            return nil
        }
        waiter?.resume(returning: element)
    }

    /// Ends the queue: waiting and later `next` calls return `nil` once the elements are taken.
    func finish() {
        let waiters = state.withLock { state in
            state.finished = true
            defer { state.waiters.removeAll() }
            return state.waiters
        }
        for waiter in waiters { waiter.resume(returning: nil) }
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
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                let immediate: Result<Element?, any Error>? = state.withLock { state in
                    if !state.elements.isEmpty { return .success(state.elements.removeFirst()) }
                    if state.finished { return .success(nil) }
                    if Task.isCancelled { return .failure(CancellationError()) }
                    state.waiters.append(continuation)
                    return nil
                }
                if let immediate { continuation.resume(with: immediate) }
            }
        } onCancel: {
            let waiters = state.withLock { state in
                defer { state.waiters.removeAll() }
                return state.waiters
            }
            for waiter in waiters { waiter.resume(throwing: CancellationError()) }
        }
    }
}

/// A test waited longer than its timeout for a message or a handshake.
public struct TestTimeout: Error, Sendable, CustomStringConvertible {
    /// How long the test waited.
    public let after: Duration
    public var description: String { "nothing arrived within \(after)" }
}
