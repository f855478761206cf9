/// Code that runs around every non-standalone route's handler, like API Star's event hooks.
///
/// `onRequest` runs in the order the hooks are listed; `onResponse` and `onError` run in
/// reverse order, so hooks nest like a stack. Each method may resolve components through the
/// context (the handler then receives the same instances). Every method has a default that does
/// nothing, so a hook implements only what it needs.
public protocol EventHook: Sendable {
    /// Runs before the handler. Return a response to answer early: the handler is skipped and
    /// only the hooks entered so far see `onResponse`.
    func onRequest(_ context: RequestContext) async throws -> Response?
    /// Runs after the handler returned; returns the response to send (possibly changed).
    func onResponse(_ response: Response, context: RequestContext) async throws -> Response
    /// Runs after the handler or a hook threw. Return a response to answer with it instead of
    /// Star's rendering of the error.
    func onError(_ error: any Error, context: RequestContext) async throws -> Response?
}

extension EventHook {
    public func onRequest(_ context: RequestContext) async throws -> Response? { nil }
    public func onResponse(_ response: Response, context: RequestContext) async throws -> Response { response }
    public func onError(_ error: any Error, context: RequestContext) async throws -> Response? { nil }
}
