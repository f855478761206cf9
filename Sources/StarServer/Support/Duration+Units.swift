extension Duration {
    /// The duration in whole nanoseconds (metrics timers).
    var nanoseconds: Int64 {
        components.seconds * 1_000_000_000 + components.attoseconds / 1_000_000_000
    }

    /// The duration in milliseconds with three decimals, for log lines (`"1.234"`).
    var millisecondsText: String {
        let micros = nanoseconds / 1000
        return "\(micros / 1000).\(String(micros % 1000 + 1000).dropFirst())"
    }
}
