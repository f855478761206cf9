import NIOCore
#if TLS
import NIOSSL
#endif

/// The client's TLS for one connection: a TLS context made from ``WebSocketClientTLS``, and the
/// handler that goes first in a `wss://` connection's pipeline.
///
/// TLS is Star's `TLS` package trait (swift-nio-ssl and BoringSSL are compiled only when an app asks
/// for it). Without the trait a `wss://` URL is an error that says how to turn it on, never a
/// plain connection where TLS was asked for.
struct ClientTLS: Sendable {
    #if TLS
    private let context: NIOSSLContext

    init(_ settings: WebSocketClientTLS) throws(WebSocketClientError) {
        do {
            var tls = TLSConfiguration.makeClientConfiguration()
            if let ca = settings.caFile { tls.trustRoots = .file(ca) }
            if let certificateFile = settings.certificateFile {
                tls.certificateChain = try NIOSSLCertificate.fromPEMFile(certificateFile).map { .certificate($0) }
            }
            if let keyFile = settings.keyFile { tls.privateKey = .privateKey(try NIOSSLPrivateKey(file: keyFile, format: .pem)) }
            if !settings.verifiesCertificate { tls.certificateVerification = .none }
            context = try NIOSSLContext(configuration: tls)
        } catch {
            throw .tlsConfiguration(error)
        }
    }

    /// Adds the TLS handler at the front of a new connection's pipeline; `host` is checked
    /// against the certificate and sent as SNI (unless it is an IP address).
    func addHandler(to pipeline: ChannelPipeline.SynchronousOperations, host: String) throws {
        let isAddress = (try? SocketAddress(ipAddress: host, port: 0)) != nil
        try pipeline.addHandler(NIOSSLClientHandler(context: context, serverHostname: isAddress ? nil : host))
    }
    #else
    /// No value exists: the initializer always throws.
    private let unavailable: Never

    init(_ settings: WebSocketClientTLS) throws(WebSocketClientError) {
        throw .tlsUnavailable
    }

    func addHandler(to pipeline: ChannelPipeline.SynchronousOperations, host: String) throws {
        switch unavailable {}
    }
    #endif

    /// Whether this build of Star can connect with TLS (its `TLS` trait is on).
    static var isAvailable: Bool {
        #if TLS
        true
        #else
        false
        #endif
    }
}
