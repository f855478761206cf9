public import HTTPTypes
public import Logging
import NIOCore

extension Request: Component {
    /// The current request.
    public static func resolve(in context: RequestContext) async throws -> Request { context.request }
}

extension App: Component {
    /// The app handling the request.
    public static func resolve(in context: RequestContext) async throws -> App { context.app }
}

extension Logger: Component {
    /// A logger whose lines carry the request id and the route name.
    public static func resolve(in context: RequestContext) async throws -> Logger { context.logger }
}

/// The path parameters of the matched URI template as strings, percent-decoded.
///
/// For typed values use ``Path``.
public struct PathParams: Component, Sendable, Equatable {
    /// Every parameter by name.
    public let values: [String: String]

    /// Creates path parameters (handy in tests).
    public init(_ values: [String: String]) { self.values = values }

    /// The parameter named `name`, or `nil`.
    public subscript(name: String) -> String? { values[name] }

    public static func resolve(in context: RequestContext) async throws -> PathParams {
        PathParams(context.pathParameters)
    }
}

/// The query string's parameters, percent-decoded, with every value of a repeated name kept.
public struct QueryParams: Component, Sendable, Equatable {
    /// The name/value pairs in the order they were sent.
    public let items: [(name: String, value: String)]

    /// Parses a query string (without the `?`): `+` is a space, `%XX` escapes are decoded.
    public init(_ queryString: String) {
        items = queryString.split(separator: "&").map { pair in
            if let equals = pair.firstIndex(of: "=") {
                return (PercentEncoding.decode(pair[..<equals], plusAsSpace: true),
                        PercentEncoding.decode(pair[pair.index(after: equals)...], plusAsSpace: true))
            }
            return (PercentEncoding.decode(pair, plusAsSpace: true), "")
        }
    }

    /// The first value of `name`, or `nil`.
    public subscript(name: String) -> String? { items.first { $0.name == name }?.value }

    /// Every value of `name`, in order.
    public func values(for name: String) -> [String] { items.filter { $0.name == name }.map(\.value) }

    public static func == (lhs: QueryParams, rhs: QueryParams) -> Bool {
        lhs.items.elementsEqual(rhs.items) { $0 == $1 }
    }

    public static func resolve(in context: RequestContext) async throws -> QueryParams {
        QueryParams(context.request.queryString)
    }
}

/// The request's header fields, looked up by name without regard to case.
public struct Headers: Component, Sendable {
    /// The fields.
    public let fields: HTTPFields

    /// Wraps header fields.
    public init(_ fields: HTTPFields) { self.fields = fields }

    /// The values of `name` joined with `", "`, or `nil` when absent.
    public subscript(name: String) -> String? {
        guard let field = HTTPField.Name(name) else { return nil }
        return fields[field]
    }

    public static func resolve(in context: RequestContext) async throws -> Headers {
        Headers(context.request.headers)
    }
}

/// The path parameters decoded as `T`; a value that does not convert answers `404`.
///
/// ```swift
/// struct UserPath: Decodable { let id: Int }
/// func detail(path: Path<UserPath>) -> String { "user \(path.value.id)" }
/// ```
@dynamicMemberLookup
public struct Path<T: Decodable & Sendable>: Component, Sendable {
    /// The decoded parameters.
    public let value: T

    /// Reads a property of the decoded value: `path.id`.
    public subscript<V>(dynamicMember keyPath: KeyPath<T, V>) -> V { value[keyPath: keyPath] }

    public static func resolve(in context: RequestContext) async throws -> Path<T> {
        do {
            return Path(value: try ParameterDecoder.decode(T.self, from: context.pathParameters.mapValues { [$0] }))
        } catch {
            context.logger.debug("path parameters do not decode as \(T.self): \(String(reflecting: error))")
            throw HTTPError(.notFound, detail: "Not Found: \(ParameterDecoder.describe(error))")
        }
    }
}

/// The query parameters decoded as `T`; a missing or malformed field answers `400` naming it.
@dynamicMemberLookup
public struct Query<T: Decodable & Sendable>: Component, Sendable {
    /// The decoded parameters.
    public let value: T

    /// Reads a property of the decoded value: `query.page`.
    public subscript<V>(dynamicMember keyPath: KeyPath<T, V>) -> V { value[keyPath: keyPath] }

    public static func resolve(in context: RequestContext) async throws -> Query<T> {
        var values: [String: [String]] = [:]
        for (name, value) in QueryParams(context.request.queryString).items { values[name, default: []].append(value) }
        do {
            return Query(value: try ParameterDecoder.decode(T.self, from: values))
        } catch {
            context.logger.debug("query does not decode as \(T.self): \(String(reflecting: error))")
            throw HTTPError(.badRequest, detail: "Invalid query: \(ParameterDecoder.describe(error))")
        }
    }
}

/// The request body decoded from JSON as `T`.
///
/// Answers `415` unless the content type is JSON, `413` over the route's body limit, and `400`
/// with the offending field named when the JSON does not decode.
@dynamicMemberLookup
public struct Body<T: Decodable & Sendable>: Component, Sendable {
    /// The decoded body.
    public let value: T

    /// Reads a property of the decoded value: `body.name`.
    public subscript<V>(dynamicMember keyPath: KeyPath<T, V>) -> V { value[keyPath: keyPath] }

    public static func resolve(in context: RequestContext) async throws -> Body<T> {
        let request = context.request
        let type = request.headers[.contentType]?.split(separator: ";").first?.trimmingSpaces.lowercased() ?? ""
        guard type == "application/json" || (type.hasPrefix("application/") && type.hasSuffix("+json")) else {
            throw HTTPError(.unsupportedMediaType, detail: "Expected a JSON body (Content-Type: application/json)")
        }
        let bytes = try await request.body.collect(upTo: .max)  // within the route's limit
        do {
            return Body(value: try JSON.decode(T.self, from: bytes.readableBytesView))
        } catch {
            context.logger.debug("JSON body does not decode as \(T.self): \(String(reflecting: error))")
            throw HTTPError(.badRequest, detail: "Invalid JSON body: \(ParameterDecoder.describe(error))")
        }
    }
}

extension Substring {
    var trimmingSpaces: Substring {
        var trimmed = self
        while trimmed.first == " " || trimmed.first == "\t" { trimmed.removeFirst() }
        while trimmed.last == " " || trimmed.last == "\t" { trimmed.removeLast() }
        return trimmed
    }
}
