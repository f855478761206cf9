import Star
import Testing

/// Inputs the fuzz target Fuzz/Sources/FuzzURITemplate found, through the same path: parse the
/// template, expand it, match the expansion in a router.
@Suite struct RoutingFuzzRegressionTests {
    @concurrent static func nothing() async {}

    /// A combining mark right after a `/` (`/users/\u{301}`): URITemplate split by Character, where
    /// `/\u{301}` is one Character and no `/`, while the router splits paths on the `/` byte, so the
    /// template was one literal segment `users/\u{301}` that no path could ever match.
    @Test func aCombiningMarkAfterASlashStillSplits() throws {
        let cases = [("/users/\u{301}", "/users/\u{301}"), ("/\u{301}x/{id}", "/\u{301}x/v"), ("/a/\u{301}/{+rest}", "/a/\u{301}/v")]
        for (template, expected) in cases {
            let parsed = try URITemplate(template)
            let values = Dictionary(uniqueKeysWithValues: parsed.variableNames.map { ($0, "v") })
            let path = try parsed.expand(values)
            #expect(path == expected)
            let router = try Router([Route(template, .get, Self.nothing, name: "only")])
            guard case .found(let route, let parameters) = router.match(.get, path: path) else {
                Issue.record("\(template) expanded to \(path), which does not match it")
                continue
            }
            #expect(route.template == template)
            #expect(parameters == values)
        }
        #expect(try URITemplate("/users/\u{301}").segments == [.literal("users"), .literal("\u{301}")])
    }
}
