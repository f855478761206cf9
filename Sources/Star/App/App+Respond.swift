import HTTPTypes
import Logging
import NIOCore

extension App {
    /// Handles one request that a transport received, and returns the response to send — or
    /// `nil` when a WebSocket handshake was accepted, after which no HTTP response is ever sent.
    ///
    /// This is the single entry point of every transport. It never throws: errors become
    /// responses (`HTTPError` as its status, anything else as `500`), and WebSocket sessions
    /// are closed here when the handler ends (1000 on return, 1011 on a throw).
    ///
    /// - Parameters:
    ///   - request: The request, its body in memory or streaming in (``RequestBody``).
    ///   - webSocket: The transport's session when the request is a WebSocket handshake it can
    ///     accept; `nil` for plain HTTP.
    public func respond(to request: Request, webSocket: (any WebSocketTransport)? = nil) async -> Response? {
        switch prepare(request, webSocket: webSocket) {
        case .answered(let response):
            return response
        case .http(let context):
            return await respondHTTP(context).response
        case .webSocket(let context, let handshake):
            return await respondWebSocket(context, handshake)?.response
        }
    }

    /// What a request needs once routed: an answer already, or a handler to run.
    private enum Routed {
        /// Boxed: the enum is a local of ``respond(to:webSocket:)``, whose frame an open WebSocket keeps.
        indirect case answered(Response)
        case http(RequestContext)
        case webSocket(RequestContext, WebSocketHandshake)
    }

    /// Routing, and everything else that needs no suspension, down to the hooks' `finish` on an
    /// early answer. It is kept out of the async functions (never inlined) so that their frames,
    /// which an open WebSocket keeps for its whole life, hold only what running the handler needs.
    @inline(never)
    private func prepare(_ request: Request, webSocket: (any WebSocketTransport)?) -> Routed {
        let routed = route(request, webSocket: webSocket)
        if case .answered(var response) = routed {
            finish(&response, for: request)
            return .answered(response)
        }
        return routed
    }

    /// Finds the request's route and checks what can be checked before its handler runs.
    private func route(_ request: Request, webSocket: (any WebSocketTransport)?) -> Routed {
        for hook in eventHooks {
            if let early = hook.answerBeforeRouting(request) { return .answered(early) }
        }
        let router: Router
        do { router = try self.router } catch {
            logger.error("cannot route: \(error)")
            return .answered(Response.errorBody(status: .internalServerError, detail: "Server error"))
        }
        switch router.match(request.method, path: request.path) {
        case .notFound:
            if let location = Self.trailingSlashTwin(of: request, in: router) {
                return .answered(Response(status: .temporaryRedirect, headers: [.location: location]))
            }
            return .answered(HTTPError(.notFound).response)
        case .methodNotAllowed(let methods):
            let allow = methods.map(\.rawValue).joined(separator: ", ")
            // OPTIONS is answered for every path that has routes: what it allows (RFC 9110 §9.3.7).
            if request.method == .options { return .answered(Response(status: .noContent, headers: [.allow: allow + ", OPTIONS"])) }
            return .answered(HTTPError(.methodNotAllowed, headers: [.allow: allow]).response)
        case .found(let route, let parameters):
            // The route's body limit, checked on what is known before the handler runs (the declared
            // length, a body already in memory); a streamed body enforces it as it is read.
            var request = request
            request.body.limit = route.maxBodySize ?? maxBodySize
            let declared = max(request.headers[.contentLength].flatMap(Int.init) ?? 0, request.body.buffer?.readableBytes ?? 0)
            guard declared <= request.body.limit else {
                return .answered(RequestBody.tooLarge(request.body.limit).response)
            }
            if route.isWebSocket && webSocket == nil {
                return .answered(HTTPError(
                    .upgradeRequired,
                    detail: "This is a WebSocket endpoint: connect with a WebSocket client (Upgrade: websocket)",
                    headers: [.upgrade: "websocket", .connection: "Upgrade", .secWebSocketVersion: "13"]
                ).response)
            }
            let handshake = route.isWebSocket ? webSocket.map { WebSocketHandshake(transport: $0, request: request) } : nil
            let context = RequestContext(
                app: self, request: request, route: route, pathParameters: parameters,
                requestID: request.id ?? makeRequestID(), webSocket: handshake
            )
            if let handshake { return .webSocket(context, handshake) }
            return .http(context)
        }
    }

    /// Where a path that matches no route is answered from, when the same path with its trailing
    /// slash added or removed matches one for this method (`/notes/` for `/notes`, as Starlette's
    /// `redirect_slashes`): a `307` keeps the method and the body. `nil` when the twin matches nothing
    /// either, and never a path that starts with `//` (a client reads that `Location` as another host).
    private static func trailingSlashTwin(of request: Request, in router: Router) -> String? {
        let path = request.path
        guard path.utf8.count > 1 else { return nil }
        let twin = path.hasSuffix("/") ? String(path.dropLast()) : path + "/"
        guard !twin.hasPrefix("//"), case .found = router.match(request.method, path: twin) else { return nil }
        let query = request.queryString
        return request.rootPath + twin + (query.isEmpty ? "" : "?" + query)
    }

