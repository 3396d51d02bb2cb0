import Glibc
import PlugvisorPosix
import PlugvisorProtocol
import Testing

@testable import Plugvisor

/// What a caller is told when its call dies with a worker, from what the monitor collected.
@Suite struct CrashReportTests {
    @Test func anExitSaysHowTheProcessEnded() {
        #expect("\(CrashReport(exit: .exited(code: 3), killReason: nil, stderrTail: []))" == "exited with code 3")
        #expect("\(CrashReport(exit: .signalled(SIGSEGV), killReason: nil, stderrTail: []))" == "killed by SIGSEGV")
        #expect("\(CrashReport(exit: .signalled(64), killReason: nil, stderrTail: []))" == "killed by signal 64")
        #expect("\(CrashReport(exit: nil, killReason: nil, stderrTail: []))" == "stopped answering")
    }

    @Test func theSupervisorsReasonWinsOverItsOwnSIGKILL() {
        let report = CrashReport(exit: .signalled(SIGKILL), killReason: .timeout, stderrTail: [])
        #expect("\(report)" == "was killed by the supervisor (timeout)")
        let unreaped = CrashReport(exit: nil, killReason: .protocolViolation, stderrTail: [])
        #expect("\(unreaped)" == "was killed by the supervisor (protocol_violation)")
    }

    @Test func aSeccompDeathNamesTheRefusedSyscallOnceAndQuotesTheRest() {
        let tail = ["loading", "seccomp refused syscall socket (41)", "after"]
        let report = CrashReport(exit: .signalled(SIGSYS), killReason: nil, stderrTail: tail)
        #expect(report.refusedSyscall == "socket (41)")
        #expect(
            "\(report)" == "killed by SIGSYS: the sandbox refused syscall socket (41); last stderr: loading | after")
    }

    @Test func theMarkerCountsOnlyForASIGSYSDeath() {
        // A guest can print the marker itself; only the kernel's SIGSYS makes it true.
        let report = CrashReport(exit: .exited(code: 1), killReason: nil, stderrTail: ["seccomp refused syscall fake"])
        #expect(report.refusedSyscall == nil)
        #expect("\(report)" == "exited with code 1")
    }

    @Test func onlyTheLastFiveStderrLinesAreQuoted() {
        let tail = (1...8).map { "line \($0)" }
        let report = CrashReport(exit: .exited(code: 70), killReason: nil, stderrTail: tail)
        #expect(report.quotedStderr == ["line 4", "line 5", "line 6", "line 7", "line 8"])
        #expect("\(report)".hasSuffix("; last stderr: line 4 | line 5 | line 6 | line 7 | line 8"))
    }

    @Test func swiftStackFramesAreRecognised() {
        #expect(CrashReport.isStackFrame("Current stack trace:"))
        #expect(CrashReport.isStackFrame("0    libswiftCore.so   0x00007f3c2d4e1234 swift_reportError + 50"))
        #expect(CrashReport.isStackFrame("12 plugvisor-worker 0x0000555555555555 main + 10"))
        #expect(!CrashReport.isStackFrame("Fatal error: Index out of range"))
        #expect(!CrashReport.isStackFrame("3 apples deadbeef"))
        #expect(!CrashReport.isStackFrame("guest said 0x1 twice"))
        #expect(!CrashReport.isStackFrame(""))
    }

    @Test func theTailKeepsTheErrorAndDropsTheFrames() {
        var tail = StderrTail()
        for line in ["Fatal error: boom", "Current stack trace:", "0 libswiftCore.so 0x0000 f + 1", "1 w 0x0001 g + 2"]
        {
            tail.record(line)
        }
        #expect(tail.lines == ["Fatal error: boom"])
    }

    @Test func theTailHoldsItsCapacityNewestLast() {
        var tail = StderrTail()
        for n in 1...(StderrTail.capacity + 5) { tail.record("line \(n)") }
        #expect(tail.lines.count == StderrTail.capacity)
        #expect(tail.lines.first == "line 6")
        #expect(tail.lines.last == "line \(StderrTail.capacity + 5)")
    }

    @Test func stderrBytesBecomeLinesAndALongLineIsCut() {
        var lines = StderrLines()
        #expect(lines.append(Array("one\ntw".utf8)[...]) == ["one"])
        #expect(lines.append(Array("o\nthree".utf8)[...]) == ["two"])
        #expect(lines.finish() == "three")
        #expect(lines.finish() == nil)

        let long = [UInt8](repeating: UInt8(ascii: "x"), count: StderrLines.maxLineBytes + 100)
        let cut = lines.append(long[...])
        #expect(cut == [String(repeating: "x", count: StderrLines.maxLineBytes)])
        #expect(lines.finish() == nil, "the rest of an over-long line is dropped, not buffered")
    }
}
