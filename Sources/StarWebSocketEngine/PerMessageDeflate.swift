import CompressNIO
package import NIOCore
import Star

/// permessage-deflate (RFC 7692): negotiation, and the zlib streams of one session.
///
/// Frugal by design (uvicorn #1862: ~4 GB for 5–8k connections): the server compresses with a
/// 4 KiB window (12 bits) and memLevel 5, and never keeps its compression context between
/// messages, so an idle connection holds no deflate state; when the client offers
/// `client_max_window_bits` we ask for 12 bits too, and when it offers `client_no_context_takeover`
/// we drop the inflate state after each message.
package final class PerMessageDeflate {
    /// What was agreed in the handshake.
    package struct Agreement: Equatable {
        /// The window of the client's compressor (what our inflater needs).
        package var clientMaxWindowBits: Int = 15
        /// The client resets its context per message: we can drop ours between messages.
        package var clientNoContextTakeover = false
        /// The client asked us not to keep context (we never do; echoed when asked).
        package var serverNoContextTakeover = false
        /// The window our compressor uses (≤ what the client allowed).
        package var serverMaxWindowBits: Int = PerMessageDeflate.serverWindowBits
        /// Whether the client asked for `server_max_window_bits` (then the response names it).
        package var serverMaxWindowBitsRequested = false
        /// Whether the client offered `client_max_window_bits` (then the response may limit it).
        package var clientMaxWindowBitsOffered = false

        /// The `Sec-WebSocket-Extensions` value of the 101 response.
        package var responseHeader: String {
            var header = "permessage-deflate"
            if serverNoContextTakeover { header += "; server_no_context_takeover" }
            if clientNoContextTakeover { header += "; client_no_context_takeover" }
            if serverMaxWindowBitsRequested { header += "; server_max_window_bits=\(serverMaxWindowBits)" }
            if clientMaxWindowBitsOffered { header += "; client_max_window_bits=\(clientMaxWindowBits)" }
            return header
        }
    }

    /// The window our compressor uses unless the client asks for less.
    package static let serverWindowBits = 12
    /// The window we ask the client to use when it lets us choose.
    package static let clientWindowBits = 12
    /// Messages smaller than this go uncompressed: deflate cannot win much on them.
    package static let minimumSizeToCompress = 256

    /// Picks the first offer in `Sec-WebSocket-Extensions` values that we can honour; `nil` when
    /// there is none (the session then runs uncompressed).
    package static func negotiate(_ headerValues: [String]) -> Agreement? {
        let offers = headerValues.flatMap { $0.split(separator: ",") }
        for offer in offers {
            var parts = offer.split(separator: ";").map { $0.trimmed(of: " \t") }
            guard parts.first == "permessage-deflate" else { continue }
            parts.removeFirst()
            if let agreement = agreement(for: parts) { return agreement }
        }
        return nil
    }

    private static func agreement(for parameters: [String]) -> Agreement? {
        var agreement = Agreement()
        var seen: Set<String> = []
        for parameter in parameters {
            let pair = parameter.split(separator: "=", maxSplits: 1).map { $0.trimmed(of: " \t\"") }
            // An empty parameter (`permessage-deflate; ;`, `;=`, `;"`) declines the offer.
            guard let name = pair.first?.lowercased() else { return nil }
            guard seen.insert(name).inserted else { return nil }  // a repeated parameter declines the offer
            let value = pair.count == 2 ? pair[1] : nil
            switch name {
            case "server_no_context_takeover":
                guard value == nil else { return nil }
                agreement.serverNoContextTakeover = true
            case "client_no_context_takeover":
                guard value == nil else { return nil }
                agreement.clientNoContextTakeover = true
            case "server_max_window_bits":
                // zlib cannot make a raw deflate stream with an 8-bit window: decline such an offer.
                guard let value, let bits = Int(value), (9...15).contains(bits) else { return nil }
                agreement.serverMaxWindowBits = min(bits, serverWindowBits)
                agreement.serverMaxWindowBitsRequested = true
            case "client_max_window_bits":
                var limit = 15
                if let value {
                    guard let bits = Int(value), (8...15).contains(bits) else { return nil }
                    limit = bits
                }
                agreement.clientMaxWindowBitsOffered = true
                agreement.clientMaxWindowBits = min(limit, clientWindowBits)
            default:
                return nil
            }
        }
        return agreement
    }

    package let agreement: Agreement
    private var inflater: ZlibDecompressor?

    package init(_ agreement: Agreement) { self.agreement = agreement }

    /// Inflates one message's payload; throws ``WebSocketMessageAssembler/Failure`` with 1009 past
    /// `limit` bytes (a zip bomb stops there) and 1007 for data that is not deflate.
    package func inflate(_ compressed: ByteBuffer, limit: Int, allocator: ByteBufferAllocator) throws(WebSocketMessageAssembler.Failure) -> ByteBuffer {
        let limit = min(limit, Int.max - 1)  // `maxMessageSize: .max` means no limit; `limit + 1` below must not overflow
        var input = compressed
        input.writeBytes([0x00, 0x00, 0xFF, 0xFF])
        var output = allocator.buffer(capacity: min(limit + 1, max(1024, compressed.readableBytes * 4)))
        do {
            // zlib needs at least a 9-bit window for raw inflate; a larger one reads any smaller stream.
            let inflater = try self.inflater ?? ZlibDecompressor(algorithm: .deflate, windowSize: Int32(max(9, agreement.clientMaxWindowBits)))
            self.inflater = inflater
            var restarted = false
            while true {
                let unread = input.readableBytes, written = output.readableBytes
                var full = false
                do {
                    try input.decompressStream(to: &output, with: inflater)
                    if input.readableBytes == 0 { break }
                } catch let error as CompressNIOError where error == .bufferOverflow {
                    // zlib's Z_BUF_ERROR: the output is full, or (with room left) no progress was possible.
                    full = output.writableBytes == 0
                }
                if input.readableBytes == unread, output.readableBytes == written, !full {
                    // The deflate stream ended (a block with BFINAL set) before the payload did: RFC 7692
                    // §7.2.3.4 allows that, and what follows starts a new stream. (Looping on would spin
                    // forever: zlib reads nothing more and the output never fills up to grow.)
                    guard !restarted else { throw CompressNIOError.corruptData }
                    restarted = true
                    try inflater.reset()
                    continue
                }
                restarted = false
                // Grow only a full output: growing at every turn doubled it per deflate stream, and a
                // payload of many tiny streams asked for 2 GiB (the fuzz target found one).
                guard full else { continue }
                guard output.readableBytes <= limit, output.capacity <= limit else {
                    throw WebSocketMessageAssembler.Failure(code: .messageTooBig, reason: "message larger than \(limit) bytes once inflated")
                }
                output.reserveCapacity(minimumWritableBytes: min(limit + 1 - output.readableBytes, max(output.capacity, 1024)))
            }
        } catch let failure as WebSocketMessageAssembler.Failure {
            self.inflater = nil
            throw failure
        } catch {
            self.inflater = nil
            throw WebSocketMessageAssembler.Failure(code: .invalidFramePayloadData, reason: "invalid deflate data")
        }
        guard output.readableBytes <= limit else {
            self.inflater = nil
            throw WebSocketMessageAssembler.Failure(code: .messageTooBig, reason: "message larger than \(limit) bytes once inflated")
        }
        if agreement.clientNoContextTakeover { self.inflater = nil }
        return output
    }

    /// Deflates one message's payload (without the final `00 00 FF FF`), or `nil` when it is too
    /// small to be worth it or compression fails (the message then goes uncompressed).
    package func deflate(_ payload: ByteBuffer, allocator: ByteBufferAllocator) -> ByteBuffer? {
        guard payload.readableBytes >= Self.minimumSizeToCompress else { return nil }
        do {
            let compressor = try ZlibCompressor(
                algorithm: .deflate,
                configuration: ZlibConfiguration(windowSize: Int32(agreement.serverMaxWindowBits), compressionLevel: 6, memoryLevel: 5)
            )
            var input = payload
            var output = allocator.buffer(capacity: compressor.maxSize(from: input) + 64)
            while true {
                do {
                    try input.compressStream(to: &output, with: compressor, flush: .sync)
                    if output.writableBytes > 0 { break }
                } catch let error as CompressNIOError where error == .bufferOverflow {
                    // grow and go on
                }
                output.reserveCapacity(minimumWritableBytes: max(1024, output.capacity))
            }
            guard output.readableBytes >= 4 else { return nil }
            output.moveWriterIndex(to: output.writerIndex - 4)
            return output
        } catch {
            return nil
        }
    }
}

