public import HTTPTypes
import NIOCore

/// An error that a handler, hook or component throws to answer with a given status.
///
/// Star renders it as JSON: `{"detail": "..."}` with the status. Any other error becomes
/// `500 {"detail":"Server error"}`, so nothing internal reaches the client.
public struct HTTPError: Error, Sendable, CustomStringConvertible {
    /// The status to answer with.
    public var status: HTTPResponse.Status
    /// The message sent to the client as `detail`.
    public var detail: String
    /// Extra header fields for the response (for example `Allow` on a 405).
    public var headers: HTTPFields

    /// Creates an error answered with `status` and `detail`; the detail defaults to the status's reason phrase.
    public init(_ status: HTTPResponse.Status, detail: String? = nil, headers: HTTPFields = [:]) {
        self.status = status
        self.detail = detail ?? status.reasonPhrase
        self.headers = headers
    }

    public var description: String { "HTTPError(\(status.code), \(detail))" }

    /// The JSON response this error is answered with.
    public var response: Response {
        var response = Response.errorBody(status: status, detail: detail)
        for field in headers { response.headers.append(field) }
        return response
    }
}

extension Response {
    /// `{"detail": detail}` with the status; encoding a string map cannot fail.
    static func errorBody(status: HTTPResponse.Status, detail: String) -> Response {
        (try? Response.json(["detail": detail], status: status)) ?? Response(status: status)
    }
}
