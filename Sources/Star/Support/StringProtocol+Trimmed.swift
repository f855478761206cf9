extension StringProtocol {
    /// The text without leading and trailing characters from `set` (header values, parameters).
    package func trimmed(of set: String) -> String {
        var text = Substring(self)
        while let first = text.first, set.contains(first) { text.removeFirst() }
        while let last = text.last, set.contains(last) { text.removeLast() }
        return String(text)
    }
}
