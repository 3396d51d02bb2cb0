import Foundation
import Glibc
import PlugvisorPosix
import PlugvisorProtocol
import Testing

/// FrameChannel over real socketpairs and pipes: partial reads and writes, deadlines, hostile peers.
@Suite struct FrameChannelTests {
    @Test func aFrameLargerThanTheSocketBufferArrivesWhole() throws {
        let (a, b) = try Descriptors.socketPair()
        let sender = FrameChannel(descriptor: a)
        let receiver = FrameChannel(descriptor: b)
        let body = (0..<(6 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        // The writer blocks until the reader drains: they must run on different threads.
        let thread = Thread { try? sender.sendFrame(body) }
        thread.start()
        #expect(try receiver.receiveFrame(deadline: .now + .seconds(10)) == body)
    }

    @Test func aDeadlineWithNoFrameTimesOut() throws {
        let (a, b) = try Descriptors.socketPair()
        let receiver = FrameChannel(descriptor: b)
        let started = ContinuousClock.now
        #expect(throws: ChannelError.timedOut) { try receiver.receiveFrame(deadline: .now + .milliseconds(100)) }
        #expect(ContinuousClock.now - started >= .milliseconds(100))
        withExtendedLifetime(a) {}  // the peer stays open: silence, not a hang-up
    }

    @Test func aPeerThatHangsUpBetweenFramesIsClosed() throws {
        let (a, b) = try Descriptors.socketPair()
        try FrameChannel(descriptor: a).send(WorkerMessage.hello(Hello(pid: 1)))
        a.close()
        let receiver = FrameChannel(descriptor: b)
        #expect(try receiver.receive(WorkerMessage.self) == .hello(Hello(pid: 1)))
        #expect(throws: ChannelError.closed) { try receiver.receiveFrame() }
    }

    @Test func aPeerThatHangsUpInsideAFrameIsTruncated() throws {
        let (a, b) = try Descriptors.socketPair()
        try FrameChannel(descriptor: a).writeAll([0, 0, 0, 100, 1, 2, 3])
        a.close()
        #expect(throws: ChannelError.framing(FramingError(.truncated(missing: 97)))) {
            try FrameChannel(descriptor: b).receiveFrame()
        }
    }

    @Test func anOversizeAnnouncementIsRefusedWithoutReadingTheBody() throws {
        let (a, b) = try Descriptors.socketPair()
        try FrameChannel(descriptor: a).writeAll([0xFF, 0xFF, 0xFF, 0xFF])
        let receiver = FrameChannel(descriptor: b, maxFrameLength: 1 << 20)
        #expect(throws: ChannelError.framing(FramingError(.oversize(announced: 0xFFFF_FFFF, limit: 1 << 20)))) {
            try receiver.receiveFrame(deadline: .now + .seconds(1))
        }
    }

