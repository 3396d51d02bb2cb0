import PlugvisorManifest
import Testing

@Suite struct UnitsTests {
    // MARK: Durations

    @Test(arguments: [
        ("250ms", Duration.milliseconds(250)),
        ("5s", .seconds(5)),
        ("1.5s", .milliseconds(1500)),
        ("0.25s", .milliseconds(250)),
        ("2m", .seconds(120)),
        ("1.5m", .seconds(90)),
        ("1h", .seconds(3600)),
        ("500us", .microseconds(500)),
        ("500µs", .microseconds(500)),
        ("0.5ms", .microseconds(500)),
        ("0s", .zero),
        ("007s", .seconds(7)),
    ])
    func aDurationIsANumberWithAUnit(text: String, expected: Duration) {
        #expect(Units.duration(text) == expected)
    }

    @Test func aDurationIsKeptToTheNearestMicrosecond() {
        #expect(Units.duration("1.4us") == .microseconds(1))
        #expect(Units.duration("1.6us") == .microseconds(2))
        #expect(Units.duration("0.0001ms") == .zero)
    }

    @Test func theLongestDurationIsABillionSeconds() {
        #expect(Units.duration("1000000000s") == .seconds(1_000_000_000))
        #expect(Units.duration("1000000001s") == nil)
        #expect(Units.duration("277778h") == nil)
        #expect(Units.duration("99999999999999999999999999h") == nil)
    }

    @Test(arguments: [
        "", "s", "ms", "5", "5x", "5d", "5S", "5MS", "5sec", "5ss", "5sm",
        " 5s", "5s ", "5 s", "-1s", "+1s", "1e3s", "1,5s", "1.2.3s", ".s", ".5s", "infs", "nans",
        "1_000ms", "５s", "½s", "٣s",
    ])
    func aDurationWithoutAKnownUnitOrWithGarbageIsRefused(text: String) {
        #expect(Units.duration(text) == nil)
    }

    // MARK: Sizes

    @Test(arguments: [
        ("32MiB", 32 << 20),
        ("64KiB", 64 << 10),
        ("1GiB", 1 << 30),
        ("1048576", 1_048_576),
        ("1KB", 1_000),
        ("2MB", 2_000_000),
        ("3GB", 3_000_000_000),
        ("7B", 7),
        ("0", 0),
        ("1_024KiB", 1 << 20),
        ("9223372036854775807", Int.max),
        ("8589934591GiB", 8_589_934_591 << 30),
    ])
    func aSizeIsBytesOrABinaryOrDecimalMultiple(text: String, expected: Int) {
        #expect(Units.size(text) == expected)
    }

    @Test(arguments: [
        "", "B", "MiB", "1.5MiB", "32mib", "32mb", "32Mi", "32 MiB", " 32MiB", "-1", "-1KiB",
        "1TiB", "1TB", "0x10", "lots", "_1KiB", "1_KiB", "1_", "３２MiB",
    ])
    func aSizeWithAnUnknownUnitOrGarbageIsRefused(text: String) {
        #expect(Units.size(text) == nil)
    }

    @Test(arguments: ["8589934592GiB", "9223372036854775807KiB", "9007199254740993MB", "9223372036854775808"])
    func aSizeThatOverflowsIsRefusedNotWrapped(text: String) {
        #expect(Units.size(text) == nil)
    }

    // MARK: Integers

    @Test(arguments: [
        ("0", UInt64(0)),
        ("7", 7),
        ("007", 7),
        ("50_000_000", 50_000_000),
        ("1_0", 10),
        ("1__0", 10),
        ("9223372036854775807", UInt64(Int64.max)),
    ])
    func anIntegerMayGroupItsDigitsWithUnderscores(text: String, expected: UInt64) {
        #expect(Units.integer(text) == expected)
    }

    @Test(arguments: ["_", "_1", "_1000", "1_", "1_000_", "1000_"])
    func anUnderscoreMayNotStartOrEndAnInteger(text: String) {
        #expect(Units.integer(text) == nil)
    }

    @Test(arguments: [
        "", "-1", "+1", " 1", "1 ", "1.0", "1e3", "0x10", "0b1", "0o7", "1,000", "1 000", "one",
        "１", "٣", "1٣",
    ])
    func anythingButPlainDecimalDigitsIsNotAnInteger(text: String) {
        #expect(Units.integer(text) == nil)
    }

    @Test(arguments: ["9223372036854775808", "18446744073709551615", "18446744073709551616", "99999999999999999999999"])
    func anIntegerAboveInt64MaxIsRefused(text: String) {
        #expect(Units.integer(text) == nil)
    }

    // MARK: Duration ranges

    @Test(arguments: [
        ("100ms..5s", Duration.milliseconds(100), Duration.seconds(5)),
        ("1s..1s", .seconds(1), .seconds(1)),
        ("1.5s..2m", .milliseconds(1500), .seconds(120)),
        ("0s..1h", .zero, .seconds(3600)),
        ("500us..1ms", .microseconds(500), .milliseconds(1)),
    ])
    func aRangeIsTwoDurationsLowestFirst(text: String, low: Duration, high: Duration) throws {
        let range = try #require(Units.durationRange(text))
        #expect(range.0 == low)
        #expect(range.1 == high)
    }

    @Test(arguments: [
        "5s..1s", "1m..59s", "1s", "1s..", "..1s", "..", "", "1s..2s..3s", "1s....2s", "1s-2s", "1s…2s",
        "1s .. 2s", "1..2s", "fast..slow",
    ])
    func aRangeThatIsReversedIncompleteOrNotDurationsIsRefused(text: String) {
        #expect(Units.durationRange(text) == nil)
    }

    @Test func aRangeWithThreeDotsIsRefusedRatherThanReadAsAFraction() {
        // "100ms...5s" splits into "100ms" and ".5s"; a duration must start with a digit, so the
        // typo is refused instead of becoming the range 100ms..500ms.
        #expect(Units.durationRange("100ms...5s") == nil)
        #expect(Units.durationRange("1ms...5s") == nil)
    }
}
