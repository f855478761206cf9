public import Logging

/// How the server listens and behaves; `app.main()` fills it from the command line.
public struct ServerConfiguration: Sendable {
    /// The address to bind (default `127.0.0.1`).
    public var host: String
    /// The port to bind (default `8000`; `0` picks a free port).
    public var port: Int
    /// The level of the app's log lines, the access log included.
    public var logLevel: Logger.Level
    /// Whether to log one line per request.
    public var accessLog: Bool
    /// The largest request head (request line and header fields) accepted, in bytes.
    public var maxHeaderSize: Int

    /// Creates a configuration with Uvicorn's defaults.
    public init(
        host: String = "127.0.0.1",
        port: Int = 8000,
        logLevel: Logger.Level = .info,
        accessLog: Bool = true,
        maxHeaderSize: Int = 64 * 1024
    ) {
        self.host = host
        self.port = port
        self.logLevel = logLevel
        self.accessLog = accessLog
        self.maxHeaderSize = maxHeaderSize
    }
}
