import Foundation

/// Decodes a `Decodable` type from string parameters (path or query), converting each value
/// to the property's type. Repeated query names decode into arrays.
struct ParameterDecoder: Decoder {
    let values: [String: [String]]
    var codingPath: [any CodingKey] = []
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    static func decode<T: Decodable>(_ type: T.Type, from values: [String: [String]]) throws -> T {
        try T(from: ParameterDecoder(values: values))
    }

    /// A short description of a decoding error that names the field and the kind of value it
    /// expected, in JSON's terms: `field 'id': expected an integer`.
    ///
    /// It is sent to the client, so only a `DecodingError`'s field and expectation go into it, never
    /// a Swift type name; any other error (thrown by an `init(from:)`) may carry internal text and
    /// is described only as `invalid value` — the caller logs the error itself. The one text passed
    /// through is a `dataCorrupted` description: an `init(from:)`'s own validation message
    /// (`dataCorruptedError(forKey:in:debugDescription:)`) arrives that way.
    static func describe(_ error: any Error) -> String {
        guard let error = error as? DecodingError else { return "invalid value" }
        func path(_ codingPath: [any CodingKey]) -> String {
            codingPath.map { $0.intValue.map(String.init) ?? $0.stringValue }.joined(separator: ".")
        }
        func field(_ codingPath: [any CodingKey]) -> String {
            let at = path(codingPath)
            return at.isEmpty ? "" : "field '\(at)': "
        }
        switch error {
        case .keyNotFound(let key, let context):
            return "field '\(path(context.codingPath + [key]))' is missing"
        case .typeMismatch(let type, let context):
            return "\(field(context.codingPath))expected \(kind(of: type))"
        case .valueNotFound(let type, let context):
            return "\(field(context.codingPath))expected \(kind(of: type)), found null"
        case .dataCorrupted(let context):
            let at = field(context.codingPath)
            return at.isEmpty ? "malformed JSON" : "\(at)\(context.debugDescription)"
        @unknown default:
            return "invalid value"
        }
    }

    /// What a client is told a value should have been, in JSON's terms.
    static func kind(of type: Any.Type) -> String {
        switch type {
        case is String.Type, is Substring.Type, is Character.Type: "a string"
        case is any BinaryInteger.Type: "an integer"
        case is any FloatingPoint.Type, is Decimal.Type: "a number"
        case is Bool.Type: "true or false"
        case is [String: Any].Type, is [AnyHashable: Any].Type: "an object"
        case is [Any].Type: "an array"
        default: "a value of another kind"
        }
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        KeyedDecodingContainer(Keyed<Key>(values: values, codingPath: codingPath))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        throw DecodingError.typeMismatch([Any].self, .init(codingPath: codingPath, debugDescription: "parameters are named"))
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer {
        throw DecodingError.typeMismatch(Any.self, .init(codingPath: codingPath, debugDescription: "parameters are named"))
    }

    struct Keyed<Key: CodingKey>: KeyedDecodingContainerProtocol {
        let values: [String: [String]]
        let codingPath: [any CodingKey]
        var allKeys: [Key] { values.keys.compactMap { Key(stringValue: $0) } }

        func contains(_ key: Key) -> Bool { values[key.stringValue] != nil }

        func decodeNil(forKey key: Key) throws -> Bool { values[key.stringValue] == nil }

        func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
            guard let strings = values[key.stringValue] else {
                throw DecodingError.keyNotFound(key, .init(codingPath: codingPath, debugDescription: "missing"))
            }
            return try T(from: Value(strings: strings, codingPath: codingPath + [key]))
        }

        func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws
            -> KeyedDecodingContainer<NestedKey>
        {
            throw DecodingError.typeMismatch(type, .init(codingPath: codingPath + [key], debugDescription: "parameters are flat"))
        }

        func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
            Values(strings: values[key.stringValue] ?? [], codingPath: codingPath + [key])
        }

        func superDecoder() throws -> any Decoder { ParameterDecoder(values: values, codingPath: codingPath) }
        func superDecoder(forKey key: Key) throws -> any Decoder { ParameterDecoder(values: values, codingPath: codingPath) }
    }

    /// The value of one parameter: a single value converts from the last string sent; an
    /// array takes every string.
    struct Value: Decoder, SingleValueDecodingContainer {
        let strings: [String]
        let codingPath: [any CodingKey]
        var userInfo: [CodingUserInfoKey: Any] { [:] }

        func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
            throw DecodingError.typeMismatch(type, .init(codingPath: codingPath, debugDescription: "expected a plain value"))
        }
        func unkeyedContainer() throws -> any UnkeyedDecodingContainer { Values(strings: strings, codingPath: codingPath) }
        func singleValueContainer() throws -> any SingleValueDecodingContainer { self }

        func decodeNil() -> Bool { strings.isEmpty }
        func decode<T: Decodable>(_ type: T.Type) throws -> T {
            guard let string = strings.last else {
                throw DecodingError.valueNotFound(T.self, .init(codingPath: codingPath, debugDescription: "no value"))
            }
            if T.self == String.self { return string as! T }
            if let convertible = T.self as? any LosslessStringConvertible.Type {
                if let value = convertible.init(string) { return value as! T }
                throw DecodingError.typeMismatch(T.self, .init(codingPath: codingPath, debugDescription: "'\(string)' is not a \(T.self)"))
            }
            if T.self == UUID.self {
                if let value = UUID(uuidString: string) { return value as! T }
                throw DecodingError.typeMismatch(T.self, .init(codingPath: codingPath, debugDescription: "'\(string)' is not a UUID"))
            }
            // Enums with raw values and other single-value types decode through this container.
            return try T(from: Value(strings: [string], codingPath: codingPath))
        }
    }

    /// Every value of a repeated parameter, for array properties.
    struct Values: UnkeyedDecodingContainer {
        let strings: [String]
        let codingPath: [any CodingKey]
        var currentIndex = 0
        var count: Int? { strings.count }
        var isAtEnd: Bool { currentIndex >= strings.count }

        init(strings: [String], codingPath: [any CodingKey]) {
            self.strings = strings
            self.codingPath = codingPath
        }

        mutating func decodeNil() throws -> Bool { false }
        mutating func decode<T: Decodable>(_ type: T.Type) throws -> T {
            guard !isAtEnd else {
                throw DecodingError.valueNotFound(T.self, .init(codingPath: codingPath, debugDescription: "no more values"))
            }
            defer { currentIndex += 1 }
            return try Value(strings: [strings[currentIndex]], codingPath: codingPath).decode(T.self)
        }
        mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws -> KeyedDecodingContainer<NestedKey> {
            throw DecodingError.typeMismatch(type, .init(codingPath: codingPath, debugDescription: "parameters are flat"))
        }
        mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer {
            throw DecodingError.typeMismatch([Any].self, .init(codingPath: codingPath, debugDescription: "parameters are flat"))
        }
        mutating func superDecoder() throws -> any Decoder { Value(strings: strings, codingPath: codingPath) }
    }
}
