// star-hello: the benchmark routes on Star.
//
//   star-hello --port 8081 --no-access-log [STAR_BENCH_PUBLIC=DIR]
//   star-hello --port 8081 --no-access-log --ssl-certfile cert.pem --ssl-keyfile key.pem   # run-h2.sh
//
// Options are `app.main()`'s own (`--host` defaults to 127.0.0.1); run-http.sh passes
// `--no-access-log` so no server logs a line per request. The Benchmarks package turns on Star's
// `TLS` trait, so `--ssl-certfile`/`--ssl-keyfile` serve https, h2 or http/1.1 by ALPN (HTTP/2 is
// on by default). With STAR_BENCH_PUBLIC=DIR, the files of DIR/static are served at /static/
// (run-files.sh), as hb-hello and vapor-hello serve DIR.
// `/events` is a Server-Sent Events feed: one event every 10 ms, to every client, whose data is
// the wall-clock time it was published in nanoseconds (run-files.sh's fan-out measures delivery).
import Foundation
import Star
import StarBroadcast
import StarFiles
import StarServer
import Synchronization

struct Message: Encodable, Sendable {
    var message: String
}

@concurrent func plaintext() async -> String {
    "Hello, World!"
}

@concurrent func json() async -> Message {
    Message(message: "Hello, World!")
}

/// Publishes the time on the `tick` channel every 10 ms, from the first subscriber on.
final class Ticker: Sendable {
    let broadcast = try! Broadcast(url: "memory://")
    private let started = Mutex(false)

    func start() {
        guard started.withLock({ started in defer { started = true }; return !started }) else { return }
        let broadcast = self.broadcast
        Task {
            while true {
                try await Task.sleep(for: .milliseconds(10))
                var now = timespec()
                clock_gettime(CLOCK_REALTIME, &now)
                try? await broadcast.publish("tick", text: "\(Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec))")
            }
        }
    }
}

let ticker = Ticker()

@concurrent func events() async -> Response {
    ticker.start()
    return .eventStream(keepAlive: nil) { events in
        try await ticker.broadcast.subscribe(to: "tick") { ticks in
            for await tick in ticks {
                guard case .text(let time) = tick.message else { continue }
                try await events.send(data: time)
            }
        }
    }
}

var routes: [any RouteEntry] = [
    Route("/plaintext", .get, plaintext, name: "plaintext"),
    Route("/json", .get, json, name: "json"),
    Route("/events", .get, events, name: "events"),
]
if let folder = ProcessInfo.processInfo.environment["STAR_BENCH_PUBLIC"] {
    routes.append(StaticFiles("/static", folder: folder + "/static"))
}
try await App(routes: routes).main()
