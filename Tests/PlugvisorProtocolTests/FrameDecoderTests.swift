import PlugvisorProtocol
import Testing

@Suite struct FrameDecoderTests {
    @Test func aWholeFrameComesOutAsItsBody() throws {
        var decoder = FrameDecoder()
        decoder.append(Framing.frame(Array("{\"a\":1}".utf8)))
        #expect(try decoder.nextFrame() == Array("{\"a\":1}".utf8))
        #expect(try decoder.nextFrame() == nil)
        #expect(decoder.bufferedByteCount == 0)
    }

    @Test func theHeaderIsFourBytesBigEndian() {
        let bytes = Framing.frame([UInt8](repeating: 7, count: 0x0102_03))
        #expect(Array(bytes.prefix(4)) == [0x00, 0x01, 0x02, 0x03])
    }

    @Test func framesSplitAtEveryByteAreReassembled() throws {
        let stream = Framing.frame(Array("first".utf8)) + Framing.frame([]) + Framing.frame(Array("third".utf8))
        var decoder = FrameDecoder()
        var frames: [[UInt8]] = []
        for byte in stream {
            decoder.append([byte])
            while let frame = try decoder.nextFrame() { frames.append(frame) }
        }
        #expect(frames == [Array("first".utf8), [], Array("third".utf8)])
        try decoder.finish()
    }

    @Test func anOversizeHeaderIsRejectedBeforeItsBodyArrives() {
        var decoder = FrameDecoder(maxFrameLength: 1024)
        decoder.append([0x00, 0x00, 0x04, 0x01])  // announces 1025 bytes, sends none
        #expect(throws: FramingError(.oversize(announced: 1025, limit: 1024))) { try decoder.nextFrame() }
    }

    @Test func aFrameAtExactlyTheCeilingIsAccepted() throws {
        var decoder = FrameDecoder(maxFrameLength: 16)
        decoder.append(Framing.frame([UInt8](repeating: 1, count: 16)))
        #expect(try decoder.nextFrame()?.count == 16)
    }

    @Test func endOfStreamInsideAFrameIsReportedAsTruncated() {
        var decoder = FrameDecoder()
        decoder.append(Array(Framing.frame(Array("hello".utf8)).dropLast(2)))
        #expect(throws: FramingError(.truncated(missing: 2))) { try decoder.finish() }
    }

    @Test func endOfStreamInsideAHeaderIsReportedAsTruncated() {
        var decoder = FrameDecoder()
        decoder.append([0, 0])
        #expect(throws: FramingError(.truncated(missing: 2))) { try decoder.finish() }
    }

    @Test func aLowerLimitForTheNextFrameRefusesItFromItsHeader() {
        var decoder = FrameDecoder(maxFrameLength: 1 << 20)
        decoder.limit = 16
        decoder.append([0x00, 0x00, 0x00, 0x11])
        #expect(throws: FramingError(.oversize(announced: 17, limit: 16))) { try decoder.nextFrame() }
    }

    @Test func aLargeFrameComesOutWholeAndItsBufferIsNotKept() throws {
        var decoder = FrameDecoder()
        let big = [UInt8](repeating: 3, count: 1 << 20)
        let stream = Framing.frame(big) + Framing.frame(Array("next".utf8))
        for piece in stride(from: 0, to: stream.count, by: 65536) {
            decoder.append(stream[piece..<min(piece + 65536, stream.count)])
        }
        #expect(try decoder.nextFrame() == big)
        #expect(try decoder.nextFrame() == Array("next".utf8))
        #expect(decoder.bufferedByteCount == 0)
        decoder.append(Framing.frame(big))
        #expect(try decoder.nextFrame() == big, "handed over without a copy")
        #expect(decoder.bufferedByteCount == 0)
    }
}
