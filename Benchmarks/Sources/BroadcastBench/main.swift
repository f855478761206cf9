// broadcast-bench: one message fanned out to many subscribers, on the memory and postgres backends.
//
//   swift run -c release broadcast-bench [--subscribers 1000] [--messages 200] [--url postgres://…]
//
// Two phases per backend, each bounded:
// - latency: one message every 10 ms; each subscriber notes how long after `publish` began it
//   received the message: p50/p99/max over every delivery;
// - throughput: messages published back to back (fewer than a subscriber's buffer, so none is
//   dropped); deliveries per second until the last subscriber has the last message.
import Foundation
import Star
import StarBroadcast
import Synchronization

/// A run that cannot go on.
struct BenchError: Error, CustomStringConvertible {
    let description: String
}

struct Options {
    var subscribers = 1000
    var messages = 200
    var urls = ["memory://"]

    init(_ arguments: [String]) {
        var iterator = arguments.makeIterator()
        while let argument = iterator.next() {
            switch argument {
            case "--subscribers": subscribers = Int(iterator.next() ?? "") ?? subscribers
            case "--messages": messages = min(Int(iterator.next() ?? "") ?? messages, 250)
            case "--url": urls.append(iterator.next() ?? "memory://")
            default: print("unknown argument \(argument)"); exit(2)
            }
        }
    }
}

/// When each message's publish began, by sequence number.
final class SentTimes: Sendable {
    let times: Mutex<[ContinuousClock.Instant?]>
    init(count: Int) { times = Mutex(Array(repeating: nil, count: count)) }
    func mark(_ index: Int) { times.withLock { $0[index] = .now } }
    func time(_ index: Int) -> ContinuousClock.Instant? { times.withLock { $0[index] } }
}

/// When the last subscriber had its last message.
final class LastDelivery: Sendable {
    private let instant = Mutex<ContinuousClock.Instant?>(nil)
    func mark(_ now: ContinuousClock.Instant) { instant.withLock { $0 = max($0 ?? now, now) } }
    var value: ContinuousClock.Instant? { instant.withLock { $0 } }
}

func percentile(_ sorted: [Duration], _ p: Double) -> Duration {
    sorted.isEmpty ? .zero : sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]
}

func micros(_ duration: Duration) -> String { String(Int(duration / .microseconds(1))) }

/// Runs one phase: subscribers wait for `count` messages; `publish` sends them. Returns every
/// delivery's latency and the time from the first publish to the last delivery.
func phase(_ broadcast: Broadcast, channel: String, subscribers: Int, count: Int,
           publish: @escaping @Sendable (SentTimes) async throws -> Void) async throws -> (latencies: [Duration], elapsed: Duration) {
    let sent = SentTimes(count: count)
    let lastDelivery = LastDelivery()
    return try await withThrowingTaskGroup(of: [Duration].self) { group in
        for _ in 0..<subscribers {
            group.addTask {
                try await broadcast.subscribe(to: channel, bufferSize: 256) { events in
                    var latencies: [Duration] = []
                    latencies.reserveCapacity(count)
                    for await event in events {
                        let now = ContinuousClock.now
                        guard case .text(let text) = event.message, let index = Int(text), let start = sent.time(index) else { continue }
                        latencies.append(start.duration(to: now))
                        if latencies.count == count { break }
                    }
                    lastDelivery.mark(.now)
                    return latencies
                }
            }
        }
        let deadline = ContinuousClock.now + .seconds(30)
        while broadcast.subscriberCount < subscribers {
            guard ContinuousClock.now < deadline else { throw BenchError(description: "subscribers did not start in 30 s") }
            try await Task.sleep(for: .milliseconds(5))
        }
        try await Task.sleep(for: .milliseconds(200))  // LISTEN in effect everywhere
        let start = ContinuousClock.now
        try await publish(sent)
        let watchdog = Task {
            try await Task.sleep(for: .seconds(60))
            await broadcast.shutdown()  // ends every subscription: a lost message cannot hang the run
        }
        var all: [Duration] = []
        for try await latencies in group { all += latencies }
        watchdog.cancel()
        let end = lastDelivery.value ?? .now
        return (all.sorted(), start.duration(to: end))
    }
}

let options = Options(Array(CommandLine.arguments.dropFirst()))
print("| backend | subscribers | phase | messages | deliveries | deliveries/s | p50 µs | p99 µs | max µs |")
print("| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
for url in options.urls {
    let broadcast = try Broadcast(url: url)
    let backend = url.hasPrefix("memory") ? "memory" : "postgres"
    let count = options.messages
    let latency = try await phase(broadcast, channel: "latency", subscribers: options.subscribers, count: count) { sent in
        for index in 0..<count {
            sent.mark(index)
            try await broadcast.publish("latency", text: "\(index)")
            try await Task.sleep(for: .milliseconds(10))
        }
    }
    let throughput = try await phase(broadcast, channel: "throughput", subscribers: options.subscribers, count: count) { sent in
        for index in 0..<count {
            sent.mark(index)
            try await broadcast.publish("throughput", text: "\(index)")
        }
    }
    for (name, result) in [("latency (1 msg / 10 ms)", latency), ("throughput (back to back)", throughput)] {
        let expected = count * options.subscribers
        let rate = Double(result.latencies.count) / (Double(result.elapsed / .milliseconds(1)) / 1000)
        print("| \(backend) | \(options.subscribers) | \(name) | \(count) | \(result.latencies.count)/\(expected) | \(Int(rate)) | \(micros(percentile(result.latencies, 0.5))) | \(micros(percentile(result.latencies, 0.99))) | \(micros(result.latencies.last ?? .zero)) |")
    }
    await broadcast.shutdown()
}
