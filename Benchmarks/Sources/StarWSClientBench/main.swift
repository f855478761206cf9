// Client echo throughput of Star's WebSocket client: CONNECTIONS connections to an echo server,
// each sending a binary message of SIZE bytes and waiting for its echo, again and again, for
// SECONDS (and at most 50 million messages in all). Prints one JSON line. See run-ws-client.sh.
//
//     star-ws-client-bench ws://127.0.0.1:PORT/echo CONNECTIONS SIZE SECONDS
import Foundation
import NIOCore
import StarWebSocketClient
import Synchronization

let arguments = CommandLine.arguments
guard arguments.count == 5, let connections = Int(arguments[2]), let size = Int(arguments[3]), let seconds = Double(arguments[4]) else {
    print("usage: star-ws-client-bench URL CONNECTIONS SIZE SECONDS")
    exit(2)
}
let url = arguments[1]
let limit = 50_000_000 / connections
var configuration = WebSocketClientConfiguration()
configuration.options.perMessageDeflate = false   // the payload is what is measured, as for the other clients
configuration.options.maxMessageSize = max(size * 2, 1 << 20)
let payload = ByteBuffer(repeating: 0x61, count: size)

let start = ContinuousClock.now
let deadline = start + .seconds(seconds)
let total = try await withThrowingTaskGroup(of: Int.self) { group in
    for _ in 0..<connections {
        group.addTask {
            try await WebSocketClient.connect(to: url, configuration: configuration) { ws in
                var count = 0
                while count < limit, ContinuousClock.now < deadline {
                    try await ws.send(bytes: payload)
                    _ = try await ws.receiveBytes()
                    count += 1
                }
                return count
            }
        }
    }
    var sum = 0
    for try await count in group { sum += count }
    return sum
}
let elapsed = ContinuousClock.now - start
let time = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
print(#"{"client":"star","connections":\#(connections),"size":\#(size),"messages":\#(total),"seconds":\#(time)}"#)
