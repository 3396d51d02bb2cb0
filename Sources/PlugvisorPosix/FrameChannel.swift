import Glibc
import PlugvisorProtocol

/// Why a channel stopped yielding frames.
public enum ChannelError: Error, Equatable, CustomStringConvertible {
    /// The deadline passed before a whole frame arrived.
    case timedOut
    /// The peer closed the connection (cleanly, between frames).
    case closed
    /// The peer's bytes were not valid frames: oversize or cut short.
    case framing(FramingError)
    /// A frame was not the JSON message expected; `detail` says how.
    case malformed(String)
    case system(SystemError)

    public var description: String {
        switch self {
        case .timedOut: return "timed out waiting for a frame"
        case .closed: return "connection closed"
        case let .framing(e): return e.description
        case let .malformed(detail): return "malformed message: \(detail)"
        case let .system(e): return e.description
        }
    }
}

/// Blocking, length-prefixed JSON frames over a stream socket or pipe.
///
/// Full duplex: one thread at a time receives (the supervisor's worker checkout, the broker's
/// reader thread) while any number send, each frame whole under a send lock, so that one
/// channel serves a descriptor both ways and nobody builds a second one on it. Handles partial
/// reads and writes and EINTR; never buffers more than one frame ceiling, whatever the peer sends.
public final class FrameChannel: @unchecked Sendable {
    // SAFETY: sending touches only immutable state and is serialised by `sending`; the receive
    // state (`decoder`, `readBuffer`, `lastFrameLength`, `spin`, `lastSpinFoundInputAtOnce`) belongs to the one thread that
    // receives at a time, and ownership of that role moves between threads, never shared.
    public let descriptor: OwnedDescriptor
    private let sending = Lock()
    private var decoder: FrameDecoder
    private var readBuffer = [UInt8](repeating: 0, count: 64 * 1024)
    private let isSocket: Bool

    /// How long to poll a socket without blocking before going to sleep on it. A small call's
    /// answer usually arrives within microseconds; sleeping and being woken up by another core
    /// costs tens of them (DESIGN §8), so a short spin halves a no-op round trip. The spin
    /// yields the CPU between polls, so that a peer on the same core gets to answer.
    public var spin: Duration

    /// Whether the last spin that looked before yielding found input (`spinRead`).
    private var lastSpinFoundInputAtOnce = true
    /// Spins that yielded first since one last looked first.
    private var spinsYieldingFirst = 0

    /// The body length of the last frame received, for ceilings that depend on its kind.
    public private(set) var lastFrameLength = 0

    public init(
        descriptor: OwnedDescriptor, maxFrameLength: Int = Framing.defaultMaxFrameLength, spin: Duration = .zero
    ) {
        self.descriptor = descriptor
        self.decoder = FrameDecoder(maxFrameLength: maxFrameLength)
        self.spin = spin
        var type: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        isSocket = getsockopt(descriptor.rawValue, SOL_SOCKET, SO_TYPE, &type, &length) == 0
    }

    // MARK: Sending

    /// Sends one message.
    /// - Parameter deadline: when given, a peer that stops reading cannot hold the sender past
    ///   it: `.timedOut` (the frame may then be partly written, so the channel is unusable).
    public func send<T: Encodable>(_ message: T, deadline: ContinuousClock.Instant? = nil) throws(ChannelError) {
        let body: [UInt8]
        do { body = try JSONCoding.encode(message) } catch {
            throw .malformed("cannot encode \(T.self): \(error)")
        }
        try sendFrame(body, deadline: deadline)
    }

    public func sendFrame(_ body: [UInt8], deadline: ContinuousClock.Instant? = nil) throws(ChannelError) {
        try writeAll(Framing.frame(body), deadline: deadline)
    }

    /// Writes raw bytes (tests use this to send hostile input).
    public func writeAll(_ bytes: [UInt8], deadline: ContinuousClock.Instant? = nil) throws(ChannelError) {
        try sending.withLock { () throws(ChannelError) in try writeWhole(bytes, deadline: deadline) }
    }

