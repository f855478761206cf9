import NIOCore
#if TLS
import NIOSSL
#endif

/// The server's TLS: made once from ``TLSSettings`` when the server starts, then one handler per
/// accepted connection.
///
/// TLS is Star's `TLS` package trait (swift-nio-ssl and BoringSSL are compiled only when an app asks
/// for it). Without the trait, asking for TLS is a startup error that says how to turn it on, never a
/// plain-HTTP server where HTTPS was configured.
struct ServerTLS: Sendable {
    #if TLS
    private let context: NIOSSLContext

    /// Reads the certificate and key; with `http2`, ALPN offers `h2` before `http/1.1`.
    init(_ settings: TLSSettings, http2: Bool) throws {
        let chain = try NIOSSLCertificate.fromPEMFile(settings.certificateFile).map { NIOSSLCertificateSource.certificate($0) }
        let key: NIOSSLPrivateKey
        if let password = settings.keyPassword {
            key = try NIOSSLPrivateKey(file: settings.keyFile, format: .pem) { provide in provide(Array(password.utf8)) }
        } else {
            key = try NIOSSLPrivateKey(file: settings.keyFile, format: .pem)
        }
        var tls = TLSConfiguration.makeServerConfiguration(certificateChain: chain, privateKey: .privateKey(key))
        tls.applicationProtocols = http2 ? ["h2", "http/1.1"] : ["http/1.1"]
        // How long a closing connection waits for the client's close_notify (NIO's default: 5 s).
        // Browsers leave idle keep-alive sockets unread: at shutdown each held SIGTERM for 5 s.
        tls.shutdownTimeout = .seconds(1)
        if let ca = settings.caFile {
            tls.trustRoots = .file(ca)
            tls.certificateVerification = .fullVerification
        }
        context = try NIOSSLContext(configuration: tls)
    }

    /// Adds the TLS handler at the front of a new connection's pipeline.
    func addHandler(to pipeline: ChannelPipeline.SynchronousOperations) throws {
        try pipeline.addHandler(NIOSSLServerHandler(context: context))
    }
    #else
    /// No value exists: the initializer always throws.
    private let unavailable: Never

    init(_ settings: TLSSettings, http2: Bool) throws {
        throw ServerError.tlsUnavailable
    }

    func addHandler(to pipeline: ChannelPipeline.SynchronousOperations) throws {
        switch unavailable {}
    }
    #endif

    /// Whether this build of Star can serve TLS (its `TLS` trait is on).
    static var isAvailable: Bool {
        #if TLS
        true
        #else
        false
        #endif
    }
}
