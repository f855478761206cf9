/// A typed receive of ``TestWebSocket`` found the other kind of message.
///
/// Compare the error, or its ``kind``, with a static member:
///
/// ```swift
/// await #expect(throws: TestWebSocketError.expectedText) { try await ws.receiveText() }
/// ```
///
/// New kinds may be added: a `switch` over kinds needs a `default`.
public struct TestWebSocketError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What went wrong: compare it with `==`.
    public struct Kind: Sendable, Hashable, CustomStringConvertible {
        private enum Base: String, Sendable, Hashable {
            case expectedText, expectedBinary
        }
        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// `receiveText()` got a binary message.
        public static let expectedText = Kind(.expectedText)
        /// `receiveBytes()` got a text message.
        public static let expectedBinary = Kind(.expectedBinary)

        /// The kind's name, as in `TestWebSocketError.Kind.expectedText`.
        public var description: String { base.rawValue }

        fileprivate var message: String {
            switch base {
            case .expectedText: "expected text, got binary"
            case .expectedBinary: "expected binary, got text"
            }
        }
    }

    /// What went wrong.
    public let kind: Kind
    private init(_ kind: Kind) { self.kind = kind }

    /// `receiveText()` got a binary message.
    public static let expectedText = TestWebSocketError(.expectedText)
    /// `receiveBytes()` got a text message.
    public static let expectedBinary = TestWebSocketError(.expectedBinary)

    /// One line saying what went wrong.
    public var description: String { kind.message }
}
