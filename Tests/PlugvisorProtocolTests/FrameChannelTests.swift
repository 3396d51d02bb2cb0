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

    @Test func writingToAClosedPeerIsAnErrorNotSIGPIPE() throws {
        let (a, b) = try Descriptors.socketPair()
        b.close()
        #expect(throws: ChannelError.closed) { try FrameChannel(descriptor: a).sendFrame([1, 2, 3]) }
    }

    @Test func framesTravelOverPipesToo() throws {
        let (readEnd, writeEnd) = try Descriptors.pipe()
        try FrameChannel(descriptor: writeEnd).send(LogLine(level: "info", message: "over a pipe"))
        #expect(try FrameChannel(descriptor: readEnd).receive(LogLine.self).message == "over a pipe")
    }
}
