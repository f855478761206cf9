#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import HTTPTypes
import NIOCore
import NIOFileSystem
import NIOPosix
public import Star

/// Serves the files of a folder under a path prefix: a route entry for `App(routes:)`.
///
/// ```swift
/// App(routes: [
///     StaticFiles("/static", folder: "Public"),          // GET /static/app.css → Public/app.css
///     Route("/", .get, home),
/// ])
/// ```
///
/// - `Content-Type` from the extension; `ETag` and `Last-Modified`; `If-None-Match` and
///   `If-Modified-Since` answered `304`; one byte range (`Range: bytes=…`, `If-Range`) answered `206`,
///   an unsatisfiable one `416`; `HEAD` (the GET's head, no body); a folder's `index.html`.
/// - Files are read off the event loop (NIO's file system, on its thread pool) in 64 KiB chunks as
///   the client reads them; a file of up to 64 KiB is one read and one write.
/// - A path never leaves the folder: `..` and `.` segments, `%2e%2e`, encoded slashes, absolute paths
///   and symbolic links that resolve outside the folder all answer `404`, as do hidden files
///   (a segment starting with `.`, such as `.git` or `.env`).
public struct StaticFiles: RouteEntry {
    /// The path prefix the files are served under (`/static`).
    public let prefix: String
    /// The folder served.
    public let folder: String
    /// The file served for a folder's own path (`index.html`); `nil` serves none (404).
    public let index: String?
    /// The `Cache-Control` of every file response; `nil` sends none (browsers revalidate with
    /// `If-None-Match`, which costs a `304`).
    public let cacheControl: String?
    /// The route's name for reverse URLs: `app.url(for: "static", ["path": "app.css"])`.
    public let name: String

    /// Serves `folder` under `prefix`.
    ///
    /// - Parameters:
    ///   - prefix: The path prefix, starting with `/` (`/` serves the folder at the root).
    ///   - folder: The folder, absolute or relative to the working directory; it must exist when the
    ///     app starts (else a `RouteError` says so).
    ///   - index: The file served for a folder's own path.
    ///   - cacheControl: The `Cache-Control` of every file response, such as `"public, max-age=3600"`.
    ///   - name: The route's name.
    public init(_ prefix: String = "/static", folder: String, index: String? = "index.html", cacheControl: String? = nil,
                name: String = "static") {
        self.prefix = prefix.hasSuffix("/") ? String(prefix.dropLast()) : prefix
        self.folder = folder
        self.index = index
        self.cacheControl = cacheControl
        self.name = name
    }

    public func routes(prefix outer: String, namespace: String) throws(RouteError) -> [Route] {
        let template = prefix + "/{+path}"
        guard let root = Self.realPath(folder), Self.isDirectory(root) else {
            throw .invalidRoute(namespace + name, template: outer + template, reason: "no folder at '\(folder)' to serve")
        }
        let server = FileServer(root: root, index: index, cacheControl: cacheControl)
        let route = Route(template, .get, { @Sendable (request: Request, path: PathParams) async throws -> Response in
            try await server.respond(to: request, path: path["path"] ?? "")
        }, name: name)
        return try route.routes(prefix: outer, namespace: namespace)
    }

    /// The canonical absolute path (symbolic links resolved), or `nil` when nothing is there.
    static func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    private static func isDirectory(_ path: String) -> Bool {
        var status = stat()
        return stat(path, &status) == 0 && (status.st_mode & S_IFMT) == S_IFDIR
    }
}

/// Answers the requests of one ``StaticFiles`` route.
struct FileServer: Sendable {
    /// The folder's canonical path.
    let root: String
    let index: String?
    let cacheControl: String?

    /// Files up to this size are read in one go and sent as one buffer.
    static let wholeFileLimit = 64 * 1024
    static let chunkLength = 64 * 1024

    func respond(to request: Request, path: String) async throws -> Response {
        guard let relative = Self.safeRelativePath(path) else { return HTTPError(.notFound).response }
        let candidate = relative.isEmpty ? root : root + "/" + relative
        // realpath is a few metadata system calls: on the thread pool, like the file system's own work.
        guard let resolved = try await NIOThreadPool.singleton.runIfActive({ StaticFiles.realPath(candidate) }),
              resolved == root || resolved.hasPrefix(root == "/" ? "/" : root + "/"),
              var info = try await FileSystem.shared.info(forFileAt: FilePath(resolved), infoAboutSymbolicLink: false)
        else { return HTTPError(.notFound).response }
        var file = resolved
        if info.type == .directory {
            guard let index, let indexInfo = try await FileSystem.shared.info(forFileAt: FilePath(resolved + "/" + index)),
                  indexInfo.type == .regular else { return HTTPError(.notFound).response }
            // Relative links in the index page need the folder's path to end with a slash.
            guard request.path.hasSuffix("/") else {
                let query = request.queryString
                return Response(status: .temporaryRedirect,
                                headers: [.location: request.rootPath + request.path + "/" + (query.isEmpty ? "" : "?" + query)])
            }
            file += "/" + index
            info = indexInfo
        }
        // A file is never a folder: `/static/app.js/` is not `/static/app.js`.
        guard info.type == .regular, file != resolved || !path.hasSuffix("/") else { return HTTPError(.notFound).response }
        return try await respond(to: request, file: file, info: info)
    }

