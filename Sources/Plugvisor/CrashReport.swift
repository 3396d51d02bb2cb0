import Foundation
import PlugvisorPosix
import PlugvisorProtocol

/// What to tell a caller whose call died with a process: how it ended, the syscall the sandbox
/// refused when it died of SIGSYS, and its last stderr lines. A value, computed from what the
/// process's monitor collected, so that every reading of one death says the same.
struct CrashReport: Sendable, Equatable, CustomStringConvertible {
    /// How the process ended; nil while it has not been reaped.
    var exit: ProcessExit?
    /// Why the supervisor killed it, if it did: this wins over the exit status, which is then
    /// only our own SIGKILL.
    var killReason: PluginError.Code?
    /// Its last stderr lines, oldest first, without Swift stack frames (`StderrTail`).
    var stderrTail: [String]

    /// How many of the last stderr lines a report quotes.
    static let quotedLines = 5

    /// What the worker's SIGSYS reporter writes before it dies (CPlugvisorSandbox).
    static let seccompMarker = "seccomp refused syscall "

    /// The syscall the sandbox refused, when the process died of SIGSYS and said which.
    var refusedSyscall: String? {
        guard exit == .signalled(SIGSYS), let line = stderrTail.last(where: { $0.contains(Self.seccompMarker) }) else {
            return nil
        }
        return line.components(separatedBy: Self.seccompMarker).last ?? line
    }

    /// The stderr lines a report quotes: the last few, the seccomp reporter's aside.
    var quotedStderr: [String] {
        Array(stderrTail.filter { !$0.contains(Self.seccompMarker) }.suffix(Self.quotedLines))
    }

    /// Reads after the process's name: "worker 42 " + this.
    var description: String {
        var text: String
        switch (exit, killReason) {
        case (_, let reason?): text = "was killed by the supervisor (\(reason))"
        case (let exit?, nil): text = "\(exit)"
        case (nil, nil): text = "stopped answering"
        }
        if let refusedSyscall { text += ": the sandbox refused syscall \(refusedSyscall)" }
        let quoted = quotedStderr
        if !quoted.isEmpty { text += "; last stderr: " + quoted.joined(separator: " | ") }
        return text
    }

    /// A line of the stack dump the Swift runtime writes after a fatal error ("Current stack
    /// trace:", then "0  0x… symbol + offset" lines): the error is worth keeping, the frames not.
    static func isStackFrame(_ line: String) -> Bool {
        if line == "Current stack trace:" { return true }
        let fields = line.split(separator: " ", maxSplits: 3, omittingEmptySubsequences: true)
        return fields.count >= 3 && fields[0].allSatisfy(\.isNumber) && fields[2].hasPrefix("0x")
    }
}

/// The last lines a process wrote to stderr, for its crash report: at most `capacity`, without
/// Swift stack frames, each at most `StderrLines.maxLineBytes` long.
struct StderrTail: Sendable, Equatable {
    static let capacity = 20
    private(set) var lines: [String] = []

    mutating func record(_ line: String) {
        guard !CrashReport.isStackFrame(line) else { return }
        lines.append(line)
        if lines.count > Self.capacity { lines.removeFirst() }
    }
}

/// Cuts a stream of stderr bytes into lines. A line longer than `maxLineBytes` is cut rather
/// than buffered without bound: a process that never writes a newline costs 4 KiB, not memory.
struct StderrLines: Sendable {
    static let maxLineBytes = 4096
    private var pending: [UInt8] = []

    /// The whole lines `bytes` completes (and any over-long one, cut).
    mutating func append(_ bytes: ArraySlice<UInt8>) -> [String] {
        pending.append(contentsOf: bytes)
        var lines: [String] = []
        while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
            lines.append(Self.line(pending[..<newline]))
            pending.removeSubrange(...newline)
        }
        if pending.count > Self.maxLineBytes {
            lines.append(Self.line(pending[...]))
            pending.removeAll(keepingCapacity: true)
        }
        return lines
    }

    /// What is left at end of file: the last line, when it had no newline.
    mutating func finish() -> String? {
        defer { pending.removeAll() }
        return pending.isEmpty ? nil : Self.line(pending[...])
    }

    private static func line(_ bytes: ArraySlice<UInt8>) -> String {
        String(decoding: bytes.prefix(maxLineBytes), as: UTF8.self)
    }
}
