// swift-tools-version:6.1
import PackageDescription

// Benchmarks for Star, kept out of the root package: neither `swift test` at the root nor CI
// builds this. It pulls in Hummingbird 2 (with HummingbirdWebSocket), Vapor 4 and SwiftNIO only
// to compare against them.
// Run `./run-http.sh` (HTTP servers under wrk), `./run-h2.sh` (the same servers over TLS + HTTP/2
// under h2load), `./run-ws.sh` (WebSocket echo servers under loadgen), `./run-h2ws.sh` (Star's echo,
// WebSockets over HTTP/2 against HTTP/1.1, under h2wsload) or `swift run -c release router-bench`.
let package = Package(
    name: "StarBenchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        // The TLS trait: star-hello serves https (and h2 by ALPN) for run-h2.sh.
        .package(name: "Star", path: "..", traits: ["TLS"]),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/vapor/vapor.git", from: "4.122.3"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-websocket.git", from: "2.8.1"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
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
            dependencies: [
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),  // HTTPServerBuilder
                .product(name: "HummingbirdHTTP2", package: "hummingbird"),
            ],
            path: "Sources/HBHello"
        ),
        .executableTarget(
            name: "vapor-hello",
            dependencies: [
                .product(name: "Vapor", package: "vapor"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),  // the certificate and key (STAR_BENCH_TLS)
            ],
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
