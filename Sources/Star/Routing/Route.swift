public import HTTPTypes

/// Something that can stand in `App(routes:)`: a ``Route`` or an ``Include`` of more routes.
public protocol RouteEntry: Sendable {
    /// The routes this entry stands for, with `prefix` before their templates and `namespace`
    /// (`"users:"`) before their names.
    func routes(prefix: String, namespace: String) throws(RouteError) -> [Route]
}

/// A handler bound to a URI template and a method.
///
/// Every handler parameter is a component that Star resolves by its type, once per request:
///
/// ```swift
/// func user(path: Path<UserID>, db: Database) async throws -> User { ... }
/// Route("/users/{id}", .get, user, name: "detail")
/// ```
public struct Route: RouteEntry {
    /// The URI template, including any ``Include`` prefix.
    public let template: String
    /// The method this route answers.
    public let method: HTTPRequest.Method
    /// The name used by ``App/url(for:_:)``; namespaced by enclosing ``Include``s (`"users:detail"`).
    public let name: String
    /// Standalone routes run no event hooks and no response rendering: the handler owns the exchange.
    public let standalone: Bool
    /// The handler's parameter types, in order; each must be provided by a component.
    package let parameterTypes: [Any.Type]
    /// Whether the handler takes a WebSocket session (a `WebSocket` parameter).
    public let isWebSocket: Bool
    /// The most request-body bytes this route accepts; `nil` uses the app's
    /// ``App/Configuration/maxBodySize``. Past it the request is answered `413`.
    public let maxBodySize: Int?

    /// Resolves the handler's components, runs it and renders its result.
    let invoke: @Sendable (RequestContext) async throws -> RouteOutcome
    /// The handler's result type when no renderer fits it (a startup error), else `nil`.
    let unrenderableResult: Any.Type?

    /// Creates a route.
    ///
    /// - Parameters:
    ///   - template: A URI template: `{name}` matches one segment, `{+name}` the rest of the path.
    ///   - method: The HTTP method (WebSocket routes use `.get`).
    ///   - handler: An `async` function whose parameters are components. It may return a ``Response``,
    ///     `String` (text), `[UInt8]` (bytes), any `Encodable` (JSON) or nothing (`204 No Content`).
    ///   - name: The route's name for reverse URLs; Swift cannot see a function's name at run time,
    ///     so the default is `"<METHOD> <template>"`.
    ///   - standalone: Skip event hooks and response rendering for this route.
    ///   - maxBodySize: The most request-body bytes this route accepts (an upload route may take far
    ///     more than the app's ``App/Configuration/maxBodySize``, the default); past it, `413`.
    public init<each C: Sendable, R>(
        _ template: String,
        _ method: HTTPRequest.Method = .get,
        _ handler: @concurrent @escaping @Sendable (repeat each C) async throws -> R,
        name: String? = nil,
        standalone: Bool = false,
        maxBodySize: Int? = nil
    ) {
        var types: [Any.Type] = []
        repeat types.append((each C).self)
        self.template = template
        self.method = method
        self.name = name ?? "\(method.rawValue) \(template)"
        self.standalone = standalone
        self.maxBodySize = maxBodySize
        self.parameterTypes = types
        self.isWebSocket = types.contains { $0 is any WebSocketComponentType.Type }
        let render = ResultRenderer.make(for: R.self)
        self.unrenderableResult = render == nil ? R.self : nil
        let renderer = render ?? { _ in Response(status: .noContent) }
        self.invoke = { context in
            let result = try await handler(repeat try await context.resolve((each C).self))
            return RouteOutcome(response: try renderer(result))
        }
    }

    private init(copying route: Route, template: String, name: String) {
        self.template = template
        self.method = route.method
        self.name = name
        self.standalone = route.standalone
        self.maxBodySize = route.maxBodySize
        self.parameterTypes = route.parameterTypes
        self.isWebSocket = route.isWebSocket
        self.invoke = route.invoke
        self.unrenderableResult = route.unrenderableResult
    }

    public func routes(prefix: String, namespace: String) throws(RouteError) -> [Route] {
        let joined = prefix.isEmpty ? template : prefix + (template == "/" ? "" : template)
        return [Route(copying: self, template: joined, name: namespace + name)]
    }
}

/// A group of routes under a common prefix and name namespace.
///
/// ```swift
/// Include("/users", name: "users", routes: [Route("/{id}", .get, detail, name: "detail")])
/// // matches /users/{id}; app.url(for: "users:detail", ["id": "7"]) == "/users/7"
/// ```
public struct Include: RouteEntry {
    /// The path prefix, starting with `/` and without a trailing `/`.
    public let prefix: String
    /// The namespace added before the names of the included routes, if any.
    public let name: String?
    /// The included routes and includes.
    public let entries: [any RouteEntry]

    /// Creates an include.
    public init(_ prefix: String, name: String? = nil, routes: [any RouteEntry]) {
        self.prefix = prefix.hasSuffix("/") ? String(prefix.dropLast()) : prefix
        self.name = name
        self.entries = routes
    }

    public func routes(prefix: String, namespace: String) throws(RouteError) -> [Route] {
        guard self.prefix.isEmpty || self.prefix.hasPrefix("/") else {
            throw .invalidTemplate(self.prefix, reason: "an include prefix must start with '/'")
        }
        let inner = namespace + (name.map { $0 + ":" } ?? "")
        var all: [Route] = []
        for entry in entries { all += try entry.routes(prefix: prefix + self.prefix, namespace: inner) }
        return all
    }
}

/// Turns a handler's result into a response, chosen once per route from the result type.
enum ResultRenderer {
    static func make<R>(for type: R.Type) -> (@Sendable (R) throws -> Response)? {
        if R.self == Void.self { return { _ in Response(status: .noContent) } }
        if R.self == Response.self { return { $0 as! Response } }
        if R.self == String.self { return { Response.text($0 as! String) } }
        if R.self == [UInt8].self { return { Response.bytes($0 as! [UInt8]) } }
        if R.self is any Encodable.Type {
            return { value in
                let encodable = value as! any Encodable
                return try Response.json(encodable)
            }
        }
        return nil
    }
}
