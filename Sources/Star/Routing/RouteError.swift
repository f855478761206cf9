/// A mistake in the routes or components, found when the app starts (never at request time).
public struct RouteError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What the error says, naming the route and the type involved.
    public let description: String

    init(_ description: String) { self.description = description }

    static func invalidTemplate(_ template: String, _ why: String) -> RouteError {
        RouteError("invalid URI template '\(template)': \(why)")
    }
    static func missingParameter(_ template: String, _ name: String) -> RouteError {
        RouteError("no value for '{\(name)}' to build a URL from '\(template)'")
    }
    static func unknownName(_ name: String) -> RouteError {
        RouteError("no route is named '\(name)'")
    }
    static func duplicate(_ what: String) -> RouteError { RouteError(what) }
    static func unresolvable(route: String, type: Any.Type, via: String? = nil) -> RouteError {
        let path = via.map { " (needed by \($0))" } ?? ""
        return RouteError("route '\(route)' asks for \(String(reflecting: type))\(path), but no component provides it: register a provider in App(components:) or make the type conform to Component")
    }
}
