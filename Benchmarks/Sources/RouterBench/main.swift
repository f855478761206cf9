// router-bench: the cost of one `Router.match` as the number of routes grows.
//
//   swift run -c release router-bench [--iterations N]
//
// Builds a Star `Router` with 10, 100 and 1,000 routes of REST-like templates, then times
// `--iterations` matches (default 1,000,000, at most 10,000,000) of each probe path for each
// size and prints ns per match. The router is a trie of template segments, so the numbers
// should stay flat as the route count grows: they depend on the path, not on the routes.
import Star

@concurrent func handler(path: PathParams) async -> String { "" }

/// Five routes per resource, like a typical CRUD API:
/// `/api/v1/resourceK`, `/api/v1/resourceK/{id}`, `/api/v1/resourceK/{id}/items`,
/// `/api/v1/resourceK/{id}/items/{+rest}` (GET) and `/api/v1/resourceK` (POST).
func routes(count: Int) -> [Route] {
    var routes: [Route] = []
    var resource = 0
    while routes.count < count {
        let base = "/api/v1/resource\(resource)"
        let group = [
            Route(base, .get, handler, name: "r\(resource):list"),
            Route(base, .post, handler, name: "r\(resource):create"),
            Route(base + "/{id}", .get, handler, name: "r\(resource):detail"),
            Route(base + "/{id}/items", .get, handler, name: "r\(resource):items"),
            Route(base + "/{id}/items/{+rest}", .get, handler, name: "r\(resource):item"),
        ]
        routes += group.prefix(count - routes.count)
        resource += 1
    }
    return routes
}

/// `--iterations N`, bounded to keep a run short.
func iterationsArgument() -> Int {
    let arguments = CommandLine.arguments
    guard let index = arguments.firstIndex(of: "--iterations"), index + 1 < arguments.count,
          let value = Int(arguments[index + 1]), value > 0 else { return 1_000_000 }
    return min(value, 10_000_000)
}

/// Keeps the optimizer from discarding matches whose results are otherwise unused.
@inline(never) func consume(_ match: Router.Match) -> Int {
    switch match {
    case .found(_, let parameters): parameters.count + 1
    case .methodNotAllowed(let methods): methods.count
    case .notFound: 0
    }
}

let iterations = iterationsArgument()
let sizes = [10, 100, 1_000]
let clock = ContinuousClock()
var sink = 0

print("Star Router.match: \(iterations) matches per path and size (release build expected)\n")
print("| routes | path | result | ns/match |")
print("| ---: | --- | --- | ---: |")
var averages: [(Int, Double)] = []
for size in sizes {
    let router = try Router(routes(count: size))
    let resources = (size + 4) / 5
    // Same probe paths shape for every size: the first resource, the last one, a deep
    // `{+rest}` match in the middle, a wrong method, and a miss.
    let probes: [(HTTPRequest.Method, String)] = [
        (.get, "/api/v1/resource0"),
        (.get, "/api/v1/resource\(resources - 1)/42"),
        (.get, "/api/v1/resource\(resources / 2)/42/items/2024/06/report.pdf"),
        (.delete, "/api/v1/resource0/42"),
        (.get, "/api/v1/unknown/42"),
    ]
    var total = 0.0
    for (method, path) in probes {
        let outcome: String
        switch router.match(method, path: path) {
        case .found(let route, _): outcome = "found \(route.name)"
        case .methodNotAllowed: outcome = "405"
        case .notFound: outcome = "404"
        }
        for _ in 0..<min(iterations / 10, 100_000) { sink &+= consume(router.match(method, path: path)) }  // warm-up
        let elapsed = clock.measure {
            for _ in 0..<iterations { sink &+= consume(router.match(method, path: path)) }
        }
        let nanoseconds = Double(elapsed.components.seconds) * 1e9 + Double(elapsed.components.attoseconds) / 1e9
        let perMatch = nanoseconds / Double(iterations)
        total += perMatch
        print("| \(size) | `\(method.rawValue) \(path)` | \(outcome) | \(format(perMatch)) |")
    }
    averages.append((size, total / Double(probes.count)))
}
print("\n| routes | mean ns/match over the paths |")
print("| ---: | ---: |")
for (size, average) in averages { print("| \(size) | \(format(average)) |") }
if sink == 42 { print("") }  // uses `sink`

func format(_ value: Double) -> String {
    let tenths = Int((value * 10).rounded())
    return "\(tenths / 10).\(tenths % 10)"
}
