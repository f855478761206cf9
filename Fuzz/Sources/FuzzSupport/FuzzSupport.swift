/// What every fuzz target shares: reading an input, and stopping on a broken invariant.

import CLibFuzzer
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Stops the process when an invariant does not hold; libFuzzer reports it like any crash and
/// saves the input. (`precondition` would do the same, but this one also names the target's file.)
public func check(_ condition: Bool, _ message: @autoclosure () -> String,
                  file: StaticString = #fileID, line: UInt = #line) {
    guard condition else { fatalError("fuzz invariant broken: \(message())", file: file, line: line) }
}

/// One fuzz input: configuration bytes taken from its front, then the rest.
public struct FuzzInput {
    public private(set) var bytes: ArraySlice<UInt8>

    public init(_ data: UnsafePointer<UInt8>?, _ count: Int) {
        bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: count))[...] } ?? []
    }

    /// The next byte, or 0 when the input is used up.
    public mutating func byte() -> UInt8 { bytes.popFirst() ?? 0 }

    /// The rest of the input.
    public var rest: ArraySlice<UInt8> { bytes }
}

/// The piece sizes an input's bytes are fed in (to exercise a decoder's partial reads): the whole
/// input at once for selector 0, else 1, 2, 3, 7, 16, 64 or 256 bytes at a time.
public func chunkSize(_ selector: UInt8) -> Int {
    [Int.max, 1, 2, 3, 7, 16, 64, 256][Int(selector & 7)]
}

extension Collection {
    /// The elements in pieces of `size` (the last may be shorter).
    public func pieces(of size: Int) -> [SubSequence] {
        var result: [SubSequence] = []
        var start = startIndex
        while start != endIndex {
            let end = index(start, offsetBy: size, limitedBy: endIndex) ?? endIndex
            result.append(self[start..<end])
            start = end
        }
        return result
    }
}

/// Hands the process to libFuzzer's driver, which runs `target` on each input it makes or reads
/// (with libFuzzer's usual command line: corpus folders, files to replay, `-flags`).
public func runLibFuzzer(_ target: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> Never {
    var argc = CommandLine.argc
    var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
    exit(star_fuzz_run(&argc, &argv, target))
}