    /// Called under `sending`: frames from several threads never interleave.
    private func writeWhole(_ bytes: [UInt8], deadline: ContinuousClock.Instant?) throws(ChannelError) {
        var offset = 0
        // A socket is tried first and polled only once it is full: a small frame into a
        // buffer with room costs one system call, not two.
        var full = !isSocket
        while offset < bytes.count {
            if let deadline, full { try waitUntilReady(for: Int16(POLLOUT), until: deadline) }
            // With a deadline, a socket is written without blocking (a full buffer makes us wait
            // in poll, which knows the deadline); a pipe, in pieces of at most PIPE_BUF, which
            // POLLOUT promises room for.
            let chunk = deadline == nil || isSocket ? bytes.count - offset : min(bytes.count - offset, Int(PIPE_BUF))
            let flags = Int32(MSG_NOSIGNAL) | (deadline == nil ? 0 : Int32(MSG_DONTWAIT))
            let written: Int
            do {
                written = try retryingInterrupts("write") {
                    bytes.withUnsafeBytes { raw in
                        let base = raw.baseAddress! + offset
                        // MSG_NOSIGNAL: a dead peer is an error to report, not a SIGPIPE to die of.
                        return isSocket
                            ? Glibc.send(descriptor.rawValue, base, chunk, flags)
                            : Glibc.write(descriptor.rawValue, base, chunk)
                    }
                }
            } catch {
                if error.errno == EAGAIN || error.errno == EWOULDBLOCK {
                    full = true
                    continue
                }
                if error.errno == EPIPE || error.errno == ECONNRESET { throw .closed }
                throw .system(error)
            }
            offset += written
        }
    }

    // MARK: Receiving

    /// The next message, decoded as `T`; `known` reads the messages it recognises from the
    /// parsed tree first, without a decoder (a call's answer: `CallFrame.answeredResult`).
    /// - Parameter limit: a ceiling for this frame below the channel's (refused from its header).
    /// - Throws: `ChannelError`; `.closed` at a clean end of stream, `.timedOut` past `deadline`.
    public func receive<T: Decodable>(
        _ type: T.Type, deadline: ContinuousClock.Instant? = nil, limit: Int? = nil,
        known: (JSONValue) -> T? = { _ in nil }
    ) throws(ChannelError) -> T {
        try Self.decode(T.self, from: try receiveFrame(deadline: deadline, limit: limit), known: known)
    }

    /// A frame's body (from `receiveFrame`) decoded as `T`, as `receive` does; `.malformed` when
    /// it is not one.
    public static func decode<T: Decodable>(
        _ type: T.Type, from body: [UInt8], known: (JSONValue) -> T? = { _ in nil }
    ) throws(ChannelError) -> T {
        do {
            let tree = try JSONValue(parsing: body, maxDepth: JSONCoding.maxMessageDepth)
            return try known(tree) ?? JSONCoding.decode(T.self, from: tree)
        } catch {
            throw .malformed(describe(error))
        }
    }

    /// The next frame's body. Past `deadline` it is `.timedOut` even when frames keep coming:
    /// a peer that floods cannot keep its reader busy forever.
    public func receiveFrame(
        deadline: ContinuousClock.Instant? = nil, limit: Int? = nil
    ) throws(ChannelError) -> [UInt8] {
        decoder.limit = limit ?? decoder.maxFrameLength
        if let deadline, ContinuousClock.now >= deadline { throw .timedOut }
        var spun = false
        while true {
            do {
                if let frame = try decoder.nextFrame() {
                    lastFrameLength = frame.count
                    return frame
                }
            } catch {
                throw .framing(error)
            }
            if !spun && spin > .zero && isSocket {
                spun = true
                guard let count = try spinRead() else { continue }
                if count == 0 {
                    do { try decoder.finish() } catch { throw .framing(error) }
                    throw .closed
                }
                decoder.append(readBuffer[0..<count])
                continue
            }
            if let deadline { try waitUntilReady(for: Int16(POLLIN), until: deadline) }
            let count: Int
            do {
                count = try retryingInterrupts("read") {
                    readBuffer.withUnsafeMutableBytes { Glibc.read(descriptor.rawValue, $0.baseAddress, $0.count) }
                }
            } catch {
                if error.errno == ECONNRESET { throw .closed }
                throw .system(error)
            }
            if count == 0 {
                do { try decoder.finish() } catch { throw .framing(error) }
                throw .closed
            }
            decoder.append(readBuffer[0..<count])
        }
    }

