import Star
import StarBroadcast
import StarTesting
import StarWebSocket
import Testing

/// A chat room: what a client sends goes to the room; the room's messages come back.
@concurrent func chatRoom(path: PathParams, ws: WebSocket, broadcast: Broadcast) async throws {
    let room = path["room"] ?? "lobby"
    try await broadcast.subscribe(to: room) { events in
        try await ws.connect()
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { for await event in events { try await ws.send(event.message) } }
            try await ws.send(text: "joined \(room)")
            for try await message in ws.messages { try await broadcast.publish(room, message) }
            group.cancelAll()
        }
    }
}

@Suite struct BroadcastTests {
    static func chatApp() throws -> App {
        App(routes: [Route("/ws/{room}", .get, chatRoom)], components: [WebSocketComponent(), try BroadcastComponent(url: "memory://")])
    }

    @Test func everyMessageReachesEveryClientOfTheRoomOnly() async throws {
        let client = try TestClient(try Self.chatApp())
        var members: [TestWebSocket] = []
        for _ in 0..<3 {
            let ws = try await client.websocketConnect("/ws/lobby")
            #expect(try await ws.receiveText(timeout: .seconds(5)) == "joined lobby")
            members.append(ws)
        }
        let outsider = try await client.websocketConnect("/ws/kitchen")
        #expect(try await outsider.receiveText(timeout: .seconds(5)) == "joined kitchen")

        for (index, member) in members.enumerated() {
            for number in 0..<20 { try await member.send(text: "\(index):\(number)") }
        }
        for member in members {
            var next = [0, 0, 0]
            for _ in 0..<60 {
                let text = try await member.receiveText(timeout: .seconds(5))
                let parts = text.split(separator: ":").compactMap { Int($0) }
                try #require(parts.count == 2)
                #expect(parts[1] == next[parts[0]], "in order per publisher, none lost or repeated")
                next[parts[0]] += 1
            }
            #expect(next == [20, 20, 20])
        }
        try await outsider.send(text: "only for the kitchen")
        #expect(try await outsider.receiveText(timeout: .seconds(5)) == "only for the kitchen")
        for member in members { await member.close() }
        await outsider.close()
    }

    @Test func binaryAndJSONArriveAsPublished() async throws {
        let broadcast = try Broadcast(url: "memory://")
        struct Note: Codable, Equatable { var text: String }
        try await broadcast.subscribe(to: "a", "b") { events in
            try await broadcast.publish("a", bytes: [1, 2, 3])
            try await broadcast.publish("b", json: Note(text: "hi"))
            try await broadcast.publish("c", text: "not subscribed")
            var iterator = events.makeAsyncIterator()
            #expect(await iterator.next() == BroadcastEvent(channel: "a", message: .binary(ByteBuffer(bytes: [1, 2, 3]))))
            #expect(await iterator.next() == BroadcastEvent(channel: "b", message: .text(#"{"text":"hi"}"#)))
        }
        #expect(broadcast.subscriberCount == 0, "leaving the scope unsubscribes")
    }

    @Test func aSlowSubscriberLosesTheOldestEventsAndNeverBlocksThePublisher() async throws {
        let broadcast = try Broadcast(url: "memory://")
        try await broadcast.subscribe(to: "room", bufferSize: 4) { events in
            for number in 0..<10 { try await broadcast.publish("room", text: "\(number)") }
            #expect(events.dropped == 6)
            var received: [String] = []
            for await event in events {
                if case .text(let text) = event.message { received.append(text) }
                if received.count == 4 { break }
            }
            #expect(received == ["6", "7", "8", "9"], "the newest four are kept")
        }
    }

    @Test func shutdownEndsSubscriptions() async throws {
        let broadcast = try Broadcast(url: "memory://")
        try await broadcast.subscribe(to: "room") { events in
            async let ended: Void = { for await _ in events {} }()
            await broadcast.shutdown()
            await ended
        }
    }

    /// A route that publishes one message to itself and answers it.
    @Sendable @concurrent static func roundTrip(broadcast: Broadcast) async throws -> String {
        try await broadcast.subscribe(to: "echo") { events in
            try await broadcast.publish("echo", text: "round trip")
            for await event in events { if case .text(let text) = event.message { return text } }
            return "ended"
        }
    }

    @Test func theComponentUsesItsOwnURLThenTheAppsThenMemory() async throws {
        let route = Route("/", .get, Self.roundTrip)
        let plain = try TestClient(App(routes: [route], components: [try BroadcastComponent()]))
        #expect(await plain.get("/").text == "round trip", "neither URL: memory://")

        // The app's URL is what the component uses without one of its own: a bad one fails the request.
        let broken = App(routes: [route], components: [try BroadcastComponent()],
                         configuration: .init(broadcastURL: "redis://cache"))
        #expect(await (try TestClient(broken)).get("/").status == .internalServerError)
        let fromApp = App(routes: [route], components: [try BroadcastComponent()],
                          configuration: .init(broadcastURL: "memory://"))
        #expect(await (try TestClient(fromApp)).get("/").text == "round trip")

        let own = App(routes: [route], components: [try BroadcastComponent(url: "memory://")],
                      configuration: .init(broadcastURL: "redis://cache"))
        #expect(await (try TestClient(own)).get("/").text == "round trip", "the component's URL wins")
    }

    #if !PostgreSQL
    /// PostgreSQL is Star's `PostgreSQL` trait: without it a well-formed `postgres://` URL is refused
    /// with the way to turn it on, not accepted and then never connected.
    @Test func postgresWithoutItsTraitIsRefusedWithTheFix() {
        let url = "postgres://star:secret@127.0.0.1:5432/chat"
        let error = #expect(throws: BroadcastError.self) { try Broadcast(url: url) }
        #expect(error?.kind == .invalidURL)
        #expect(error?.description.contains(#"traits: ["PostgreSQL"]"#) == true)
        #expect(throws: BroadcastError.self) { try BroadcastComponent(url: url) }
    }
    #endif

    @Test(arguments: ["redis://x", "postgres://", "postgres:///db", "not a url"])
    func badURLsAreRefusedWithAReason(_ url: String) {
        let error = #expect(throws: BroadcastError.self) { try Broadcast(url: url) }
        #expect(error?.kind == .invalidURL)
        #expect(throws: BroadcastError.self, "the component checks a URL it is given at once") { try BroadcastComponent(url: url) }
    }
}
