public import HTTPTypes
public import Star

/// How a ``WebSocketClient`` connects: what its handshake offers and asks for, its timeouts, and
/// the session's limits and timers.
///
/// ```swift
/// var configuration = WebSocketClientConfiguration(subprotocols: ["chat.v2"])
/// configuration.headers[.authorization] = "Bearer \(token)"
/// configuration.options.maxMessageSize = 1 << 20
/// ```
public struct WebSocketClientConfiguration: Sendable {
    /// The subprotocols offered (`Sec-WebSocket-Protocol`), in order of preference; the server's
    /// choice is ``WebSocketClient/subprotocol``.
    public var subprotocols: [String]
    /// Extra header fields of the handshake request (`Authorization`, cookies, …).
    public var headers: HTTPFields
    /// The `Origin` header field, for servers that check it; `nil` sends none.
    public var origin: String?
    /// How long the TCP connection (and the TLS handshake's start) may take.
    public var connectTimeout: Duration
    /// How long the server may take to answer the WebSocket handshake once connected.
    public var handshakeTimeout: Duration
    /// How many redirects (301, 302, 303, 307, 308 with a `Location`) to follow; 0, the default,
    /// follows none: a redirect is then a `WebSocketClientError` of kind `handshakeDenied`.
    public var followRedirects: Int
    /// The session's limits and timers, the server's type: `maxMessageSize` (a larger message
    /// closes with 1009), `maxQueue`, keepalive `pingInterval` and `pingTimeout`, `closeTimeout`,
    /// `writeBufferHighWater`, and `perMessageDeflate` (whether to offer compression).
    public var options: WebSocketOptions
    /// The TLS settings of `wss://` URLs.
    public var tls: WebSocketClientTLS

    /// Creates a configuration.
    ///
    /// - Parameters:
    ///   - subprotocols: The subprotocols to offer, in order of preference.
    ///   - headers: Extra header fields of the handshake request.
    ///   - origin: The `Origin` header field, or `nil` for none.
    ///   - connectTimeout: How long the TCP connection may take.
    ///   - handshakeTimeout: How long the server may take to answer the handshake.
    ///   - followRedirects: How many redirects to follow (none by default).
    ///   - options: The session's limits and timers; the server's defaults (16 MiB messages, a
    ///     ping every 20 s with a 20 s timeout, permessage-deflate offered).
    ///   - tls: The TLS settings of `wss://` URLs (the system's trust roots by default).
    public init(
        subprotocols: [String] = [],
        headers: HTTPFields = [:],
        origin: String? = nil,
        connectTimeout: Duration = .seconds(10),
        handshakeTimeout: Duration = .seconds(10),
        followRedirects: Int = 0,
        options: WebSocketOptions = WebSocketOptions(),
        tls: WebSocketClientTLS = WebSocketClientTLS()
    ) {
        self.subprotocols = subprotocols
        self.headers = headers
        self.origin = origin
        self.connectTimeout = connectTimeout
        self.handshakeTimeout = handshakeTimeout
        self.followRedirects = followRedirects
        self.options = options
        self.tls = tls
    }
}

/// The TLS settings of a client's `wss://` connections: which servers to trust, and the
/// certificate to present when the server asks for one.
///
/// TLS is Star's `TLS` package trait; without it a `wss://` URL is a `WebSocketClientError` of
/// kind `tlsUnavailable`, whatever these settings say.
public struct WebSocketClientTLS: Sendable, Equatable {
    /// A PEM file of the certificate authorities to trust instead of the system's; `nil` trusts
    /// the system's roots.
    public var caFile: String?
    /// A PEM file with the client's certificate chain, for servers that ask for one.
    public var certificateFile: String?
    /// The PEM file of the client certificate's private key.
    public var keyFile: String?
    /// Whether to check the server's certificate and host name; `false` accepts any certificate
    /// (a self-signed one while testing): never in production.
    public var verifiesCertificate: Bool

    /// Creates TLS settings.
    ///
    /// - Parameters:
    ///   - caFile: A PEM file of the certificate authorities to trust, or `nil` for the system's.
    ///   - certificateFile: A PEM file with a client certificate chain, or `nil` for none.
    ///   - keyFile: The PEM file of the client certificate's private key.
    ///   - verifiesCertificate: Whether to check the server's certificate (`false`: insecure).
    public init(caFile: String? = nil, certificateFile: String? = nil, keyFile: String? = nil, verifiesCertificate: Bool = true) {
        self.caFile = caFile
        self.certificateFile = certificateFile
        self.keyFile = keyFile
        self.verifiesCertificate = verifiesCertificate
    }
}
