/// Code that runs around every non-standalone route's handler, like API Star's event hooks.
///
/// `onRequest` runs in the order the hooks are listed; `onResponse` and `onError` run in
/// reverse order, so hooks nest like a stack. Each method may resolve components through the
/// context (the handler then receives the same instances). Every method has a default that does
/// nothing, so a hook implements only what it needs.
///
/// Two more methods see every HTTP request, also one that matches no route (``CORSHook`` uses
/// them): ``answerBeforeRouting(_:)`` may answer it before routing, and ``finish(_:for:)`` has the
/// last word on every response but a standalone route's. They cannot suspend: they decide from the
/// request alone.
public protocol EventHook: Sendable {
    /// Runs before the handler. Return a response to answer early: the handler is skipped and
    /// only the hooks entered so far see `onResponse`.
    func onRequest(_ context: RequestContext) async throws -> Response?
    /// Runs after the handler returned; returns the response to send (possibly changed).
    func onResponse(_ response: Response, context: RequestContext) async throws -> Response
    /// Runs after the handler or a hook threw. Return a response to answer with it instead of
    /// Star's rendering of the error.
    func onError(_ error: any Error, context: RequestContext) async throws -> Response?
    /// Runs before routing, in the order the hooks are listed; return a response to answer with it
    /// at once (no route, no other hook runs; every hook's ``finish(_:for:)`` still does).
    func answerBeforeRouting(_ request: Request) -> Response?
    /// Runs, in reverse order, on every HTTP response the app sends — a handler's, an error's, a
    /// 404 or 405 — except a standalone route's; it may change the response's head.
    func finish(_ response: inout Response, for request: Request)
}

extension EventHook {
    public func onRequest(_ context: RequestContext) async throws -> Response? { nil }
    public func onResponse(_ response: Response, context: RequestContext) async throws -> Response { response }
    public func onError(_ error: any Error, context: RequestContext) async throws -> Response? { nil }
    public func answerBeforeRouting(_ request: Request) -> Response? { nil }
    public func finish(_ response: inout Response, for request: Request) {}
}
