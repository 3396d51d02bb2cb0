/// Parsers for the manifest's human units. Each returns nil for anything it does not accept,
/// and the caller reports the problem with its location.
public enum Units {
    /// `250ms`, `5s`, `1.5s`, `2m`, `1h`, `500us`.
    public static func duration(_ text: String) -> Duration? {
        let units: [(String, Double)] = [("us", 1e-6), ("µs", 1e-6), ("ms", 1e-3), ("s", 1), ("m", 60), ("h", 3600)]
        for (suffix, scale) in units where text.hasSuffix(suffix) {
            let number = text.dropLast(suffix.count)
            // A leading digit is required, so that "100ms...5s" cannot pass as 100ms..0.5s.
            guard let first = number.first, first.isASCII, first.isNumber,
                number.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == ".") }),
                let value = Double(number), value.isFinite
            else { return nil }
            let micros = value * scale * 1e6
            guard micros <= 1e15 else { return nil }
            return .microseconds(Int64(micros.rounded()))
        }
        return nil
    }

    /// `32MiB`, `64KiB`, `1GiB`, `1048576`, also decimal `KB`/`MB`/`GB`.
    public static func size(_ text: String) -> Int? {
        let units: [(String, Int)] = [
            ("KiB", 1 << 10), ("MiB", 1 << 20), ("GiB", 1 << 30),
            ("KB", 1_000), ("MB", 1_000_000), ("GB", 1_000_000_000), ("B", 1),
        ]
        var number = Substring(text)
        var scale = 1
        for (suffix, s) in units where text.hasSuffix(suffix) {
            number = text.dropLast(suffix.count)
            scale = s
            break
        }
        guard let value = integer(String(number)), value >= 0 else { return nil }
        let (product, overflow) = Int(value).multipliedReportingOverflow(by: scale)
        return overflow ? nil : product
    }

    /// A non-negative integer, allowing `_` between digits as YAML 1.1 and Swift do.
    public static func integer(_ text: String) -> UInt64? {
        guard let first = text.first, first.isASCII, first.isNumber, text.last != "_" else { return nil }
        let digits = text.filter { $0 != "_" }
        guard digits.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
        guard let value = UInt64(digits), value <= UInt64(Int64.max) else { return nil }
        return value
    }

    /// `MIN..MAX`, both durations, MIN ≤ MAX.
    public static func durationRange(_ text: String) -> (Duration, Duration)? {
        let parts = text.split(separator: "..", omittingEmptySubsequences: false)
        guard parts.count == 2, let low = duration(String(parts[0])), let high = duration(String(parts[1])),
            low <= high
        else { return nil }
        return (low, high)
    }
}
