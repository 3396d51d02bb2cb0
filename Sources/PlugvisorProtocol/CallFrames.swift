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
        frame += #"{"fn":"execute","id":"#.utf8
        frame += String(id).utf8
        frame += #","payload":"#.utf8
        try JSONWriter.write(context, into: &frame)
        frame += #","type":"call"}"#.utf8
        return sealed(frame)
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

    /// Room for the length, written once the body is.
    private static func header() -> [UInt8] { [0, 0, 0, 0] }

    private static func sealed(_ frame: [UInt8]) -> [UInt8] {
        var frame = frame
        var length: [UInt8] = []
        Framing.appendHeader(length: frame.count - Framing.headerLength, to: &length)
        frame.replaceSubrange(0..<Framing.headerLength, with: length)
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
