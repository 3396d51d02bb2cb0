extension Sequence where Element == Int {
    /// The sum, stopping at `Int.max` (or `Int.min`) instead of trapping: for totals of values
    /// that a worker or the system reported.
    public func saturatingSum() -> Int {
        reduce(0) { total, value in
            let (sum, overflow) = total.addingReportingOverflow(value)
            return overflow ? (value > 0 ? .max : .min) : sum
        }
    }
}
