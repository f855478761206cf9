// swift-tools-version:6.1
import PackageDescription

// Star's demo, the examples and the servers the outside-peer tests play against, in a package of
// their own that depends on Star by path: a user's `swift build` of an app that depends on Star
// never compiles them (SwiftPM builds every product of a dependency), nor TLS or PostgreSQL
// unless the app asks for Star's traits. Here both traits are on: the examples show them and the
// peer tests use them.
//
//     swift run --package-path Examples demo          # from the repository's root
//     swift build --package-path Examples             # every example; .ci/run does this
let strictSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
    .enableUpcomingFeature("InternalImportsByDefault"),
] + (Context.environment["STAR_WARNINGS_AS_ERRORS"] == "1" ? [.unsafeFlags(["-warnings-as-errors"])] : [])

let star: [Target.Dependency] = [
    .product(name: "Star", package: "Star"),
    .product(name: "StarServer", package: "Star"),
    .product(name: "StarWebSocket", package: "Star"),
]

let client: [Target.Dependency] = [
    .product(name: "Star", package: "Star"),
    .product(name: "StarWebSocket", package: "Star"),
    .product(name: "StarWebSocketClient", package: "Star"),
]

let package = Package(
    name: "StarExamples",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "demo", targets: ["Demo"]),
        .executable(name: "pingpong", targets: ["PingPong"]),
        .executable(name: "pingpong-standalone", targets: ["PingPongStandalone"]),
        .executable(name: "echo", targets: ["Echo"]),
        .executable(name: "fanout", targets: ["Fanout"]),
        .executable(name: "chat", targets: ["Chat"]),
        .executable(name: "ws-test-server", targets: ["WebSocketTestServer"]),
        // The WebSocket client for people (`star-ws URL`): here, not in Star's own package, whose
        // products are libraries only (SwiftPM builds every product of a dependency).
        .executable(name: "star-ws", targets: ["StarWS"]),
        .executable(name: "autobahn-client", targets: ["AutobahnClient"]),
    ],
    dependencies: [
        .package(name: "Star", path: "..", traits: ["TLS", "PostgreSQL"]),
        // SHA-256 for the demo's upload (already in the graph: PostgresNIO uses it).
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
    ],
    targets: [
        // The demo of the README's first command. It is also our compile check for
        // swiftlang/swift#91831 and for plain `func` handlers in a module with
        // NonisolatedNonsendingByDefault (DESIGN §2).
        .executableTarget(
            name: "Demo",
            dependencies: star + [
                .product(name: "StarBroadcast", package: "Star"),
                .product(name: "StarFiles", package: "Star"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            resources: [.copy("Public")],
            swiftSettings: strictSettings + [.enableUpcomingFeature("NonisolatedNonsendingByDefault")]
        ),
        // The seed's two examples: the auto hook, and a standalone route.
        .executableTarget(name: "PingPong", dependencies: star, swiftSettings: strictSettings),
        .executableTarget(name: "PingPongStandalone", dependencies: star, swiftSettings: strictSettings),
        // Echoes every message: Autobahn's peer in .ci/run and the benchmarks' Star server.
        .executableTarget(name: "Echo", dependencies: star, swiftSettings: strictSettings),
        // One broadcast a second to every WebSocket: the server of Benchmarks/run-scale.sh.
        .executableTarget(
            name: "Fanout", dependencies: star + [.product(name: "StarBroadcast", package: "Star")],
            swiftSettings: strictSettings
        ),
        // Rooms over Broadcast (memory:// or postgres://), with a page at `/`.
        .executableTarget(
            name: "Chat", dependencies: star + [.product(name: "StarBroadcast", package: "Star")],
            resources: [.copy("index.html")], swiftSettings: strictSettings
        ),
        // One route per row of the WebSocket contract, for the Python peer tests (Tests/Peers).
        .executableTarget(name: "WebSocketTestServer", dependencies: star, swiftSettings: strictSettings),
        // The client tools: `star-ws URL`, and Autobahn's client suite player (.ci/autobahn-client.sh).
        .executableTarget(name: "StarWS", dependencies: client, swiftSettings: strictSettings),
        .executableTarget(name: "AutobahnClient", dependencies: client, swiftSettings: strictSettings),
    ]
)
