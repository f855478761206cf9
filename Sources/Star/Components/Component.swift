/// A type that Star builds on its own for a handler or hook that asks for it.
///
/// Conform a type to make it injectable without registering anything. `resolve(in:)` may
/// ask the context for other components, so components can depend on each other:
///
/// ```swift
/// struct CurrentUser: Component {
///     let name: String
///     static func resolve(in context: RequestContext) async throws -> CurrentUser {
///         let headers = try await context.resolve(Headers.self)
///         guard let name = headers["X-User"] else { throw HTTPError(.unauthorized) }
///         return CurrentUser(name: name)
///     }
/// }
/// ```
public protocol Component: Sendable {
    /// Builds the value for the current request. Called at most once per request.
    static func resolve(in context: RequestContext) async throws -> Self
}

/// Something registered in `App(components:)` that provides values of one type, usually with
/// configuration the type cannot know by itself (a connection pool, options, a secret).
///
/// A registered provider takes precedence over a ``Component`` conformance of the same type.
public protocol ComponentProvider: Sendable {
    /// The type of the values this provider makes.
    associatedtype Value: Sendable
    /// The component types `resolve(in:)` asks the context for, checked when the app starts.
    var dependencies: [Any.Type] { get }
    /// Builds the value for the current request. Called at most once per request.
    func resolve(in context: RequestContext) async throws -> Value
}

extension ComponentProvider {
    /// No dependencies unless the provider says so.
    public var dependencies: [Any.Type] { [] }
}

/// A provider made from a closure whose parameters are themselves components, or from one
/// shared instance.
///
/// ```swift
/// App(routes: routes, components: [
///     Provide(Database(url: "postgres://…")),                 // one instance for every request
///     Provide(Session.self) { (request: Request, db: Database) in   // built per request
///         try await Session(cookie: request.cookies["session"], db: db)
///     },
/// ])
/// ```
public struct Provide<Value: Sendable>: ComponentProvider {
    public let dependencies: [Any.Type]
    private let make: @Sendable (RequestContext) async throws -> Value

    /// Provides the same instance to every request.
    public init(_ instance: Value) {
        self.dependencies = []
        self.make = { _ in instance }
    }

    /// Provides a value built per request from other components, the closure's parameters.
    public init<each D: Sendable>(
        _ type: Value.Type,
        _ make: @concurrent @escaping @Sendable (repeat each D) async throws -> Value
    ) {
        var types: [Any.Type] = []
        repeat types.append((each D).self)
        self.dependencies = types
        self.make = { context in try await make(repeat try await context.resolve((each D).self)) }
    }

    public func resolve(in context: RequestContext) async throws -> Value {
        try await make(context)
    }
}

/// A provider with its value type erased, as the app stores it.
struct AnyComponentProvider: Sendable {
    let valueType: Any.Type
    let dependencies: [Any.Type]
    let resolve: @Sendable (RequestContext) async throws -> any Sendable

    init<P: ComponentProvider>(_ provider: P) {
        self.valueType = P.Value.self
        self.dependencies = provider.dependencies
        self.resolve = { try await provider.resolve(in: $0) }
    }
}

/// A marker for component types that stand for a WebSocket session: a route whose handler
/// takes one is a WebSocket route (a plain `GET` to it is answered `426 Upgrade Required`).
package protocol WebSocketComponentType {}
