// swift-tools-version:6.1
import PackageDescription

/// Settings every Star target shares: Swift 6 mode with strict concurrency (the default of
/// tools 6), explicit existentials, and imports that say what each file exposes.
/// CI sets `STAR_WARNINGS_AS_ERRORS=1` (`.ci/run`): then our own targets, and only they, build
/// with warnings as errors, so no warning of Star's reaches a user's build. (Not on by default:
/// a newer compiler's new warning must not break a user's build of a released Star.)
let warningsAsErrors: [SwiftSetting] =
    Context.environment["STAR_WARNINGS_AS_ERRORS"] == "1" ? [.unsafeFlags(["-warnings-as-errors"])] : []

let strictSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
    .enableUpcomingFeature("InternalImportsByDefault"),
] + warningsAsErrors

let package = Package(
    name: "Star",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "Star", targets: ["Star"]),
        .library(name: "StarWebSocket", targets: ["StarWebSocket"]),
        .library(name: "StarServer", targets: ["StarServer"]),
        // The WebSocket protocol engine that Star's transports share; its API is `package`.
        .library(name: "StarWebSocketEngine", targets: ["StarWebSocketEngine"]),
        // A WebSocket client on NIO (ws:// and wss://): the same message API as the server's `WebSocket`.
        .library(name: "StarWebSocketClient", targets: ["StarWebSocketClient"]),
        .library(name: "StarTesting", targets: ["StarTesting"]),
        .library(name: "StarBroadcast", targets: ["StarBroadcast"]),
        .library(name: "StarFiles", targets: ["StarFiles"]),
        // The demo, the examples and the test servers live in Examples/, a package of their own:
        // SwiftPM builds every product of a dependency, so none of them is a product here.
    ],
    // What a user's build compiles only when asked for: `.package(url: …, traits: ["TLS"])`.
    traits: [
        .trait(name: "TLS", description: "HTTPS and WSS (--ssl-certfile …) through swift-nio-ssl and BoringSSL."),
        .trait(name: "PostgreSQL", description: "Broadcast across processes over PostgreSQL LISTEN/NOTIFY (postgres:// URLs) through postgres-nio."),
        .default(enabledTraits: []),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-nio-http2.git", from: "1.46.0"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/adam-fowler/compress-nio.git", from: "1.5.0"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        // `swift package generate-documentation` for the DocC catalogs (.ci/docs.sh).
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"),
    ],
    targets: [
        .target(
            name: "Star",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "StarWebSocket",
            dependencies: ["Star"],
            swiftSettings: strictSettings
        ),
        // The WebSocket protocol as values, with no I/O and no NIOPosix: frame rules, messages,
        // close codes, handshake checks, permessage-deflate, timers; every transport drives it.
        .target(
            name: "StarWebSocketEngine",
            dependencies: [
                "Star",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "CompressNIO", package: "compress-nio"),
            ],
            swiftSettings: strictSettings
        ),
        // The engine on a NIO channel: the one channel handler (and its per-loop ticker and receive
        // allocator) that both the server's sessions and the client's connections run on, so that
        // neither keeps a copy of the other's driver.
        .target(
            name: "StarWebSocketNIO",
            dependencies: [
                "Star",
                "StarWebSocketEngine",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
            ],
            swiftSettings: strictSettings
        ),
        // The WebSocket client: ws:// and wss:// (TLS with the `TLS` trait), driving the engine in
        // the client role through StarWebSocketNIO.
        .target(
            name: "StarWebSocketClient",
            dependencies: [
                "Star",
                "StarWebSocket",
                "StarWebSocketEngine",
                "StarWebSocketNIO",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOHTTPTypesHTTP1", package: "swift-nio-extras"),
                .product(name: "NIOSSL", package: "swift-nio-ssl", condition: .when(traits: ["TLS"])),
            ],
            swiftSettings: strictSettings
        ),
        // glibc's malloc controls for the server's memory trimming (Swift's Glibc lacks <malloc.h>).
        .target(name: "CStarMemory"),
        .target(
            name: "StarServer",
            dependencies: [
                "CStarMemory",
                "Star",
                "StarWebSocketEngine",
                "StarWebSocketNIO",
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "NIOHTTPTypesHTTP1", package: "swift-nio-extras"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "NIOSSL", package: "swift-nio-ssl", condition: .when(traits: ["TLS"])),
                .product(name: "CoreMetrics", package: "swift-metrics"),
            ],
            swiftSettings: strictSettings
        ),
        // Static files: a route entry that serves a folder (NIO's file system, off the event loop).
        .target(
            name: "StarFiles",
            dependencies: [
                "Star",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "_NIOFileSystem", package: "swift-nio"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "StarTesting",
            dependencies: [
                "Star",
                "StarWebSocketEngine",
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "StarBroadcast",
            dependencies: [
                "Star",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "PostgresNIO", package: "postgres-nio", condition: .when(traits: ["PostgreSQL"])),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "StarTests",
            dependencies: ["Star", "StarTesting", "StarWebSocket", "StarBroadcast", "StarWebSocketEngine", "StarFiles"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "StarServerTests",
            dependencies: [
                "Star", "StarServer", "StarWebSocket", "StarWebSocketEngine", "StarWebSocketNIO", "StarWebSocketClient",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "MetricsTestKit", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSettings
        ),
    ]
)
