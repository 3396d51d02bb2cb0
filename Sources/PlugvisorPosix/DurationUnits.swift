extension Duration {
    /// Whole microseconds, truncated.
    public var microseconds: Int64 {
        let (seconds, attos) = components
        return seconds * 1_000_000 + attos / 1_000_000_000_000
    }

    /// Whole nanoseconds, truncated.
    public var nanoseconds: Int64 {
        let (seconds, attos) = components
        return seconds * 1_000_000_000 + attos / 1_000_000_000
    }

    /// Seconds, for Foundation's `TimeInterval` APIs.
    public var timeInterval: Double { Double(microseconds) / 1e6 }
}
