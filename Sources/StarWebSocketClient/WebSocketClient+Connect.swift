import HTTPTypes
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOWebSocket
import Star
import StarWebSocketEngine
import StarWebSocketNIO

/// Opening a connection: TCP (and TLS), the HTTP/1.1 upgrade, then the switch of the channel to
/// WebSocket frames run by the engine's `WebSocketChannelHandler` in the client role.
extension WebSocketClient {
    /// Connects to `text`, following up to `configuration.followRedirects` redirects.
    static func open(_ text: String, configuration: WebSocketClientConfiguration) async throws -> WebSocketClient {
        var url = try WebSocketURL(text)
        var redirects = 0
        while true {
            do {
                return try await open(url, configuration: configuration)
            } catch let error as WebSocketClientError where error.kind == .handshakeDenied {
                guard let status = error.status, [301, 302, 303, 307, 308].contains(status.code),
                      let location = error.headers[.location], configuration.followRedirects > 0
                else { throw error }
                guard redirects < configuration.followRedirects else {
                    throw WebSocketClientError.tooManyRedirects(configuration.followRedirects, status, error.headers)
                }
                redirects += 1
                url = try url.resolving(location)
            }
        }
    }

    private static func open(_ url: WebSocketURL, configuration: WebSocketClientConfiguration) async throws -> WebSocketClient {
        let tls = url.isSecure ? try ClientTLS(configuration.tls) : nil
        let key = NIOWebSocketClientUpgrader.randomRequestKey()
        let request = handshakeRequest(url, configuration, key: key)
        let eventLoop = MultiThreadedEventLoopGroup.singleton.next()
        let outcome = eventLoop.makePromise(of: WebSocketClient.self)
        let bootstrap = ClientBootstrap(group: eventLoop)
            .connectTimeout(TimeAmount(configuration.connectTimeout))
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    try tls?.addHandler(to: sync, host: url.host)
                    let requestEncoder = HTTPRequestEncoder()
                    let responseDecoder = ByteToMessageHandler(WebSocketClientResponseDecoder(request: request))
                    try sync.addHandler(requestEncoder)
                    try sync.addHandler(responseDecoder)
                    let handshake = WebSocketClientHandshakeHandler(request: request, timeout: configuration.handshakeTimeout,
                                                                    outcome: outcome) { head in
                        let agreement = try checkAnswer(head, configuration, key: key)
                        let client = WebSocketClient(channel: channel, configuration: configuration,
                                                     subprotocol: head.headers.first(name: "Sec-WebSocket-Protocol"),
                                                     responseHeaders: WebSocketClientHandshakeHandler.fields(head.headers),
                                                     agreement: agreement)
                        try switchToWebSocket(channel, client.session, configuration.options, deflate: agreement.map(PerMessageDeflate.init))
                        try sync.removeHandler(context: sync.context(handlerType: WebSocketClientHandshakeHandler.self), promise: nil)
                        sync.removeHandler(requestEncoder, promise: nil)
                        sync.removeHandler(responseDecoder, promise: nil)  // last: the bytes after the 101 go on to the session's handler
                        return client
                    }
                    try sync.addHandler(handshake)
                }
            }
        let address = url.hostField
        do {
            _ = try await bootstrap.connect(host: url.host, port: url.port).get()
        } catch {
            let failure: WebSocketClientError
            if case ChannelError.connectTimeout = error {
                failure = .connectTimeout(address, configuration.connectTimeout)
            } else {
                failure = .connectionFailed(address, error)
            }
            outcome.fail(failure)  // unless the handshake handler failed it first (the channel closed): a second fail does nothing
            throw failure
        }
        return try await outcome.futureResult.get()
    }

    /// The opening handshake's request (RFC 6455 §4.1).
    private static func handshakeRequest(_ url: WebSocketURL, _ configuration: WebSocketClientConfiguration,
                                         key: String) -> HTTPRequestHead {
        var headers = HTTPHeaders()
        headers.add(name: "Host", value: url.hostField)
        headers.add(name: "Upgrade", value: "websocket")
        headers.add(name: "Connection", value: "Upgrade")
        headers.add(name: "Sec-WebSocket-Key", value: key)
        headers.add(name: "Sec-WebSocket-Version", value: "13")
        if !configuration.subprotocols.isEmpty {
            headers.add(name: "Sec-WebSocket-Protocol", value: configuration.subprotocols.joined(separator: ", "))
        }
        if configuration.options.perMessageDeflate {
            headers.add(name: "Sec-WebSocket-Extensions", value: PerMessageDeflate.clientOffer)
        }
        if let origin = configuration.origin { headers.add(name: "Origin", value: origin) }
        for field in configuration.headers { headers.add(name: field.name.rawName, value: field.value) }
        return HTTPRequestHead(version: .http1_1, method: .GET, uri: url.target, headers: headers)
    }

    /// Checks a `101` to the request that sent `key` (RFC 6455 §4.1, RFC 7692 §5); returns the
    /// permessage-deflate agreement, if any. `Sec-WebSocket-Accept` is checked with the server's
    /// own computation (`WebSocketHandshakeRules.acceptValue`).
    private static func checkAnswer(_ head: HTTPResponseHead, _ configuration: WebSocketClientConfiguration,
                                    key: String) throws(WebSocketClientError) -> PerMessageDeflate.Agreement? {
        guard head.headers["Upgrade"].contains(where: { $0.lowercased() == "websocket" }) else {
            throw .invalidHandshakeResponse("no 'Upgrade: websocket'")
        }
        guard head.headers[canonicalForm: "Connection"].contains(where: { $0.lowercased() == "upgrade" }) else {
            throw .invalidHandshakeResponse("no 'Connection: Upgrade'")
        }
        guard head.headers["Sec-WebSocket-Accept"] == [WebSocketHandshakeRules.acceptValue(forKey: key)] else {
            throw .invalidHandshakeResponse("a wrong Sec-WebSocket-Accept")
        }
        let chosen = head.headers["Sec-WebSocket-Protocol"]
        if let subprotocol = chosen.first, chosen.count > 1 || !configuration.subprotocols.contains(subprotocol) {
            throw .invalidHandshakeResponse("the subprotocol '\(chosen.joined(separator: ", "))' was not offered")
        }
        let extensions = head.headers["Sec-WebSocket-Extensions"].flatMap { $0.split(separator: ",") }
        guard let answer = extensions.first else { return nil }
        guard extensions.count == 1, configuration.options.perMessageDeflate else {
            throw .invalidHandshakeResponse("extensions that were not offered: \(extensions.joined(separator: ","))")
        }
        do {
            return try PerMessageDeflate.clientAgreement(String(answer))
        } catch {
            throw .invalidHandshakeResponse(error.reason)
        }
    }

    /// Adds the engine's handler in the client role (the HTTP handlers are removed next, the
    /// decoder last).
    private static func switchToWebSocket(_ channel: any Channel, _ session: WebSocketClientSession, _ options: WebSocketOptions,
                                          deflate: PerMessageDeflate?) throws {
        let sync = channel.pipeline.syncOperations
        let handler = WebSocketChannelHandler(session: session, role: .client, options: options,
                                              ticker: WebSocketTicker(eventLoop: channel.eventLoop), deflate: deflate,
                                              now: channel.eventLoop.now)
        try sync.addHandler(handler)
        session.attach(NIOLoopBound(handler, eventLoop: channel.eventLoop))
        let high = max(options.writeBufferHighWater, 2)
        try channel.syncOptions?.setOption(.writeBufferWaterMark, value: ChannelOptions.Types.WriteBufferWaterMark(low: high / 2, high: high))
        try channel.syncOptions?.setOption(.maxMessagesPerRead, value: 1)
        try channel.syncOptions?.setOption(.recvAllocator, value: WebSocketReceiveAllocator())
    }
}
