// One broadcast to every connected WebSocket, once a second: the server of Benchmarks/run-scale.sh.
//
//   swift run -c release fanout --port 9200 --no-access-log --ws-per-message-deflate false
//   swift run -c release fanout --interval 0.5 --ws-ping-interval 10     # its own option, then Star's
//
// Each client of `/feed` subscribes to the `feed` channel of an in-memory Broadcast and gets every
// message published on it; it sends nothing (keepalive pings, on at Star's default of 20 s unless
// `--ws-ping-interval` says otherwise, are answered by the client's WebSocket stack). A task
// publishes one text message every `--interval` seconds (default 1, on the wall clock's second):
//
//     t=<wall clock at publish, ns since the epoch> seq=<n> subscribers=<count>
//
// so a client on the same machine computes each delivery's latency as its own CLOCK_REALTIME
// minus `t`. After each publish the server prints one line on stdout:
//
//     fanout seq=<n> t=<ns> subscribers=<count> publish_us=<µs>
//
// where `publish_us` is how long `publish` took to hand the event to every subscription (it never
// waits for a socket: each handler then sends on its own connection's event loop).
import Foundation
import Star
import StarBroadcast
import StarServer
import StarWebSocket

/// The wall clock in nanoseconds since the epoch (CLOCK_REALTIME), as the load generator reads it.
func wallClockNanoseconds() -> Int64 {
    var now = timespec()
    clock_gettime(CLOCK_REALTIME, &now)
    return Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
}

/// Every message of the feed, until the client leaves (the next send after that throws, which
/// ends the handler and its subscription).
@concurrent func feed(ws: WebSocket, broadcast: Broadcast) async throws {
    try await broadcast.subscribe(to: "feed") { events in
        try await ws.connect()  // after subscribing: nothing published once the client is open is missed
        for await event in events {
            try await ws.send(event.message)
        }
    }
}

/// `--interval SECONDS` is this example's own option; every other argument is Star's.
func splitArguments() -> (interval: Double, rest: [String]) {
    var arguments = Array(CommandLine.arguments.dropFirst())
    guard let index = arguments.firstIndex(of: "--interval"), index + 1 < arguments.count,
          let seconds = Double(arguments[index + 1]), seconds >= 0.01 else { return (1, arguments) }
    arguments.removeSubrange(index...index + 1)
    return (seconds, arguments)
}
let (interval, arguments) = splitArguments()

let broadcast = try Broadcast(url: "memory://")

// Broadcasts go out at whole multiples of the interval on the wall clock (every second on the
// second, by default), so that several of these servers on one machine publish at the same moment.
let publisher = Task {
    let step = Int64(interval * 1e9)
    var seq = 0
    while !Task.isCancelled {
        let now = wallClockNanoseconds()
        try await Task.sleep(for: .nanoseconds(step - now % step))
        seq += 1
        let subscribers = broadcast.subscriberCount
        let start = wallClockNanoseconds()
        try? await broadcast.publish("feed", text: "t=\(start) seq=\(seq) subscribers=\(subscribers)")
        let took = (wallClockNanoseconds() - start) / 1000
        // One write per line (print would buffer it when stdout is a file).
        FileHandle.standardOutput.write(Data("fanout seq=\(seq) t=\(start) subscribers=\(subscribers) publish_us=\(took)\n".utf8))
    }
}

let app = App(
    routes: [Route("/feed", .get, feed, name: "feed")],
    components: [WebSocketComponent(), Provide(broadcast)]
)
try await app.main(arguments: arguments)
publisher.cancel()
