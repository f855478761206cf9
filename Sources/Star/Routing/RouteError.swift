/// A mistake in the routes or components, found when the app starts (never at request time), or a
/// reverse URL that cannot be built.
///
/// Match the ``kind``; the other properties say which route, template and type are involved, and
/// ``description`` says it all in one line:
///
/// ```swift
/// do {
///     try app.validate()
/// } catch where error.kind == .unresolvable {
///     print("route \(error.route ?? "?") needs \(error.typeName ?? "?")")
/// }
/// ```
///
/// Two errors are equal when every property is; compare ``kind`` to match a case whatever its data.
/// New kinds may be added: a `switch` over kinds needs a `default`.
public struct RouteError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What went wrong, without the details: compare it with `==`.
    public struct Kind: Sendable, Hashable, CustomStringConvertible {
        private enum Base: String, Sendable, Hashable {
            case invalidTemplate, missingParameter, unknownName, duplicateName, conflictingVariable,
                 duplicateRoute, unresolvable, dependencyCycle, unrenderableResult, invalidRoute
        }
        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// A URI template (or an include prefix) is malformed.
        public static let invalidTemplate = Kind(.invalidTemplate)
        /// A reverse URL lacks a value for one of the template's variables.
        public static let missingParameter = Kind(.missingParameter)
        /// No route has the name a reverse URL asked for.
        public static let unknownName = Kind(.unknownName)
        /// Two routes have the same name.
        public static let duplicateName = Kind(.duplicateName)
        /// Two routes name the variable of the same path segment differently (`{id}` and `{key}`).
        public static let conflictingVariable = Kind(.conflictingVariable)
        /// Two routes have the same method and template.
        public static let duplicateRoute = Kind(.duplicateRoute)
        /// A handler (or a component it depends on) asks for a type that no component provides.
        public static let unresolvable = Kind(.unresolvable)
        /// Components depend on each other in a cycle.
        public static let dependencyCycle = Kind(.dependencyCycle)
        /// A handler returns a type that cannot be rendered as a response.
        public static let unrenderableResult = Kind(.unrenderableResult)
        /// A route entry cannot serve as configured (for example, a static-files folder that does not exist).
        public static let invalidRoute = Kind(.invalidRoute)

        /// The kind's name, as in `RouteError.Kind.unresolvable`.
        public var description: String { base.rawValue }
    }

    /// What went wrong.
    public let kind: Kind
    /// The name of the route involved, when there is one.
    public let route: String?
    /// The URI template (or include prefix) involved, when there is one.
    public let template: String?
    /// The fully qualified name of the type involved (`String(reflecting:)`), when there is one.
    public let typeName: String?
    /// One line naming the route, the template and the type involved, and what to do.
    public let description: String

    private init(_ kind: Kind, route: String? = nil, template: String? = nil, typeName: String? = nil, _ description: String) {
        self.kind = kind
        self.route = route
        self.template = template
        self.typeName = typeName
        self.description = description
    }

    /// A route entry that cannot serve as configured; `reason` says why. For ``RouteEntry`` types
    /// outside Star, whose problems show when the app starts like every other route's.
    public static func invalidRoute(_ route: String, template: String, reason: String) -> RouteError {
        RouteError(.invalidRoute, route: route, template: template, "route '\(route)' (\(template)): \(reason)")
    }

    /// A malformed URI template or include prefix; `reason` says what is wrong with it.
    public static func invalidTemplate(_ template: String, reason: String) -> RouteError {
        RouteError(.invalidTemplate, template: template, "invalid URI template '\(template)': \(reason)")
    }

    /// A reverse URL from `template` without a value for the variable `name`.
    public static func missingParameter(_ name: String, template: String) -> RouteError {
        RouteError(.missingParameter, template: template, "no value for '{\(name)}' to build a URL from '\(template)'")
    }

    /// A reverse URL for a route name that no route has.
    public static func unknownName(_ name: String) -> RouteError {
        RouteError(.unknownName, route: name, "no route is named '\(name)'")
    }

    /// A second route named `route`.
    public static func duplicateName(_ route: String) -> RouteError {
        RouteError(.duplicateName, route: route, "two routes are named '\(route)'")
    }

    /// The route `route` (template `template`) calls a path segment's variable `variable` where an
    /// earlier route calls it `existing`; `isRest` for `{+…}` variables.
    public static func conflictingVariable(route: String, template: String, variable: String, existing: String,
                                           isRest: Bool = false) -> RouteError {
        let plus = isRest ? "+" : ""
        return RouteError(.conflictingVariable, route: route, template: template,
                          "route '\(route)' names '{\(plus)\(variable)}' where another route has '{\(plus)\(existing)}'")
    }

    /// The route `route` has the same method and template as an earlier route.
    public static func duplicateRoute(route: String, method: String, template: String) -> RouteError {
        RouteError(.duplicateRoute, route: route, template: template, "two \(method) routes have the template '\(template)'")
    }

    /// The route `route` asks for `type`, which no component provides; `neededBy` is the component
    /// that depends on it, when the handler does not ask for it directly.
    public static func unresolvable(route: String, type: Any.Type, neededBy: Any.Type? = nil) -> RouteError {
        let typeName = String(reflecting: type)
        let path = neededBy.map { " (needed by \(String(reflecting: $0)))" } ?? ""
        return RouteError(.unresolvable, route: route, typeName: typeName,
                          "route '\(route)' asks for \(typeName)\(path), but no component provides it: register a provider in App(components:) or make the type conform to Component")
    }

    /// The components of route `route` depend on each other in a cycle through `type`.
    public static func dependencyCycle(route: String, type: Any.Type) -> RouteError {
        let typeName = String(reflecting: type)
        return RouteError(.dependencyCycle, route: route, typeName: typeName,
                          "route '\(route)': components depend on each other in a cycle through \(typeName)")
    }

    /// The handler of route `route` returns `type`, which cannot be rendered as a response.
    public static func unrenderableResult(route: String, type: Any.Type) -> RouteError {
        let typeName = String(reflecting: type)
        return RouteError(.unrenderableResult, route: route, typeName: typeName,
                          "route '\(route)': cannot render \(typeName) as a response: return Response, String, [UInt8], an Encodable or nothing")
    }
}
