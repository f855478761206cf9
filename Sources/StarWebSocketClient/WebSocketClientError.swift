public import HTTPTypes
public import NIOCore

/// Why a WebSocket client could not open (or keep) its connection: a bad URL, `wss://` without
/// TLS, a connect or handshake timeout, a server that denied the handshake or answered it wrongly.
///
/// A denied handshake carries the server's answer, so a 401 is readable:
///
/// ```swift
/// do {
///     try await WebSocketClient.connect(to: "ws://localhost:8080/feed") { ws in
///         print(try await ws.receiveText())
///     }
/// } catch let error as WebSocketClientError where error.kind == .handshakeDenied {
///     print(error.status!, String(buffer: error.body!))
/// }
/// ```
///
/// Compare ``kind`` with a static member. New kinds may be added: a `switch` over kinds needs a
/// `default`.
public struct WebSocketClientError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What went wrong, without the details: compare it with `==`.
    public struct Kind: Sendable, Hashable, CustomStringConvertible {
        private enum Base: String, Sendable, Hashable {
            case invalidURL, tlsUnavailable, tlsConfiguration, connectionFailed, connectTimeout, handshakeTimeout
            case handshakeDenied, invalidHandshakeResponse, tooManyRedirects
        }
        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// The URL is not a `ws://` or `wss://` URL with a host.
        public static let invalidURL = Kind(.invalidURL)
        /// A `wss://` URL in a build of Star without its `TLS` trait.
        public static let tlsUnavailable = Kind(.tlsUnavailable)
        /// The TLS settings could not be loaded (a certificate or key file).
        public static let tlsConfiguration = Kind(.tlsConfiguration)
        /// The TCP connection (or the TLS handshake) failed, or the server closed the connection
        /// before it answered the WebSocket handshake.
        public static let connectionFailed = Kind(.connectionFailed)
        /// The TCP connection was not made within the connect timeout.
        public static let connectTimeout = Kind(.connectTimeout)
        /// The server did not answer the WebSocket handshake within the handshake timeout.
        public static let handshakeTimeout = Kind(.handshakeTimeout)
        /// The server answered the handshake with another status than `101` (a redirect included,
        /// unless redirects are followed): ``status``, ``headers`` and ``body`` hold its answer.
        public static let handshakeDenied = Kind(.handshakeDenied)
        /// The server answered `101` but broke the handshake's rules (a wrong `Sec-WebSocket-Accept`,
        /// a subprotocol or an extension that was not offered) or sent bytes that are not HTTP.
        public static let invalidHandshakeResponse = Kind(.invalidHandshakeResponse)
        /// The server redirected more times than the client follows.
        public static let tooManyRedirects = Kind(.tooManyRedirects)

        /// The kind's name, as in `WebSocketClientError.Kind.handshakeDenied`.
        public var description: String { base.rawValue }
    }

    /// What went wrong.
    public let kind: Kind
    /// The status of the server's answer (``Kind/handshakeDenied``, ``Kind/tooManyRedirects``), else `nil`.
    public let status: HTTPResponse.Status?
    /// The header fields of the server's answer (``Kind/handshakeDenied``, ``Kind/tooManyRedirects``), else empty.
    public let headers: HTTPFields
    /// The body of the server's answer (``Kind/handshakeDenied``: its first 64 KiB), else `nil`.
    public let body: ByteBuffer?
    /// One line saying what went wrong.
    public let description: String

    private init(_ kind: Kind, _ description: String, status: HTTPResponse.Status? = nil, headers: HTTPFields = [:],
                 body: ByteBuffer? = nil) {
        self.kind = kind
        self.description = description
        self.status = status
        self.headers = headers
        self.body = body
    }

    static func invalidURL(_ url: String, _ why: String) -> Self {
        Self(.invalidURL, "invalid WebSocket URL '\(url)': \(why)")
    }

    static let tlsUnavailable = Self(.tlsUnavailable, """
        wss:// needs TLS, which this build of Star leaves out: enable Star's TLS trait \
        (.package(url: …, from: …, traits: ["TLS"]), or `swift build --traits TLS`)
        """)

    static func tlsConfiguration(_ error: any Error) -> Self {
        Self(.tlsConfiguration, "the client's TLS settings could not be loaded: \(error)")
    }

    static func connectionFailed(_ address: String, _ error: any Error) -> Self {
        Self(.connectionFailed, "the connection to \(address) failed: \(error)")
    }

    static let closedDuringHandshake = Self(.connectionFailed, "the server closed the connection before it answered the WebSocket handshake")

    static func connectTimeout(_ address: String, _ timeout: Duration) -> Self {
        Self(.connectTimeout, "no connection to \(address) within \(timeout)")
    }

    static func handshakeTimeout(_ timeout: Duration) -> Self {
        Self(.handshakeTimeout, "the server did not answer the WebSocket handshake within \(timeout)")
    }

    static func handshakeDenied(_ status: HTTPResponse.Status, _ headers: HTTPFields, _ body: ByteBuffer) -> Self {
        Self(.handshakeDenied, "the server denied the WebSocket handshake: \(status.code) \(status.reasonPhrase)",
             status: status, headers: headers, body: body)
    }

    static func invalidHandshakeResponse(_ why: String) -> Self {
        Self(.invalidHandshakeResponse, "invalid WebSocket handshake response: \(why)")
    }

    static func tooManyRedirects(_ limit: Int, _ status: HTTPResponse.Status, _ headers: HTTPFields) -> Self {
        Self(.tooManyRedirects, "more than \(limit) redirects", status: status, headers: headers)
    }
}