    @Test func garbageJSONIsMalformedNotACrash() throws {
        let (a, b) = try Descriptors.socketPair()
        try FrameChannel(descriptor: a).sendFrame(Array("{not json".utf8))
        #expect {
            try FrameChannel(descriptor: b).receive(WorkerMessage.self, deadline: .now + .seconds(1))
        } throws: { error in
            if case ChannelError.malformed = error { return true }
            return false
        }
    }

    @Test func aSendToAPeerThatStopsReadingEndsAtItsDeadline() throws {
        let (a, b) = try Descriptors.socketPair()
        let sender = FrameChannel(descriptor: a)
        let started = ContinuousClock.now
        // More than the socket buffers hold, and nobody reads.
        #expect(throws: ChannelError.timedOut) {
            try sender.sendFrame([UInt8](repeating: 7, count: 8 << 20), deadline: .now + .milliseconds(200))
        }
        #expect(ContinuousClock.now - started < .seconds(2))
        withExtendedLifetime(b) {}
    }

    @Test func framesThatKeepComingDoNotOutliveTheDeadline() throws {
        let (a, b) = try Descriptors.socketPair()
        let sender = FrameChannel(descriptor: a)
        for _ in 0..<10 { try sender.sendFrame(Array("{}".utf8)) }
        let receiver = FrameChannel(descriptor: b)
        let deadline = ContinuousClock.now + .milliseconds(50)
        #expect(try receiver.receiveFrame(deadline: deadline) == Array("{}".utf8))
        Thread.sleep(forTimeInterval: 0.1)
        // Frames are buffered and waiting, but the deadline has passed.
        #expect(throws: ChannelError.timedOut) { try receiver.receiveFrame(deadline: deadline) }
    }

    @Test func aFrameOverThisReceivesLimitIsRefusedFromItsHeader() throws {
        let (a, b) = try Descriptors.socketPair()
        try FrameChannel(descriptor: a).writeAll([0, 0, 4, 1])  // 1025 bytes announced, none sent
        let receiver = FrameChannel(descriptor: b)
        #expect(throws: ChannelError.framing(FramingError(.oversize(announced: 1025, limit: 1024)))) {
            try receiver.receiveFrame(deadline: .now + .seconds(1), limit: 1024)
        }
    }

    @Test func unexpectedInputTellsSilenceFromBytesFromAHangUp() throws {
        let (a, b) = try Descriptors.socketPair()
        let watched = FrameChannel(descriptor: b)
        #expect(watched.unexpectedInput() == nil)
        try FrameChannel(descriptor: a).sendFrame(Array("{}".utf8))
        #expect(watched.unexpectedInput() == .bytes)
        #expect(watched.unexpectedInput() == .bytes, "a peek, not a read")
        _ = try watched.receiveFrame()
        #expect(watched.unexpectedInput() == nil)
        a.close()
        #expect(watched.unexpectedInput() == .closed)
    }

    @Test func writingToAClosedPeerIsAnErrorNotSIGPIPE() throws {
        let (a, b) = try Descriptors.socketPair()
        b.close()
        #expect(throws: ChannelError.closed) { try FrameChannel(descriptor: a).sendFrame([1, 2, 3]) }
    }

    @Test func aSignalInterruptingABlockedReadIsRetried() throws {
        // A handler without SA_RESTART makes the blocked read fail with EINTR.
        var action = sigaction()
        action.__sigaction_handler.sa_handler = { _ in }
        action.sa_flags = 0
        sigemptyset(&action.sa_mask)
        var previous = sigaction()
        sigaction(SIGUSR2, &action, &previous)
        defer { sigaction(SIGUSR2, &previous, nil) }

        let (a, b) = try Descriptors.socketPair()
        let receiver = FrameChannel(descriptor: b)
        let outcome = ThreadOutcome()
        let thread = Thread {
            // Threads started from test threads may inherit a mask that blocks the signal.
            var unblock = sigset_t()
            sigemptyset(&unblock)
            sigaddset(&unblock, SIGUSR2)
            pthread_sigmask(SIG_UNBLOCK, &unblock, nil)
            outcome.setThread(pthread_self())
            outcome.set(Result { try receiver.receive(LogLine.self) })
        }
        thread.start()
        let reader = outcome.waitForThread()
        Thread.sleep(forTimeInterval: 0.1)  // let it block in read()
        for _ in 0..<3 {
            pthread_kill(reader, SIGUSR2)
            Thread.sleep(forTimeInterval: 0.02)
        }
        try FrameChannel(descriptor: a).send(LogLine(level: "info", message: "after the signals"))
        #expect(try outcome.wait().get().message == "after the signals")
    }

    /// One channel serves both directions at once (the broker's shape): callers send on it from
    /// several threads while the peer answers and one reader receives. Frames larger than the
    /// socket buffer are written in pieces, so without the send lock pieces of two frames
    /// interleave and the peer reads garbage lengths.
    @Test func oneChannelSendsFromManyThreadsWhileItReceives() throws {
        let (a, b) = try Descriptors.socketPair()
        let shared = FrameChannel(descriptor: a)
        let peer = FrameChannel(descriptor: b)
        let senders = 4
        let framesEach = 8
        let frameBytes = 512 << 10
        // The peer echoes each frame's first byte back as a one-byte frame.
        let echo = Thread {
            while let frame = try? peer.receiveFrame(deadline: .now + .seconds(30)) {
                let whole = frame.count == frameBytes && frame.allSatisfy { $0 == frame[0] }
                try? peer.sendFrame([whole ? frame[0] : 0xFF])
            }
        }
        echo.start()
        for sender in 0..<senders {
            let thread = Thread {
                for _ in 0..<framesEach {
                    try? shared.sendFrame([UInt8](repeating: UInt8(sender + 1), count: frameBytes))
                }
            }
            thread.start()
        }
        var answers: [UInt8] = []
        while answers.count < senders * framesEach, let answer = try? shared.receiveFrame(deadline: .now + .seconds(30))
        {
            answers += answer
        }
        #expect(answers.count == senders * framesEach)
        #expect(!answers.contains(0xFF), "a frame arrived interleaved with another")
        for sender in 0..<senders { #expect(answers.filter { $0 == UInt8(sender + 1) }.count == framesEach) }
    }

    @Test func framesTravelOverPipesToo() throws {
        let (readEnd, writeEnd) = try Descriptors.pipe()
        try FrameChannel(descriptor: writeEnd).send(LogLine(level: "info", message: "over a pipe"))
        #expect(try FrameChannel(descriptor: readEnd).receive(LogLine.self).message == "over a pipe")
    }
}

final class ThreadOutcome: @unchecked Sendable {
    // SAFETY: guarded by the condition.
    private let condition = NSCondition()
    private var thread: pthread_t?
    private var result: Result<LogLine, Error>?

    func setThread(_ id: pthread_t) {
        condition.lock()
        thread = id
        condition.broadcast()
        condition.unlock()
    }

    func waitForThread() -> pthread_t {
        condition.lock()
        defer { condition.unlock() }
        while thread == nil { condition.wait() }
        return thread!
    }

    func set(_ value: Result<LogLine, Error>) {
        condition.lock()
        result = value
        condition.broadcast()
        condition.unlock()
    }

    func wait() -> Result<LogLine, Error> {
        condition.lock()
        defer { condition.unlock() }
        while result == nil { condition.wait() }
        return result!
    }
}