    /// Runs an HTTP route; the outcome's response is the one to send. (The two `respond…` functions
    /// return a ``RouteOutcome``, a reference, so that ``respond(to:webSocket:)``'s frame, which an open
    /// WebSocket keeps, holds no ``Response`` of its own.)
    @inline(never)
    private func respondHTTP(_ context: RequestContext) async -> RouteOutcome {
        let outcome = await runRoute(context)
        if !context.route.standalone { finish(&outcome.response, for: context.request) }
        return outcome
    }

    /// Every hook's ``EventHook/finish(_:for:)``, in reverse order.
    private func finish(_ response: inout Response, for request: Request) {
        for hook in eventHooks.reversed() { hook.finish(&response, for: request) }
    }

    /// Runs a WebSocket route; `nil` once an accepted session was closed, else the denial to send.
    @inline(never)
    private func respondWebSocket(_ context: RequestContext, _ handshake: WebSocketHandshake) async -> RouteOutcome? {
        let ending = ending(of: handshake, await runRoute(context))
        guard case .close(let code) = ending else { return ending.denial }
        await handshake.transport.close(code: code, reason: "")
        return nil
    }

    /// Runs the route's handler, inside its hooks unless it is standalone or there are none.
    private func runRoute(_ context: RequestContext) async -> RouteOutcome {
        context.route.standalone || eventHooks.isEmpty ? await runStandalone(context) : await runWithHooks(context)
    }

    /// Runs hooks and handler with API Star's stack order; errors become responses.
    @inline(never)
    private func runWithHooks(_ context: RequestContext) async -> RouteOutcome {
        var entered = 0
        do {
            for hook in eventHooks {
                entered += 1
                if let early = try await hook.onRequest(context) {
                    return RouteOutcome(response: try await runOnResponse(early, entered: entered, context: context), fromHook: true)
                }
            }
            let outcome = try await context.route.invoke(context)
            outcome.response = try await runOnResponse(outcome.response, entered: entered, context: context)
            return outcome
        } catch {
            for hook in eventHooks.prefix(entered).reversed() {
                do {
                    if let replacement = try await hook.onError(error, context: context) {
                        return RouteOutcome(response: replacement, error: error, fromHook: true)
                    }
                } catch let hookError {
                    context.logger.error("onError hook failed: \(String(reflecting: hookError))")
                }
            }
            return RouteOutcome(response: render(error, context: context), error: error)
        }
    }

    private func runOnResponse(_ response: Response, entered: Int, context: RequestContext) async throws -> Response {
        var response = response
        for hook in eventHooks.prefix(entered).reversed() {
            response = try await hook.onResponse(response, context: context)
        }
        return response
    }

    /// Runs the handler alone; its error becomes the response.
    @inline(never)
    private func runStandalone(_ context: RequestContext) async -> RouteOutcome {
        do {
            return try await context.route.invoke(context)
        } catch {
            return RouteOutcome(response: render(error, context: context), error: error)
        }
    }

    /// The response for an error: its own for ``HTTPError``, a bare 500 for anything else.
    func render(_ error: any Error, context: RequestContext) -> Response {
        if let error = error as? HTTPError {
            context.logger.debug("answered \(error.status.code): \(error.detail)")
            return error.response
        }
        if error is WebSocketDisconnect {
            context.logger.debug("handler ended by \(error)")
        } else {
            context.logger.error("handler failed: \(String(reflecting: error))")
        }
        return Response.errorBody(status: .internalServerError, detail: "Server error")
    }

    /// How a WebSocket route ends: an accepted session is closed (1000, or 1011 when the handler
    /// threw anything but a disconnect); a handshake never accepted is answered with the chosen
    /// denial, the handler's `HTTPError`, or 403.
    private enum WebSocketEnding {
        case close(WebSocketCloseCode)
        case answer(RouteOutcome)

        var denial: RouteOutcome? {
            if case .answer(let denial) = self { return denial }
            return nil
        }
    }

    /// Decides the ``WebSocketEnding`` outside the async frame (never inlined: the outcome's
    /// response would otherwise take room in the frame an open session keeps).
    @inline(never)
    private func ending(of handshake: WebSocketHandshake, _ outcome: RouteOutcome) -> WebSocketEnding {
        switch handshake.current {
        case .accepted, .accepting:
            let failed = outcome.error.map { !($0 is WebSocketDisconnect) } ?? false
            return .close(failed ? .internalServerError : .normalClosure)
        case .denied(let denial):
            return .answer(RouteOutcome(response: denial))
        case .pending:
            if outcome.fromHook || outcome.error is HTTPError { return .answer(outcome) }
            return .answer(RouteOutcome(response: HTTPError(.forbidden, detail: "WebSocket connection denied").response))
        }
    }
}
