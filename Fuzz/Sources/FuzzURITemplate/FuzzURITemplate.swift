// Template strings and a path → URITemplate parsing, expansion, and the Router trie.
//
// Input: one flags byte, then lines (`\n`). Every line but the last is a route template (at most
// eight); the last is a request path, and its comma-separated pieces are the values for the
// expand → match round trip.
//   bits 0–1  the request method: GET, POST, DELETE or PUT; the routes take the methods in turn,
//             starting at bits 2–3
//   bit 7     the first line is an Include prefix for the other templates
//
// Invariants: a parsed template keeps its text and has unique variable names with `{+…}` last;
// a template expanded with any values (non-empty for `{name}`) matches its own route with exactly
// those values; a match names exactly the route's variables; a 405 lists other methods only.

import FuzzSupport
@testable import Star

@concurrent func nothing() async {}

let methods: [HTTPRequest.Method] = [.get, .post, .delete, .put]

/// What libFuzzer runs on each input (its LLVMFuzzerTestOneInput).
func fuzzURITemplate(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    var input = FuzzInput(data, size)
    let flags = input.byte()
    var lines = String(decoding: input.rest, as: UTF8.self)
        .split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
    let path = lines.removeLast()
    var prefix: String?
    if flags & 128 != 0, !lines.isEmpty { prefix = lines.removeFirst() }
    let templates = Array(lines.prefix(8))

    // Each template alone: parse, expand, and match the expansion.
    var values = path.split(separator: ",", omittingEmptySubsequences: false).map(String.init).makeIterator()
    for template in templates {
        guard let parsed = try? URITemplate(template) else { continue }
        check(parsed.template == template, "the template's text changed")
        check(template.utf8.first == UInt8(ascii: "/"), "a template without a leading /")
        check(Set(parsed.variableNames).count == parsed.variableNames.count, "repeated variables in \(template)")
        for (index, segment) in parsed.segments.enumerated() {
            if case .rest = segment { check(index == parsed.segments.count - 1, "{+…} not last in \(template)") }
        }
        var filled: [String: String] = [:]
        for segment in parsed.segments {
            switch segment {
            case .literal: break
            case .variable(let name): filled[name] = values.next().flatMap { $0.isEmpty ? nil : $0 } ?? "x"
            case .rest(let name): filled[name] = values.next() ?? ""
            }
        }
        guard let expanded = try? parsed.expand(filled) else {
            check(false, "expanding \(template) with every variable failed")
            return 0
        }
        let router: Router
        do {
            router = try Router([Route(template, .get, nothing, name: "only")])
        } catch {
            check(false, "a router of one parsed template \(template) failed: \(error)")
            return 0
        }
        switch router.match(.get, path: expanded) {
        case .found(let route, let parameters):
            check(route.template == template, "matched another route")
            check(parameters == filled, "\(template) expanded with \(filled) to \(expanded), which matches with \(parameters)")
        case .methodNotAllowed, .notFound:
            check(false, "\(template) expanded with \(filled) to \(expanded), which does not match it")
        }
        check((try? router.url(for: "only", filled)) == expanded, "url(for:) differs from expand")
    }

    // All of them in one router (it may refuse clashing templates).
    var entries: [any RouteEntry] = templates.enumerated().map { index, template in
        Route(template, methods[(index + Int(flags >> 2 & 3)) % methods.count], nothing, name: "r\(index)")
    }
    if let prefix { entries = [Include(prefix, name: "inc", routes: entries)] }
    guard let router = try? Router(entries) else { return 0 }
    let method = methods[Int(flags & 3)]
    switch router.match(method, path: path) {
    case .found(let route, let parameters):
        check(route.method == method, "matched a \(route.method) route for \(method)")
        guard let parsed = try? URITemplate(route.template) else {
            check(false, "the router holds an unparsable template \(route.template)")
            return 0
        }
        check(Set(parameters.keys) == Set(parsed.variableNames), "parameters \(parameters.keys) for \(route.template)")
    case .methodNotAllowed(let allowed):
        check(!allowed.isEmpty && !allowed.contains(method), "405 for \(method) allowing \(allowed)")
    case .notFound:
        break
    }
    return 0
}
