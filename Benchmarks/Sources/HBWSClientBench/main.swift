// Client echo throughput of Hummingbird's WebSocket client (HummingbirdWSClient), measured as
// star-ws-client-bench measures Star's: CONNECTIONS connections, each sending a binary message of
// SIZE bytes and waiting for its echo, for SECONDS (at most 50 million messages in all).
//
//     hb-ws-client-bench ws://127.0.0.1:PORT/echo CONNECTIONS SIZE SECONDS
import Foundation
import HummingbirdWSClient
import Logging
import NIOCore
import Synchronization

let arguments = CommandLine.arguments
guard arguments.count == 5, let connections = Int(arguments[2]), let size = Int(arguments[3]), let seconds = Double(arguments[4]) else {
    print("usage: hb-ws-client-bench URL CONNECTIONS SIZE SECONDS")
    exit(2)
}
let url = arguments[1]
let limit = 50_000_000 / connections
let payload = ByteBuffer(repeating: 0x61, count: size)
let logger = Logger(label: "hb-ws-client-bench")

let start = ContinuousClock.now
let deadline = start + .seconds(seconds)
let total = try await withThrowingTaskGroup(of: Int.self) { group in
    for _ in 0..<connections {
        group.addTask {
            let counted = Counter()
            try await WebSocketClient.connect(url: url, configuration: .init(maxFrameSize: max(size * 2, 1 << 20)), logger: logger) { inbound, outbound, _ in
                var messages = inbound.messages(maxSize: max(size * 2, 1 << 20)).makeAsyncIterator()
                var count = 0
                while count < limit, ContinuousClock.now < deadline {
                    try await outbound.write(.binary(payload))
                    guard try await messages.next() != nil else { break }
                    count += 1
                }
                counted.value.withLock { $0 = count }
            }
            return counted.value.withLock { $0 }
        }
    }
    var sum = 0
    for try await count in group { sum += count }
    return sum
}
let elapsed = ContinuousClock.now - start
let time = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
print(#"{"client":"hummingbird","connections":\#(connections),"size":\#(size),"messages":\#(total),"seconds":\#(time)}"#)

/// The count a connection's handler leaves behind (the handler returns nothing).
final class Counter: Sendable {
    let value = Mutex(0)
}
