package import HTTPTypes

/// Finds the route for a method and path in time that depends on the path's length,
/// not on the number of routes: a trie of template segments.
package struct Router: Sendable {
    /// What matching a request found.
    package enum Match: Sendable {
        /// A route and its path parameters, percent-decoded.
        case found(Route, [String: String])
        /// The path matched, but not with this method; the methods that would match.
        case methodNotAllowed([HTTPRequest.Method])
        /// No template matches the path.
        case notFound
    }

    private final class Node: @unchecked Sendable {
        // Safe: nodes are only mutated while the router is built in `init`, before it is shared.
        var literals: [Substring: Node] = [:]
        var variable: (name: String, node: Node)?
        var rest: (name: String, routes: [HTTPRequest.Method: Int])?
        var routes: [HTTPRequest.Method: Int] = [:]
    }

    /// Every route, in registration order.
    package let routes: [Route]
    private let root = Node()
    private let byName: [String: Int]

    /// Builds a router, rejecting malformed templates, clashing templates and duplicate names.
    package init(_ entries: [any RouteEntry]) throws(RouteError) {
        var routes: [Route] = []
        for entry in entries { routes += try entry.routes(prefix: "", namespace: "") }
        var byName: [String: Int] = [:]
        for (index, route) in routes.enumerated() {
            let template = try URITemplate(route.template)
            guard byName.updateValue(index, forKey: route.name) == nil else {
                throw .duplicateName(route.name)
            }
            var node = root
            for segment in template.segments {
                switch segment {
                case .literal(let text):
                    let key = Substring(text)
                    if let next = node.literals[key] { node = next } else {
                        let next = Node()
                        node.literals[key] = next
                        node = next
                    }
                case .variable(let name):
                    if let existing = node.variable {
                        guard existing.name == name else {
                            throw .conflictingVariable(route: route.name, template: route.template, variable: name, existing: existing.name)
                        }
                        node = existing.node
                    } else {
                        let next = Node()
                        node.variable = (name, next)
                        node = next
                    }
                case .rest(let name):
                    if let existing = node.rest, existing.name != name {
                        throw .conflictingVariable(route: route.name, template: route.template, variable: name, existing: existing.name,
                                                  isRest: true)
                    }
                    var methods = node.rest?.routes ?? [:]
                    guard methods.updateValue(index, forKey: route.method) == nil else {
                        throw .duplicateRoute(route: route.name, method: route.method.rawValue, template: route.template)
                    }
                    node.rest = (name, methods)
                    continue
                }
            }
            if case .rest = template.segments.last { continue }
            guard node.routes.updateValue(index, forKey: route.method) == nil else {
                throw .duplicateRoute(route: route.name, method: route.method.rawValue, template: route.template)
            }
        }
        Self.answerHEADWithGET(root)
        self.routes = routes
        self.byName = byName
    }

    /// Every `GET` route also answers `HEAD` (RFC 9110 §9.3.2: the GET's head, no body) unless a
    /// `HEAD` route of its own is registered for the same template; `Allow` lists both.
    private static func answerHEADWithGET(_ node: Node) {
        func add(_ methods: inout [HTTPRequest.Method: Int]) {
            if let get = methods[.get], methods[.head] == nil { methods[.head] = get }
        }
        add(&node.routes)
        if var rest = node.rest {
            add(&rest.routes)
            node.rest = rest
        }
        for child in node.literals.values { answerHEADWithGET(child) }
        if let variable = node.variable { answerHEADWithGET(variable.node) }
    }

    /// Finds the route for a method and a path (without the query string).
    package func match(_ method: HTTPRequest.Method, path: String) -> Match {
        guard path.utf8.first == UInt8(ascii: "/") else { return .notFound }
        let segments = path.utf8.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false).dropFirst()
            .map { Substring($0) }
        var captured: [(String, Substring)] = []
        var allowed: [HTTPRequest.Method: Int]?
        guard let (methods, restValue) = walk(root, segments[...], path: path, captured: &captured, allowed: &allowed) else {
            if let allowed { return .methodNotAllowed(allowed.keys.sorted { $0.rawValue < $1.rawValue }) }
            return .notFound
        }
        var params: [String: String] = [:]
        for (name, raw) in captured { params[name] = PercentEncoding.decode(raw) }
        if let (name, raw) = restValue { params[name] = PercentEncoding.decode(raw) }
        let route = routes[methods]
        return .found(route, params)

        func walk(
            _ node: Node, _ rest: ArraySlice<Substring>, path: String,
            captured: inout [(String, Substring)], allowed: inout [HTTPRequest.Method: Int]?
        ) -> (Int, (String, Substring)?)? {
            guard let segment = rest.first else {
                if let index = node.routes[method] { return (index, nil) }
                if !node.routes.isEmpty, allowed == nil { allowed = node.routes }
                if let (name, methods) = node.rest { return take(methods, name: name, value: "") }
                return nil
            }
            if let next = node.literals[segment],
                let found = walk(next, rest.dropFirst(), path: path, captured: &captured, allowed: &allowed)
            {
                return found
            }
            if let (name, next) = node.variable, !segment.isEmpty {
                captured.append((name, segment))
                if let found = walk(next, rest.dropFirst(), path: path, captured: &captured, allowed: &allowed) {
                    return found
                }
                captured.removeLast()
            }
            if let (name, methods) = node.rest {
                return take(methods, name: name, value: segment.base[segment.startIndex...])
            }
            return nil

            func take(_ methods: [HTTPRequest.Method: Int], name: String, value: Substring) -> (Int, (String, Substring)?)? {
                if let index = methods[method] { return (index, (name, value)) }
                if allowed == nil { allowed = methods }
                return nil
            }
        }
    }

    /// The path of the route named `name` with `parameters` filled in.
    package func url(for name: String, _ parameters: [String: String] = [:]) throws(RouteError) -> String {
        guard let index = byName[name] else { throw .unknownName(name) }
        return try URITemplate(routes[index].template).expand(parameters)
    }
}
