// swift-tools-version:6.1
import PackageDescription

// Benchmarks for Star, kept out of the root package: neither `swift test` at the root nor CI
// builds this. It pulls in Hummingbird 2 (with HummingbirdWebSocket), Vapor 4 and SwiftNIO only
// to compare against them.
// Run `./run-http.sh` (HTTP servers under wrk), `./run-ws.sh` (WebSocket echo servers under
// loadgen) or `swift run -c release router-bench`.
let package = Package(
    name: "StarBenchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "Star", path: ".."),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/vapor/vapor.git", from: "4.122.3"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-websocket.git", from: "2.8.1"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
    ],
    targets: [
        .executableTarget(
            name: "star-hello",
            dependencies: [
                .product(name: "Star", package: "Star"),
                .product(name: "StarServer", package: "Star"),
                .product(name: "StarFiles", package: "Star"),
                .product(name: "StarBroadcast", package: "Star"),
            ],
            path: "Sources/StarHello"
        ),
        .executableTarget(
            name: "hb-hello",
            dependencies: [.product(name: "Hummingbird", package: "hummingbird")],
            path: "Sources/HBHello"
        ),
        .executableTarget(
            name: "vapor-hello",
            dependencies: [.product(name: "Vapor", package: "vapor")],
            path: "Sources/VaporHello"
        ),
        // WebSocket echo servers for run-ws.sh (Star's own is the Examples package's `echo`). Folder
        // names must not match a dependency's name.
        .executableTarget(
            name: "hb-ws-echo",
            dependencies: [
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket"),
            ],
            path: "Sources/HBWSEcho"
        ),
        .executableTarget(
            name: "vapor-ws-echo",
            dependencies: [.product(name: "Vapor", package: "vapor")],
            path: "Sources/VaporWSEcho"
        ),
        .executableTarget(
            name: "nio-ws-echo",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
            ],
            path: "Sources/NIOWSEcho"
        ),
        // Client echo throughput against Star's echo server (run-ws-client.sh).
        .executableTarget(
            name: "star-ws-client-bench",
            dependencies: [.product(name: "StarWebSocketClient", package: "Star")],
            path: "Sources/StarWSClientBench"
        ),
        .executableTarget(
            name: "hb-ws-client-bench",
            dependencies: [.product(name: "HummingbirdWSClient", package: "hummingbird-websocket")],
            path: "Sources/HBWSClientBench"
        ),
        .executableTarget(
            name: "router-bench",
            dependencies: [.product(name: "Star", package: "Star")],
            path: "Sources/RouterBench"
        ),
        .executableTarget(
            name: "broadcast-bench",
            dependencies: [
                .product(name: "Star", package: "Star"),
                .product(name: "StarBroadcast", package: "Star"),
            ],
            path: "Sources/BroadcastBench"
        ),
    ]
)
