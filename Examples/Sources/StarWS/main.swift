// star-ws: a WebSocket client for people. Lines typed become text messages; messages received
// are printed; end of input closes with 1000.
//
//     swift run --package-path Examples star-ws ws://localhost:8000/echo
//     star-ws wss://localhost:8443/chat --subprotocol chat.v2 --header 'Authorization: Bearer t' --insecure
//
// Exit status: 0 after a normal close (1000, or 1005 when the server sent no code), the close code
// minus 1000 for 1001–1015 (11 for 1011), 100 for an application's code (3000–4999), and 1 when
// the connection could not be opened (the error is printed).
import Foundation
import HTTPTypes
import NIOCore
import Star
import StarWebSocket
import StarWebSocketClient

let usage = """
    usage: star-ws URL [--header 'Name: value']... [--subprotocol NAME]... [--origin ORIGIN]
                  [--cacert CA.pem] [--cert CLIENT.pem --key CLIENT.key] [--insecure] [--no-compression]
    """

var configuration = WebSocketClientConfiguration()
var url: String?
var arguments = CommandLine.arguments.dropFirst()
while let argument = arguments.popFirst() {
    switch argument {
    case "--header", "-H":
        guard let field = arguments.popFirst(), let colon = field.firstIndex(of: ":"),
              let name = HTTPField.Name(String(field[..<colon]).trimmingCharacters(in: .whitespaces))
        else { FileHandle.standardError.write(Data("star-ws: --header wants 'Name: value'\n\(usage)\n".utf8)); exit(2) }
        configuration.headers.append(HTTPField(name: name, value: field[field.index(after: colon)...].trimmingCharacters(in: .whitespaces)))
    case "--subprotocol":
        guard let name = arguments.popFirst() else { FileHandle.standardError.write(Data("\(usage)\n".utf8)); exit(2) }
        configuration.subprotocols.append(name)
    case "--origin":
        configuration.origin = arguments.popFirst()
    case "--cacert":
        configuration.tls.caFile = arguments.popFirst()
    case "--cert":
        configuration.tls.certificateFile = arguments.popFirst()
    case "--key":
        configuration.tls.keyFile = arguments.popFirst()
    case "--insecure", "-k":
        configuration.tls.verifiesCertificate = false
    case "--no-compression":
        configuration.options.perMessageDeflate = false
    case "--help", "-h":
        print(usage)
        exit(0)
    default:
        guard url == nil, !argument.hasPrefix("-") else { FileHandle.standardError.write(Data("\(usage)\n".utf8)); exit(2) }
        url = argument
    }
}
guard let url else { FileHandle.standardError.write(Data("\(usage)\n".utf8)); exit(2) }

/// The lines of standard input, read on a thread of their own (reading blocks).
let (lines, input) = AsyncStream<String>.makeStream()
Thread.detachNewThread {
    while let line = readLine() { input.yield(line) }
    input.finish()
}

/// Prints a received message's line at once (`print` into a pipe would wait for a full buffer).
func show(_ line: String) { FileHandle.standardOutput.write(Data((line + "\n").utf8)) }

func report(_ text: String) { FileHandle.standardError.write(Data("star-ws: \(text)\n".utf8)) }

let end: WebSocketDisconnect?
do {
    end = try await WebSocketClient.connect(to: url, configuration: configuration) { ws in
        report("connected to \(url)" + (ws.subprotocol.map { ", subprotocol \($0)" } ?? "")
            + (ws.isCompressed ? ", permessage-deflate" : ""))
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                for try await message in ws.messages {
                    switch message {
                    case .text(let text): show(text)
                    case .binary(let bytes): show("<binary, \(bytes.readableBytes) bytes> " + bytes.readableBytesView.prefix(64).map { String(format: "%02x", $0) }.joined())
                    }
                }
            }
            group.addTask {
                for await line in lines { try await ws.send(text: line) }
                await ws.close()  // end of input
            }
            try await group.next()  // whichever ends first ends the session
            group.cancelAll()
        }
        return ws.disconnect
    }
} catch let error as WebSocketClientError {
    report(error.description)
    if let body = error.body, body.readableBytes > 0 { report(String(buffer: body)) }
    exit(1)
}

let code = end?.code.rawValue ?? 1000
report("closed: \(code)" + (end.map { $0.reason.isEmpty ? "" : " \($0.reason)" } ?? ""))
switch code {
case 1000, 1005: exit(0)
case 1001...1015: exit(Int32(code - 1000))
case 3000...4999: exit(100)
default: exit(1)
}
