import Synchronization

/// The default backend: one process, no I/O. Publishing delivers at once.
final class MemoryBackend: BroadcastBackend {
    private let deliver = Mutex<(@Sendable (BroadcastEvent) -> Void)?>(nil)

    func start(deliver: @escaping @Sendable (BroadcastEvent) -> Void) async throws {
        self.deliver.withLock { $0 = deliver }
    }

    func publish(_ event: BroadcastEvent) async throws {
        deliver.withLock { $0 }?(event)
    }

    func shutdown() async {
        deliver.withLock { $0 = nil }
    }
}
