import Foundation
import HTTPTypes
import Star
import StarFiles
import StarTesting
import Testing

/// `StaticFiles` against a folder made for each test, in memory.
@Suite struct StaticFilesTests {
    /// A folder with a page, a stylesheet, a 200 KiB file, a hidden file, a subfolder with an index,
    /// and symbolic links that stay inside or lead out of it; beside it a secret.
    struct Site {
        let base: URL
        var folder: String { base.appendingPathComponent("public").path }
        let big: [UInt8] = (0..<200_000).map { UInt8($0 % 251) }

        init() throws {
            base = FileManager.default.temporaryDirectory.appendingPathComponent("star-static-\(UUID().uuidString)")
            let public_ = base.appendingPathComponent("public")
            try FileManager.default.createDirectory(at: public_.appendingPathComponent("docs"), withIntermediateDirectories: true)
            try "<h1>home</h1>".write(to: public_.appendingPathComponent("index.html"), atomically: true, encoding: .utf8)
            try "body { color: red }".write(to: public_.appendingPathComponent("app.css"), atomically: true, encoding: .utf8)
            try Data(big).write(to: public_.appendingPathComponent("big.bin"))
            try "SECRET=1".write(to: public_.appendingPathComponent(".env"), atomically: true, encoding: .utf8)
            try "<p>docs</p>".write(to: public_.appendingPathComponent("docs/index.html"), atomically: true, encoding: .utf8)
            try "top secret".write(to: base.appendingPathComponent("secret.txt"), atomically: true, encoding: .utf8)
            try FileManager.default.createSymbolicLink(atPath: public_.appendingPathComponent("out.txt").path,
                                                       withDestinationPath: base.appendingPathComponent("secret.txt").path)
            try FileManager.default.createSymbolicLink(atPath: public_.appendingPathComponent("style.css").path,
                                                       withDestinationPath: "app.css")
        }

        func client(cacheControl: String? = nil) throws -> TestClient {
            try TestClient(App(routes: [StaticFiles("/static", folder: folder, cacheControl: cacheControl)]))
        }

        func remove() { try? FileManager.default.removeItem(at: base) }
    }

    @Test func servesFilesWithTypeLengthAndValidators() async throws {
        let site = try Site()
        defer { site.remove() }
        let client = try site.client(cacheControl: "public, max-age=60")
        let css = await client.get("/static/app.css")
        #expect(css.status == .ok && css.text == "body { color: red }")
        #expect(css.headers[.contentType] == "text/css; charset=utf-8")
        #expect(css.headers[.eTag]?.hasPrefix("\"") == true && css.headers[.lastModified]?.hasSuffix(" GMT") == true)
        #expect(css.headers[.cacheControl] == "public, max-age=60" && css.headers[.acceptRanges] == "bytes")
        let big = await client.get("/static/big.bin")
        #expect(big.body == site.big && big.headers[.contentType] == "application/octet-stream")
        #expect(big.response.body.contentLength == site.big.count, "a large file streams with its length")
        #expect(await client.get("/static/style.css").text == "body { color: red }", "a link inside the folder is followed")
        #expect(await client.get("/static/app.css/").status == .notFound, "a file is not a folder")
    }

    @Test func aFolderServesItsIndex() async throws {
        let site = try Site()
        defer { site.remove() }
        let client = try site.client()
        #expect(await client.get("/static/").text == "<h1>home</h1>")
        #expect(await client.get("/static/docs/").text == "<p>docs</p>")
        let bare = await client.get("/static/docs?x=1")
        #expect(bare.status == .temporaryRedirect && bare.headers[.location] == "/static/docs/?x=1")
        #expect(await client.get("/static").status == .temporaryRedirect, "the prefix itself: to its slash twin")
    }

    @Test func conditionalRequestsAreAnswered304() async throws {
        let site = try Site()
        defer { site.remove() }
        let client = try site.client()
        let first = await client.get("/static/app.css")
        let etag = try #require(first.headers[.eTag])
        let lastModified = try #require(first.headers[.lastModified])
        let again = await client.get("/static/app.css", headers: [.ifNoneMatch: "\"other\", W/\(etag)"])
        #expect(again.status == .notModified && again.body.isEmpty && again.headers[.eTag] == etag)
        #expect(await client.get("/static/app.css", headers: [.ifNoneMatch: "\"other\""]).status == .ok)
        #expect(await client.get("/static/app.css", headers: [.ifModifiedSince: lastModified]).status == .notModified)
        #expect(await client.get("/static/app.css", headers: [.ifModifiedSince: "Thu, 01 Jan 1970 00:00:00 GMT"]).status == .ok)
        #expect(await client.get("/static/app.css", headers: [.ifModifiedSince: "yesterday"]).status == .ok,
                "a date it cannot read is ignored")
    }

    @Test func oneRangeIsAnswered206AndAnImpossibleOne416() async throws {
        let site = try Site()
        defer { site.remove() }
        let client = try site.client()
        let middle = await client.get("/static/big.bin", headers: [.range: "bytes=100-199"])
        #expect(middle.status == .partialContent && middle.body == Array(site.big[100...199]))
        #expect(middle.headers[.contentRange] == "bytes 100-199/200000")
        let tail = await client.get("/static/big.bin", headers: [.range: "bytes=-10"])
        #expect(tail.status == .partialContent && tail.body == Array(site.big.suffix(10)))
        let open = await client.get("/static/big.bin", headers: [.range: "bytes=199990-"])
        #expect(open.body.count == 10 && open.headers[.contentRange] == "bytes 199990-199999/200000")
        let whole = await client.get("/static/big.bin", headers: [.range: "bytes=0-"])
        #expect(whole.status == .partialContent && whole.headers[.contentRange] == "bytes 0-199999/200000",
                "a range of the whole file is still a range (media players seek only after a 206)")
        let beyond = await client.get("/static/big.bin", headers: [.range: "bytes=200000-"])
        #expect(beyond.status == .rangeNotSatisfiable && beyond.headers[.contentRange] == "bytes */200000")
        #expect(await client.get("/static/big.bin", headers: [.range: "bytes=0-1,5-6"]).status == .ok, "several ranges: the whole file")
        #expect(await client.get("/static/big.bin", headers: [.range: "bytes=0-1", .ifRange: "\"stale\""]).status == .ok,
                "an If-Range that no longer matches: the whole file")
        let head = await client.head("/static/big.bin")
        #expect(head.body.isEmpty && head.headers[.contentLength] == "200000")
    }

    @Test(arguments: [
        "/static/../secret.txt", "/static/%2e%2e/secret.txt", "/static/%2E%2E%2Fsecret.txt", "/static/docs/../../secret.txt",
        "/static//etc/passwd", "/static/%2Fetc%2Fpasswd", "/static/out.txt", "/static/.env", "/static/missing.css",
        "/static/docs/%00index.html", "/static/..%5csecret.txt",
    ])
    func nothingOutsideTheFolderIsServed(_ target: String) async throws {
        let site = try Site()
        defer { site.remove() }
        let response = await (try site.client()).get(target)
        #expect(response.status == .notFound, "\(target) → \(response.status)")
        #expect(!response.text.contains("secret") && !response.text.contains("root:"))
    }

    @Test func aMissingFolderIsAStartupError() {
        let app = App(routes: [StaticFiles("/static", folder: "/nonexistent/star-static")])
        let error = #expect(throws: RouteError.self) { try app.validate() }
        #expect(error?.kind == .invalidRoute)
        #expect(error?.description.contains("/nonexistent/star-static") == true)
    }
}
