import Synchronization

/// The one way a Star task waits for something another thread provides (a received message, room
/// in a send buffer, an in-memory test frame, a broadcast event): a FIFO of suspended tasks, each
/// known by an id, so that cancelling one waiter removes and resumes **that one only**.
///
/// The queue itself is a plain value that lives inside its owner's lock, beside the state the
/// waiters wait for, so that "nothing is ready, so wait" is one atomic step. ``suspend(enqueue:cancel:)``
/// does the suspending:
///
/// ```swift
/// let result = await Waiters<Message>.suspend { id, continuation in
///     state.withLock { state in
///         if let ready = state.queue.popFirst() { return .success(ready) }   // no wait after all
///         return state.receivers.enqueue(id: id, continuation)
///     }
/// } cancel: { id in
///     state.withLock { $0.receivers.remove(id: id) }
/// }
/// ```
///
/// Every continuation is resumed exactly once: by whoever removes it from the queue under the
/// owner's lock (`popFirst`, `removeAll`, or `cancel`), and never while it is still queued.
@_spi(Transport) public struct Waiters<Value: Sendable>: Sendable {
    /// A suspended task's continuation. Unsafe continuations: a checked one allocates a canary
    /// per suspension, which the per-message paths of the server cannot afford.
    public typealias Continuation = UnsafeContinuation<Result<Value, any Error>, Never>

    @usableFromInline
    struct Entry: Sendable {
        @usableFromInline let id: UInt64
        @usableFromInline let continuation: Continuation
        @inlinable init(id: UInt64, continuation: Continuation) {
            self.id = id
            self.continuation = continuation
        }
    }

    @usableFromInline var entries: [Entry] = []
    /// The first entry still waiting: `popFirst` moves it instead of shifting the array.
    @usableFromInline var head = 0

    /// An empty queue (it allocates nothing until a task waits).
    @inlinable public init() {}

    /// Whether no task waits.
    @inlinable public var isEmpty: Bool { head == entries.count }

    /// How many tasks wait.
    @inlinable public var count: Int { entries.count - head }

    /// Queues a waiter under `id` (the one ``suspend(enqueue:cancel:)`` handed out) and returns
    /// `nil` — or, when its task is already cancelled, queues nothing and returns the
    /// `CancellationError` to resume it with. Call it under the owner's lock: the cancellation
    /// handler takes the same lock, so a waiter is either found by it or never queued.
    @inlinable public mutating func enqueue(id: UInt64, _ continuation: Continuation) -> Result<Value, any Error>? {
        if Task.isCancelled { return .failure(CancellationError()) }
        entries.append(Entry(id: id, continuation: continuation))
        return nil
    }

    /// Takes the longest-waiting task, to resume it.
    @inlinable public mutating func popFirst() -> Continuation? {
        guard head < entries.count else { return nil }
        let first = entries[head].continuation
        head += 1
        if head == entries.count {
            entries.removeAll(keepingCapacity: entries.capacity <= 4)
            head = 0
        }
        return first
    }

    /// Takes every waiting task, in order, to resume them all (the end of a session or a queue).
    /// Allocates nothing when no task waits (the usual case when a session ends).
    @inlinable public mutating func removeAll() -> [Continuation] {
        guard head < entries.count else { return [] }
        // Indexes, not `entries[head...]`: an ArraySlice here cost two allocations per call (heaptrack).
        var waiting: [Continuation] = []
        waiting.reserveCapacity(entries.count - head)
        for index in head..<entries.count { waiting.append(entries[index].continuation) }
        entries = []
        head = 0
        return waiting
    }

    /// Takes the waiter with `id` if it still waits; `nil` when someone already resumed it.
    @inlinable public mutating func remove(id: UInt64) -> Continuation? {
        for index in head..<entries.count where entries[index].id == id {
            return entries.remove(at: index).continuation
        }
        return nil
    }

    /// A waiter id, unique in the process (one relaxed atomic increment).
    @usableFromInline static func nextID() -> UInt64 { waiterIDs.add(1, ordering: .relaxed).newValue }

    /// Suspends the current task as one waiter.
    ///
    /// - Parameters:
    ///   - enqueue: Runs once, before suspending. Under the owner's lock it either returns the
    ///     result at once (nothing to wait for) or returns what ``enqueue(id:_:)`` returns.
    ///   - cancel: Runs if the task is cancelled while waiting: under the owner's lock it removes
    ///     and returns the waiter with `id` (``remove(id:)``), or `nil` when it was resumed already.
    ///     Only that waiter is resumed, with `CancellationError`.
    /// - Returns: What the waiter was resumed with.
    // Always inlined: called generically across modules it stayed an unspecialized function whose
    // every call looked up `Result`/continuation metadata at run time (perf: -8% on 32 B echoes).
    @inlinable @inline(__always) public nonisolated(nonsending) static func suspend(
        enqueue: (_ id: UInt64, _ continuation: Continuation) -> Result<Value, any Error>?,
        cancel: @Sendable (_ id: UInt64) -> Continuation?
    ) async -> Result<Value, any Error> {
        let id = nextID()
        return await withTaskCancellationHandler {
            await withUnsafeContinuation { (continuation: Continuation) in
                if let immediate = enqueue(id, continuation) { continuation.resume(returning: immediate) }
            }
        } onCancel: {
            cancel(id)?.resume(returning: .failure(CancellationError()))
        }
    }
}

/// The last waiter id handed out.
private let waiterIDs = Atomic<UInt64>(0)
