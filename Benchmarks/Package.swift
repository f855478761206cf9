// swift-tools-version:6.1
import PackageDescription

// Benchmarks for Star, kept out of the root package: neither `swift test` at the root nor CI
// builds this. It pulls in Hummingbird 2 and Vapor 4 only to compare against them.
// Run `./run-http.sh` (HTTP servers under wrk) or `swift run -c release router-bench`.
let package = Package(
    name: "StarBenchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "Star", path: ".."),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/vapor/vapor.git", from: "4.122.3"),
    ],
    targets: [
        .executableTarget(
            name: "star-hello",
            dependencies: [
                .product(name: "Star", package: "Star"),
                .product(name: "StarServer", package: "Star"),
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
        .executableTarget(
            name: "router-bench",
            dependencies: [.product(name: "Star", package: "Star")],
            path: "Sources/RouterBench"
        ),
    ]
)
