/// Carries published events between the processes that share a broadcast. The ``Broadcast``
/// fans each delivered event out to its local subscribers; a backend only moves events.
protocol BroadcastBackend: Sendable {
    /// Begins delivering every event published on any process, local ones included, to `deliver`,
    /// in the order each publisher published them.
    func start(deliver: @escaping @Sendable (BroadcastEvent) -> Void) async throws
    /// Publishes `event` to every process; throws ``BroadcastError`` when it cannot.
    func publish(_ event: BroadcastEvent) async throws
    /// Stops delivering and releases connections.
    func shutdown() async
}
