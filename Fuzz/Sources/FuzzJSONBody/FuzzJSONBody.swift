// Request body bytes → JSON.decode, the decode Body<T> runs, into a small Codable type (nested
// and recursive, with optionals, numbers, strings, arrays and a dictionary); a failure goes
// through ParameterDecoder.describe, which writes the 400's detail.
//
// Input: the body, as is.
//
// Invariants: decoding never crashes; what decodes and encodes again (JSON.encode, as responses
// do) decodes to an equal value.

import Foundation
import FuzzSupport
@testable import Star

struct Item: Codable, Equatable, Sendable {
    enum Kind: String, Codable, Sendable { case small, large }

    var name: String
    var count: Int
    var price: Double?
    var tags: [String]?
    var kind: Kind?
    var flags: [String: Bool]?
    var id: UInt8?
    var children: [Item]?
}

/// What libFuzzer runs on each input (its LLVMFuzzerTestOneInput).
func fuzzJSONBody(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let body = ByteBuffer(bytes: UnsafeBufferPointer(start: data, count: data == nil ? 0 : size))
    let item: Item
    do {
        item = try JSON.decode(Item.self, from: body.readableBytesView)
    } catch {
        check(!ParameterDecoder.describe(error).isEmpty, "an empty error detail")
        return 0
    }
    // Values JSON cannot carry (an infinite price) do not encode; that is the encoder's answer, not a bug.
    guard let encoded = try? JSON.encode(item) else { return 0 }
    do {
        let again = try JSON.decode(Item.self, from: encoded)
        check(again == item, "decode → encode → decode changed the value: \(item) → \(again)")
    } catch {
        check(false, "what we encoded does not decode: \(error)\n\(String(decoding: encoded, as: UTF8.self))")
    }
    return 0
}
