import PlugvisorProtocol
import Testing

@Suite struct LogBudgetTests {
    @Test func pastItsLinesOrBytesASecondLinesAreDroppedAndCounted() {
        let t0 = ContinuousClock.now
        var budget = LogBudget(linesPerSecond: 2, bytesPerSecond: 100)
        #expect(budget.admit(bytes: 10, now: t0) == .log)
        #expect(budget.admit(bytes: 10, now: t0) == .log)
        #expect(budget.admit(bytes: 10, now: t0) == .drop)  // a third line
        #expect(budget.admit(bytes: 10, now: t0 + .seconds(1)) == .logAfterSummary(dropped: 1))
        #expect(budget.admit(bytes: 95, now: t0 + .seconds(1)) == .drop)  // over 100 bytes
        #expect(budget.takeDropped() == 1)
        #expect(budget.takeDropped() == 0)
    }
}
