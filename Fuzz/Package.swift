// swift-tools-version:6.1
import PackageDescription

// libFuzzer targets for Star, kept out of the root package: `swift build` and `swift test` at the
// root never see them. `.ci/fuzz.sh` builds them with
//
//     swift build --package-path Fuzz -c debug -Xswiftc -O -Xswiftc -sanitize=fuzzer,address \
//         -Xcc -fsanitize=fuzzer-no-link,address
//
// and runs each on its seed corpus in `Corpus/<name>/` for a bounded time. Each target's
// `main.swift` hands its test function to libFuzzer's driver (Sources/CLibFuzzer: SwiftPM owns an
// executable's `main`, so libFuzzer's own `main` never runs); the executables therefore link only
// with `-sanitize=fuzzer`.
//
// The targets reach the engine's `package` types (the WebSocket state machine, the handshake
// checks, permessage-deflate) and StarServer's internal ones through `@testable import`, as Tests/StarServerTests do: a debug
// build compiles every module with testing enabled (a release build would need
// `-Xswiftc -enable-testing`). Nothing in Sources/ exists for the fuzzers' sake.
let package = Package(
    name: "StarFuzz",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "Star", path: ".."),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
    ],
    targets: [
        .target(name: "CLibFuzzer"),
        .target(name: "FuzzSupport", dependencies: ["CLibFuzzer"]),
        // Request head bytes → NIO's HTTP/1 parser → the server's request conversion, forwarding
        // headers, handshake checks, NIO's accept-key computation, permessage-deflate negotiation.
        .executableTarget(
            name: "fuzz-handshake",
            dependencies: [
                "FuzzSupport",
                .product(name: "Star", package: "Star"),
                .product(name: "StarServer", package: "Star"),
                .product(name: "StarWebSocketEngine", package: "Star"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "NIOHTTPTypesHTTP1", package: "swift-nio-extras"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
            ],
            path: "Sources/FuzzHandshake"
        ),
        // Wire bytes after the handshake → NIO's WebSocketFrameDecoder → WebSocketStateMachine,
        // with and without permessage-deflate.
        .executableTarget(
            name: "fuzz-websocket",
            dependencies: [
                "FuzzSupport",
                .product(name: "Star", package: "Star"),
                .product(name: "StarWebSocketEngine", package: "Star"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
            ],
            path: "Sources/FuzzWebSocket"
        ),
        // Template strings and paths → URITemplate, Router (matching, expand/match round trip).
        .executableTarget(
            name: "fuzz-uri-template",
            dependencies: ["FuzzSupport", .product(name: "Star", package: "Star")],
            path: "Sources/FuzzURITemplate"
        ),
        // Body bytes → JSON.decode (what Body<T> calls) into a small Codable type.
        .executableTarget(
            name: "fuzz-json-body",
            dependencies: ["FuzzSupport", .product(name: "Star", package: "Star")],
            path: "Sources/FuzzJSONBody"
        ),
    ]
)
