/// The two messages every call carries, `call` and `result`, written and read by hand: Codable's
/// generic containers cost more CPU than the rest of a no-op call's user code together (RATIONALE,
/// "Why are a call's frames written and read by hand?"). The JSON inside (a call's context, a
/// guest's answer) is written once and spliced in as bytes. The Codable conformances stay, for
/// tests and tools; `CallFrameTests` holds both to the same bytes.
public enum CallFrame {
    /// The framed `call` message, header included:
    /// `{"fn":"execute","id":ID,"payload":CONTEXT,"type":"call"}` with `context` written once.
    /// - Throws: `EncodingError` for a number JSON cannot spell (NaN, infinity) in `context`.
    public static func call(id: UInt64, context: JSONValue) throws -> [UInt8] {
        var frame = header()
        frame.reserveCapacity(256)  // a small context's frame grows without copying
        frame += callOpening
        frame += String(id).utf8
        frame += callContextKey
        try JSONWriter.write(context, into: &frame)
        frame += callClosing
        return sealed(frame)
    }

    /// A call frame's fixed parts, around its id and its context: written by `call`, found by
    /// `parsedCall`.
    private static let callOpening = Array(#"{"fn":"execute","id":"#.utf8)
    private static let callContextKey = Array(#","payload":"#.utf8)
    private static let callClosing = Array(#","type":"call"}"#.utf8)

    /// The id and the context's bytes of a `call` frame's body as `call(id:context:)` writes it,
    /// found by its fixed parts without parsing the context (the worker hands it to the guest as
    /// it is). `nil` for a body of any other form, which is read the general way. Only the
    /// supervisor writes call frames, and it writes the context as one JSON value.
    public static func parsedCall(_ body: [UInt8]) -> (id: UInt64, context: Range<Int>)? {
        let idStart = callOpening.count
        guard body.count > idStart + callContextKey.count + callClosing.count, body.starts(with: callOpening),
            body.suffix(callClosing.count).elementsEqual(callClosing),
            let idEnd = body[idStart...].firstIndex(where: { !(UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }),
            let id = UInt64(String(decoding: body[idStart..<idEnd], as: UTF8.self)),
            body[idEnd...].starts(with: callContextKey)
        else { return nil }
        let (contextStart, contextEnd) = (idEnd + callContextKey.count, body.count - callClosing.count)
        return contextStart < contextEnd ? (id, contextStart..<contextEnd) : nil
    }

    /// The framed `result` of a call the guest answered: `answer` is the JSON of a result object
    /// the worker has checked (`GuestAnswer`), spliced in as it is.
    /// `{"id":ID,"payload":ANSWER,"stats":{…},"type":"result"}`
    public static func result(id: UInt64, answer: [UInt8], stats: CallStats) -> [UInt8] {
        var frame = header()
        frame.reserveCapacity(answer.count + 96)
        frame += #"{"id":"#.utf8
        frame += String(id).utf8
        frame += #","payload":"#.utf8
        frame += answer
        frame += #","stats":{"#.utf8
        if let fuelUsed = stats.fuelUsed { frame += #""fuelUsed":\#(fuelUsed),"#.utf8 }
        if let memoryBytes = stats.memoryBytes { frame += #""memoryBytes":\#(memoryBytes),"#.utf8 }
        frame += #""micros":\#(stats.micros)},"type":"result"}"#.utf8
        return sealed(frame)
    }

    /// The `result` a parsed frame holds when it is the answer `result(id:answer:stats:)`
    /// writes, read from the tree without a decoder; `nil` for any other message or form, which
    /// is decoded the general way (and refused there with what is wrong). Where this reads a
    /// result, `JSONCoding.decode` reads the same one (`CallFrameTests`).
    public static func answeredResult(_ tree: JSONValue) -> CallResult? {
        guard case let .object(members) = tree, members["type"] == .string("result"), members["error"] == nil,
            case let .integer(id)? = members["id"], id >= 0, let payload = members["payload"],
            case let .object(stats)? = members["stats"], case let .integer(micros)? = stats["micros"]
        else { return nil }
        var fuelUsed: UInt64?
        if let value = stats["fuelUsed"] {
            guard case let .integer(fuel) = value, fuel >= 0 else { return nil }
            fuelUsed = UInt64(fuel)
        }
        var memoryBytes: Int?
        if let value = stats["memoryBytes"] {
            guard case let .integer(bytes) = value else { return nil }
            memoryBytes = Int(bytes)
        }
        return CallResult(
            id: UInt64(id), payload: payload,
            stats: CallStats(micros: Int(micros), fuelUsed: fuelUsed, memoryBytes: memoryBytes))
    }

    /// Room for the length, written once the body is.
    private static func header() -> [UInt8] { [0, 0, 0, 0] }

    /// Writes the body's length over the room `header()` left, in place.
    private static func sealed(_ frame: consuming [UInt8]) -> [UInt8] {
        var length: [UInt8] = []
        Framing.appendHeader(length: frame.count - Framing.headerLength, to: &length)
        for index in 0..<Framing.headerLength { frame[index] = length[index] }
        return frame
    }
}

/// A decoder for hand-written `init(from:)`: ours as it is, any other through a tree.
private func treeDecoder(_ decoder: Decoder) throws -> JSONValueDecoder {
    if let decoder = decoder as? JSONValueDecoder { return decoder }
    return JSONValueDecoder(try JSONValue(from: decoder))
}

extension CallRequest {
    public init(from decoder: Decoder) throws {
        let d = try treeDecoder(decoder)
        id = try d.member("id").decode(UInt64.self)
        fn = try d.member("fn").decode(Function.self)
        payload = try d.optionalMember("payload")?.value
    }
}

extension CallStats {
    public init(from decoder: Decoder) throws {
        let d = try treeDecoder(decoder)
        micros = try d.member("micros").decode(Int.self)
        fuelUsed = try d.optionalMember("fuelUsed")?.decode(UInt64.self)
        memoryBytes = try d.optionalMember("memoryBytes")?.decode(Int.self)
    }
}

extension CallResult {
    public init(from decoder: Decoder) throws {
        let d = try treeDecoder(decoder)
        id = try d.member("id").decode(UInt64.self)
        payload = try d.optionalMember("payload")?.value
        error = try d.optionalMember("error")?.decode(PluginError.self)
        stats = try d.optionalMember("stats")?.decode(CallStats.self)
    }
}
