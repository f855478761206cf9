// Plays Autobahn|Testsuite's client cases with Star's WebSocket client: asks a `wstest -m
// fuzzingserver` how many cases it has, runs each one (echoing every message back as received),
// then asks it to write its reports.
//
//     autobahn-client ws://127.0.0.1:9001 --agent star
//
// .ci/autobahn-client.sh starts the fuzzingserver, runs this, and judges the report.
import Star
import StarWebSocket
import StarWebSocketClient

#if canImport(Glibc)
import Glibc
#endif

var arguments = Array(CommandLine.arguments.dropFirst())
var agent = "star"
if let flag = arguments.firstIndex(of: "--agent"), flag + 1 < arguments.count {
    agent = arguments[flag + 1]
    arguments.removeSubrange(flag...(flag + 1))
}
guard arguments.count == 1, let server = arguments.first else {
    print("usage: autobahn-client URL [--agent NAME]   (URL: the fuzzingserver, as ws://127.0.0.1:9001)")
    exit(2)
}
let base = server.hasSuffix("/") ? String(server.dropLast()) : server

// Autobahn's largest messages are 16 MiB, and no case waits for our keepalive pings.
var configuration = WebSocketClientConfiguration()
configuration.options.maxMessageSize = 64 * 1024 * 1024
configuration.options.pingInterval = nil
configuration.options.pingTimeout = nil

let count = try await WebSocketClient.connect(to: "\(base)/getCaseCount", configuration: configuration) { ws in
    try await ws.receiveText()
}
guard let cases = Int(count) else {
    print("autobahn-client: the fuzzingserver answered getCaseCount with '\(count)'")
    exit(1)
}
print("autobahn-client: \(cases) cases, agent \(agent)")

for number in 1...max(cases, 1) where cases > 0 {
    do {
        try await WebSocketClient.connect(to: "\(base)/runCase?case=\(number)&agent=\(agent)", configuration: configuration) { ws in
            do {
                for try await message in ws.messages { try await ws.send(message) }
            } catch is WebSocketDisconnect {
                // the case ended while we were echoing
            }
        }
    } catch {
        print("autobahn-client: case \(number): \(error)")  // the report judges the case
    }
    if number % 50 == 0 { print("autobahn-client: \(number)/\(cases)") }
}

try await WebSocketClient.connect(to: "\(base)/updateReports?agent=\(agent)", configuration: configuration) { ws in
    for try await _ in ws.messages {}
}
print("autobahn-client: reports updated")