    private func respond(to request: Request, file: String, info: FileInfo) async throws -> Response {
        let size = info.size
        let modified = info.lastDataModificationTime
        let etag = "\"\(String(size, radix: 16))-\(String(modified.seconds, radix: 16))\(String(modified.nanoseconds, radix: 16))\""
        let lastModified = HTTPDate.format(modified.seconds)
        var headers: HTTPFields = [.eTag: etag, .lastModified: lastModified, .acceptRanges: "bytes"]
        if let cacheControl { headers[.cacheControl] = cacheControl }
        if Self.notModified(request.headers, etag: etag, modified: modified.seconds) {
            return Response(status: .notModified, headers: headers)
        }
        headers[.contentType] = MediaTypes.contentType(forFile: file)
        let range: Range<Int64>
        let status: HTTPResponse.Status
        switch ByteRange.requested(by: request.headers, size: size, etag: etag, lastModified: lastModified) {
        case .whole:
            range = 0..<size
            status = .ok
        case .part(let part):
            // A range is answered 206 even when it covers the whole file (`bytes=0-`, what media
            // players send first): a 200 would tell them the file cannot be sought.
            range = part
            status = .partialContent
            headers[.contentRange] = "bytes \(part.lowerBound)-\(part.upperBound - 1)/\(size)"
        case .unsatisfiable:
            headers[.contentRange] = "bytes */\(size)"
            headers[.contentType] = nil
            return Response(status: .rangeNotSatisfiable, headers: headers)
        }
        let length = range.upperBound - range.lowerBound
        if request.method == .head {
            return Response(status: status, headers: headers, body: .stream(contentLength: Int(length)) { _ in })
        }
        let path = FilePath(file)
        if length <= Self.wholeFileLimit {
            let bytes = length == 0 ? ByteBuffer() : try await FileSystem.shared.withFileHandle(forReadingAt: path) { handle in
                try await handle.readChunk(fromAbsoluteOffset: range.lowerBound, length: .bytes(length))
            }
            guard bytes.readableBytes == length else { throw FileChanged() }
            return Response(status: status, headers: headers, body: bytes)
        }
        return Response(status: status, headers: headers, body: .stream(contentLength: Int(length)) { writer in
            try await FileSystem.shared.withFileHandle(forReadingAt: path) { handle in
                var sent: Int64 = 0
                for try await chunk in handle.readChunks(in: range, chunkLength: .bytes(Int64(Self.chunkLength))) {
                    sent += Int64(chunk.readableBytes)
                    try await writer.write(chunk)
                }
                // The file shrank since its size was sent: end the connection rather than the body.
                guard sent == length else { throw FileChanged() }
            }
        })
    }

    /// `If-None-Match` (weak comparison, `*`), else `If-Modified-Since` (whole seconds).
    static func notModified(_ headers: HTTPFields, etag: String, modified: Int) -> Bool {
        if let match = headers[.ifNoneMatch] {
            let opaque = etag.dropFirst(etag.hasPrefix("W/") ? 2 : 0)
            return match.split(separator: ",").contains { tag in
                let tag = tag.trimmingCharacters(in: .whitespaces)
                return tag == "*" || tag.dropFirst(tag.hasPrefix("W/") ? 2 : 0) == opaque
            }
        }
        if let since = headers[.ifModifiedSince].flatMap(HTTPDate.parse) { return modified <= since }
        return false
    }

    /// The request's path below the folder, or `nil` when it could leave the folder or names a hidden
    /// file. The router has percent-decoded it already, so `%2e%2e` and `%2F` arrive as `..` and `/`.
    static func safeRelativePath(_ path: String) -> String? {
        var segments: [Substring] = []
        for segment in path.split(separator: "/", omittingEmptySubsequences: true) {
            guard !segment.hasPrefix("."), !segment.contains("\0"), !segment.contains("\\") else { return nil }
            segments.append(segment)
        }
        return segments.joined(separator: "/")
    }
}

/// The file changed while it was being sent.
struct FileChanged: Error, CustomStringConvertible {
    var description: String { "the file changed while it was being sent" }
}

/// What a request's `Range` asks for, within a file of `size` bytes (RFC 9110 §14).
enum ByteRange: Equatable {
    case whole
    case part(Range<Int64>)
    case unsatisfiable

    /// One range of `bytes`; several ranges, another unit, a malformed value, or an `If-Range` that
    /// does not match the file are served whole (as RFC 9110 lets a server do).
    static func requested(by headers: HTTPFields, size: Int64, etag: String, lastModified: String) -> ByteRange {
        guard let value = headers[.range] else { return .whole }
        if let ifRange = headers[.ifRange], ifRange != etag && ifRange != lastModified { return .whole }
        return parse(value, size: size)
    }

    static func parse(_ value: String, size: Int64) -> ByteRange {
        let value = value.trimmingCharacters(in: .whitespaces)
        guard value.lowercased().hasPrefix("bytes="), !value.contains(",") else { return .whole }
        let spec = value.dropFirst(6).trimmingCharacters(in: .whitespaces)
        guard let dash = spec.firstIndex(of: "-") else { return .whole }
        let first = spec[..<dash].trimmingCharacters(in: .whitespaces)
        let last = spec[spec.index(after: dash)...].trimmingCharacters(in: .whitespaces)
        if first.isEmpty {
            guard let suffix = Int64(last), suffix >= 0 else { return .whole }
            guard suffix > 0, size > 0 else { return .unsatisfiable }
            return .part(max(0, size - suffix)..<size)
        }
        guard let start = Int64(first), start >= 0 else { return .whole }
        let end: Int64
        if last.isEmpty {
            end = size - 1
        } else {
            guard let parsed = Int64(last), parsed >= start else { return .whole }
            end = min(parsed, size - 1)
        }
        guard start < size else { return .unsatisfiable }
        return .part(start..<(end + 1))
    }
}