// MARK: The client's side

extension PerMessageDeflate {
    /// What a client offers (`Sec-WebSocket-Extensions`), with the server's frugal defaults turned
    /// around: the server should compress with a 12-bit window (our inflater's memory), and may
    /// limit our compressor's (which never keeps its context between messages).
    package static let clientOffer = "permessage-deflate; server_max_window_bits=\(clientWindowBits); client_max_window_bits"

    /// The server's answer to ``clientOffer`` as an agreement in the engine's terms: its
    /// `client…` fields are the peer's compressor (here the server's: what our inflater needs)
    /// and ``Agreement/serverMaxWindowBits`` our compressor's window. Throws the reason when the
    /// answer is not one the offer allows (RFC 7692 §5: the client then fails the connection).
    package static func clientAgreement(_ response: String) throws(Refusal) -> Agreement {
        var parts = response.split(separator: ";").map { $0.trimmed(of: " \t") }
        guard parts.first == "permessage-deflate" else { throw Refusal("an extension that was not offered: \(response)") }
        parts.removeFirst()
        var agreement = Agreement()
        var seen: Set<String> = []
        for parameter in parts {
            let pair = parameter.split(separator: "=", maxSplits: 1).map { $0.trimmed(of: " \t\"") }
            guard let name = pair.first?.lowercased(), seen.insert(name).inserted else {
                throw Refusal("a repeated or empty permessage-deflate parameter: \(response)")
            }
            let bits = pair.count == 2 ? Int(pair[1]) : nil
            switch name {
            case "server_no_context_takeover" where pair.count == 1:
                agreement.clientNoContextTakeover = true  // the peer resets its context: drop our inflater's too
            case "client_no_context_takeover" where pair.count == 1:
                break  // our compressor never keeps its context
            case "server_max_window_bits":
                guard let bits, (8...clientWindowBits).contains(bits) else { throw Refusal("server_max_window_bits out of range: \(response)") }
                agreement.clientMaxWindowBits = bits
            case "client_max_window_bits":
                // zlib cannot make a raw deflate stream with an 8-bit window: 9 is the least it can do.
                guard let bits, (8...15).contains(bits) else { throw Refusal("client_max_window_bits out of range: \(response)") }
                agreement.serverMaxWindowBits = min(max(bits, 9), serverWindowBits)
            default:
                throw Refusal("an unknown permessage-deflate parameter '\(parameter)'")
            }
        }
        return agreement
    }

    /// Why a server's permessage-deflate answer is refused.
    package struct Refusal: Error, Sendable, Equatable {
        /// One line saying why.
        package let reason: String
        init(_ reason: String) { self.reason = reason }
    }
}
