/// Length-prefixed framing shared by every plugvisor connection (DESIGN §3).
///
/// A frame is a 4-byte big-endian length `N`, then `N` bytes of UTF-8 JSON. The length has a
/// ceiling: a peer announcing more is a protocol violation, detected before any of it is buffered.
public enum Framing {
    /// The default ceiling on one frame's body, 16 MiB.
    public static let defaultMaxFrameLength = 16 * 1024 * 1024
    public static let headerLength = 4

    /// Prefixes `body` with its length.
    public static func frame(_ body: [UInt8]) -> [UInt8] {
        var bytes = [UInt8]()
        bytes.reserveCapacity(headerLength + body.count)
        appendHeader(length: body.count, to: &bytes)
        bytes.append(contentsOf: body)
        return bytes
    }

    public static func appendHeader(length: Int, to bytes: inout [UInt8]) {
        precondition(length >= 0 && length <= Int(UInt32.max), "frame length out of range")
        let n = UInt32(length)
        bytes.append(UInt8(truncatingIfNeeded: n >> 24))
        bytes.append(UInt8(truncatingIfNeeded: n >> 16))
        bytes.append(UInt8(truncatingIfNeeded: n >> 8))
        bytes.append(UInt8(truncatingIfNeeded: n))
    }
}

/// Why a peer's bytes could not be read as frames. Either way the connection is unusable.
public struct FramingError: Error, Equatable, CustomStringConvertible {
    public enum Kind: Equatable, Sendable {
        case oversize(announced: Int, limit: Int)
        case truncated(missing: Int)
    }
    public let kind: Kind
    public init(_ kind: Kind) { self.kind = kind }

    public var description: String {
        switch kind {
        case let .oversize(announced, limit):
            return "frame of \(announced) bytes exceeds the \(limit)-byte limit"
        case let .truncated(missing):
            return "connection closed in the middle of a frame (\(missing) bytes missing)"
        }
    }
}

/// Incremental frame decoder: feed it whatever `read` returned, take out complete frames.
///
/// It never buffers more than one frame's worth (header + ceiling), whatever the peer sends, and
/// gives a large frame's memory back once it is taken out (a burst of big frames must not leave
/// each connection holding its largest one).
public struct FrameDecoder: Sendable {
    public let maxFrameLength: Int
    /// The ceiling for the next frame, at most `maxFrameLength`: a peer's state can call for a
    /// lower one (a worker between calls may send nothing at all), refused from its header.
    public var limit: Int
    private var buffer: [UInt8] = []
    private var consumed = 0

    /// Buffers up to this size are kept for the next frames; larger ones are freed once drained.
    static let retainedCapacity = 256 * 1024

    public init(maxFrameLength: Int = Framing.defaultMaxFrameLength) {
        self.maxFrameLength = maxFrameLength
        limit = maxFrameLength
    }

    /// Bytes received but not yet returned as frames.
    public var bufferedByteCount: Int { buffer.count - consumed }

    public mutating func append<C: Collection>(_ bytes: C) where C.Element == UInt8 {
        compactIfWorthwhile()
        // A large frame's buffer is allocated once at its final size, not doubled up to it.
        if bufferedByteCount >= Framing.headerLength, let length = try? announcedLength() {
            buffer.reserveCapacity(consumed + Framing.headerLength + length)
        }
        buffer.append(contentsOf: bytes)
    }

    /// The next complete frame body, or nil when more bytes are needed.
    /// - Throws: `FramingError.oversize` as soon as a header announces more than `limit`.
    public mutating func nextFrame() throws(FramingError) -> [UInt8]? {
        guard bufferedByteCount >= Framing.headerLength else { return nil }
        let length = try announcedLength()
        guard bufferedByteCount >= Framing.headerLength + length else { return nil }
        let start = consumed + Framing.headerLength
        if consumed == 0 && buffer.count == start + length && buffer.capacity > Self.retainedCapacity {
            // The buffer holds exactly this frame: hand it over rather than copy it.
            var body = buffer
            buffer = []
            body.removeFirst(Framing.headerLength)
            return body
        }
        let body = Array(buffer[start..<start + length])
        consumed = start + length
        if consumed == buffer.count { releaseDrainedBuffer() }
        return body
    }

    /// Call at end of stream: throws if a partial frame was left behind.
    public func finish() throws(FramingError) {
        if bufferedByteCount > 0 {
            let missing =
                bufferedByteCount < Framing.headerLength
                ? Framing.headerLength - bufferedByteCount
                : Framing.headerLength + ((try? announcedLength()) ?? 0) - bufferedByteCount
            throw FramingError(.truncated(missing: max(missing, 1)))
        }
    }

    private func announcedLength() throws(FramingError) -> Int {
        let b = buffer[consumed..<consumed + 4]
        let length = b.reduce(0) { ($0 << 8) | Int($1) }
        let ceiling = min(limit, maxFrameLength)
        if length > ceiling {
            throw FramingError(.oversize(announced: length, limit: ceiling))
        }
        return length
    }

    private mutating func releaseDrainedBuffer() {
        if buffer.capacity > Self.retainedCapacity { buffer = [] } else { buffer.removeAll(keepingCapacity: true) }
        consumed = 0
    }

    private mutating func compactIfWorthwhile() {
        if consumed > 0 && consumed == buffer.count {
            releaseDrainedBuffer()
        } else if consumed >= 64 * 1024 {
            buffer.removeFirst(consumed)
            consumed = 0
        }
    }
}
