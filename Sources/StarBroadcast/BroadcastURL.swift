import Foundation

/// Where a broadcast's events travel, parsed from `memory://` or
/// `postgres://user:password@host:port/database` (also `postgresql://`).
enum BroadcastURL: Sendable, Equatable {
    case memory
    case postgres(PostgresSettings)

    /// The connection settings of a `postgres://` URL.
    struct PostgresSettings: Sendable, Equatable {
        var host: String
        var port: Int
        var username: String
        var password: String?
        var database: String?
    }

    init(_ text: String) throws(BroadcastError) {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        guard let components = URLComponents(string: trimmed), let scheme = components.scheme?.lowercased() else {
            throw .invalidURL("'\(text)' is not a URL (use memory:// or postgres://user:password@host:port/database)")
        }
        switch scheme {
        case "memory":
            self = .memory
        case "postgres", "postgresql":
            guard let host = components.host, !host.isEmpty else {
                throw .invalidURL("'\(text)' names no host")
            }
            guard let username = components.percentEncodedUser.flatMap({ $0.removingPercentEncoding }), !username.isEmpty else {
                throw .invalidURL("'\(text)' names no user")
            }
            guard Self.hasPostgreSQL else { throw Self.postgresUnavailable(text) }
            let database = components.path.dropFirst()
            self = .postgres(PostgresSettings(
                host: host, port: components.port ?? 5432, username: username,
                password: components.percentEncodedPassword?.removingPercentEncoding,
                database: database.isEmpty ? nil : String(database).removingPercentEncoding
            ))
        default:
            throw .invalidURL("unsupported scheme '\(scheme)': use memory:// or postgres://")
        }
    }

    /// Whether this build has the PostgreSQL backend (Star's `PostgreSQL` package trait).
    static var hasPostgreSQL: Bool {
        #if PostgreSQL
        true
        #else
        false
        #endif
    }

    /// The error for a well-formed `postgres://` URL in a build without the PostgreSQL backend.
    static func postgresUnavailable(_ text: String) -> BroadcastError {
        .invalidURL("'\(text)' needs Star's PostgreSQL trait: depend on Star with "
                    + #".package(url: …, branch: "main", traits: ["PostgreSQL"])"#)
    }
}
