/// What running a route produced: the response, and the error if the handler or a hook threw.
///
/// A class, so that the async frames that wait for one hold a reference rather than a ``Response``
/// (about 100 bytes): an open WebSocket keeps those frames for its whole life, and they decide how
/// many of the task allocator's 1 KiB slabs it keeps (docs/decisions.md, "Memory").
final class RouteOutcome {
    /// The response; hooks' `finish` is applied to it in place for an HTTP route that is not standalone.
    var response: Response
    /// The error the handler or a hook threw, if any.
    let error: (any Error)?
    /// The response is a hook's (an early `onRequest` answer or an `onError` replacement).
    let fromHook: Bool

    init(response: Response, error: (any Error)? = nil, fromHook: Bool = false) {
        self.response = response
        self.error = error
        self.fromHook = fromHook
    }
}
