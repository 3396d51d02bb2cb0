import PlugvisorProtocol
import Testing

@Suite struct SaturatingSumTests {
    @Test func aSumPastIntMaxStopsThere() {
        #expect([Int.max, Int.max, 1].saturatingSum() == .max)
        #expect([1, 2, 3].saturatingSum() == 6)
        #expect([Int].init().saturatingSum() == 0)
    }
}
