/// Why a ``Server`` cannot start: a value to match, with a readable ``description``.
///
/// ```swift
/// do { try await server.run() } catch let error as ServerError where error.kind == .tlsUnavailable { … }
/// ```
///
/// New kinds may be added: a `switch` over kinds needs a `default`.
public struct ServerError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What went wrong, without the details: compare it with `==`.
    public struct Kind: Sendable, Hashable, CustomStringConvertible {
        private enum Base: String, Sendable, Hashable {
            case tlsUnavailable
        }
        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// ``ServerConfiguration/tls`` is set but this build of Star has no TLS: its `TLS` package
        /// trait is off.
        public static let tlsUnavailable = Kind(.tlsUnavailable)

        /// The kind's name, as in `ServerError.Kind.tlsUnavailable`.
        public var description: String { base.rawValue }
    }

    /// What went wrong.
    public let kind: Kind
    /// The whole story, with what to do about it.
    public let description: String

    private init(_ kind: Kind, _ description: String) {
        self.kind = kind
        self.description = description
    }

    /// TLS was asked for, but Star was built without its `TLS` trait.
    public static let tlsUnavailable = ServerError(.tlsUnavailable, Self.tlsHint)

    /// How to turn TLS on, for errors and option validation alike.
    static let tlsHint = """
        TLS needs Star's TLS trait: depend on Star with .package(url: …, branch: "main", traits: ["TLS"]) \
        (or build Star itself with --traits TLS)
        """
}