    /// Non-blocking reads for up to `spin`: the byte count (0 at end of stream), or nil when
    /// nothing came and the caller should block.
    private func spinRead() throws(ChannelError) -> Int? {
        let until = ContinuousClock.now + spin
        // Where answers come back at once (the next call already queued behind the current
        // one), look first; where the last look found nothing yet (a lone caller and its worker,
        // on one core or two), yield first: the look would only find nothing. What a spin that
        // yielded first finds says nothing of whether it had to, so every 17th looks first again.
        let looksFirst = lastSpinFoundInputAtOnce || spinsYieldingFirst >= 16
        spinsYieldingFirst = looksFirst ? 0 : spinsYieldingFirst + 1
        if !looksFirst { sched_yield() }
        var first = true
        repeat {
            let n = readBuffer.withUnsafeMutableBytes {
                recv(descriptor.rawValue, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT))
            }
            if first && looksFirst { lastSpinFoundInputAtOnce = n >= 0 }
            first = false
            if n >= 0 { return n }
            let code = errno
            if code == ECONNRESET { throw .closed }
            if code != EAGAIN && code != EWOULDBLOCK && code != EINTR {
                throw .system(SystemError("recv", errno: code))
            }
            // A peer that shares this core cannot answer while we hold it.
            sched_yield()
        } while ContinuousClock.now < until
        return nil
    }

    /// What is waiting to be read while nobody expects anything: `nil` when nothing is, which is
    /// how an idle peer must be. Never blocks.
    public func unexpectedInput() -> UnexpectedInput? {
        if decoder.bufferedByteCount > 0 { return .bytes }
        if isSocket {
            var byte: UInt8 = 0
            let n = recv(descriptor.rawValue, &byte, 1, Int32(MSG_PEEK | MSG_DONTWAIT))
            if n > 0 { return .bytes }
            if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) { return nil }
            return .closed
        }
        var pfd = pollfd(fd: descriptor.rawValue, events: Int16(POLLIN), revents: 0)
        guard poll(&pfd, 1, 0) > 0 else { return nil }
        return pfd.revents & Int16(POLLIN) != 0 ? .bytes : .closed
    }

    public enum UnexpectedInput: Equatable, Sendable {
        /// The peer sent something nobody asked for.
        case bytes
        /// The peer hung up (or the connection broke).
        case closed
    }

    private func waitUntilReady(for events: Int16, until deadline: ContinuousClock.Instant) throws(ChannelError) {
        while true {
            let remaining = ContinuousClock.now.duration(to: deadline)
            if remaining <= .zero { throw .timedOut }
            let (seconds, attos) = remaining.components
            let millis = Int32(clamping: seconds * 1000 + attos / 1_000_000_000_000_000 + 1)
            var pfd = pollfd(fd: descriptor.rawValue, events: events, revents: 0)
            let ready = poll(&pfd, 1, millis)
            if ready > 0 { return }
            if ready < 0 && errno != EINTR { throw .system(SystemError("poll")) }
        }
    }

    private static func describe(_ error: Error) -> String {
        switch error {
        case let DecodingError.dataCorrupted(context):
            return context.debugDescription + Self.underlying(context.underlyingError)
        case let DecodingError.keyNotFound(key, context):
            return "missing \"\(key.stringValue)\"" + Self.at(context)
        case let DecodingError.typeMismatch(_, context), let DecodingError.valueNotFound(_, context):
            return context.debugDescription + Self.at(context)
        default:
            return "\(error)"
        }
    }

    private static func at(_ context: DecodingError.Context) -> String {
        context.codingPath.isEmpty ? "" : " at " + context.codingPath.map(\.stringValue).joined(separator: ".")
    }

    private static func underlying(_ error: Error?) -> String {
        error.map { ": \($0)" } ?? ""
    }
}
