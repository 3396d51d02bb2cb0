import Foundation
import PlugvisorPosix
import PlugvisorProtocol
import Testing

/// JSONCoding.decode (parse once, then decode from the tree) gives what JSONDecoder gave for the
/// real message types: the same values, and errors with the same wording and coding paths.
@Suite struct JSONDecodingTests {
    static let workerMessages = [
        #"{"type":"hello","plugvisor":1,"pid":4242}"#,
        #"{"type":"ready","meta":{"name":"x","version":"1.0.0"},"exports":[{"name":"execute","kind":"func","signature":"(i32, i32) -> i64"}],"imports":[],"memoryBytes":65536}"#,
        #"{"type":"load_failed","reason":"missing export: execute"}"#,
        #"{"type":"result","id":7,"payload":{"success":true,"data":[1,2.5,"three",null,1.0,1e3]},"stats":{"micros":12,"fuelUsed":9223372036854775807,"memoryBytes":65536}}"#,
        #"{"type":"result","id":8,"error":{"code":"trap","plugin":"p","message":"unreachable"}}"#,
        #"{"type":"log","level":"info","message":"hi"}"#,
        #"{"type":"host","id":3,"op":"http","request":{"url":"https://example.com/"}}"#,
    ]

    @Test(arguments: workerMessages) func aWorkerMessageDecodesAsJSONDecoderDecodedIt(_ text: String) throws {
        let bytes = Array(text.utf8)
        #expect(
            try JSONCoding.decode(WorkerMessage.self, from: bytes)
                == JSONDecoder().decode(WorkerMessage.self, from: Data(bytes)))
    }

    @Test func theOtherMessagesDecodeAsJSONDecoderDecodedThem() throws {
        func same<T: Decodable & Equatable>(_ type: T.Type, _ text: String) throws {
            let bytes = Array(text.utf8)
            #expect(
                try JSONCoding.decode(type, from: bytes) == JSONDecoder().decode(type, from: Data(bytes)), "\(text)")
        }
        try same(
            SupervisorMessage.self,
            #"{"type":"call","id":1,"fn":"execute","payload":{"parameters":{"n":[1,{"k":null}]}}}"#)
        try same(SupervisorMessage.self, #"{"type":"inspect"}"#)
        try same(SupervisorMessage.self, #"{"type":"host_result","id":2,"result":{"status":200}}"#)
        try same(ControlRequest.self, #"{"op":"call","plugin":"echo","context":{"parameters":{"a":"b"}}}"#)
        try same(ControlRequest.self, #"{"op":"status"}"#)
        try same(ControlResponse.self, #"{"result":{"success":true},"error":null}"#)
        try same(
            ControlResponse.self,
            #"{"status":{"plugins":[{"name":"echo","state":"ready","workers":[{"pid":12,"state":"idle","uptimeSeconds":1.5}],"calls":3,"errors":0,"errorsByCode":{},"restarts":0,"queued":0,"generation":0}]}}"#
        )
        try same(ControlResponse.self, #"{"error":{"code":"unknown_plugin","message":"no plugin named x"}}"#)
        try same(
            BrokerRequest.self, #"{"id":5,"request":{"url":"http://x/"},"allowedHosts":["x"],"timeoutMillis":1000}"#)
        try same(HostResult.self, #"{"id":5,"result":{"status":404,"headers":{}}}"#)
    }

    /// (kind, coding path, description) of a DecodingError: what FrameChannel puts in its message.
    static func shape(_ error: Error) -> String {
        func path(_ context: DecodingError.Context) -> String {
            context.codingPath.map(\.stringValue).joined(separator: ".")
        }
        switch error {
        case let DecodingError.typeMismatch(type, context):
            return "typeMismatch \(type) at \(path(context)): \(context.debugDescription)"
        case let DecodingError.valueNotFound(type, context):
            return "valueNotFound \(type) at \(path(context)): \(context.debugDescription)"
        case let DecodingError.keyNotFound(key, context):
            return "keyNotFound \(key.stringValue) at \(path(context)): \(context.debugDescription)"
        case let DecodingError.dataCorrupted(context):
            return "dataCorrupted at \(path(context)): \(context.debugDescription)"
        default: return "\(error)"
        }
    }

    static let wrongMessages = [
        #"{"type":"shell","command":"rm -rf /"}"#,
        #"{"pid":1}"#,
        #"{"type":"hello","plugvisor":1,"pid":"4242"}"#,
        #"{"type":"hello","plugvisor":1,"pid":null}"#,
        #"{"type":"result","id":1,"error":{"code":7,"message":"x"}}"#,
        #"{"type":"ready","meta":{},"memoryBytes":"1"}"#,
        #"{"type":"ready","meta":{},"exports":[],"imports":[]}"#,
        #"[]"#,
    ]

    @Test(arguments: wrongMessages) func aWrongMessageFailsAsItDidWithJSONDecoder(_ text: String) {
        let bytes = Array(text.utf8)
        var ours = "decoded"
        var theirs = "decoded"
        do { _ = try JSONCoding.decode(WorkerMessage.self, from: bytes) } catch { ours = Self.shape(error) }
        do { _ = try JSONDecoder().decode(WorkerMessage.self, from: Data(bytes)) } catch { theirs = Self.shape(error) }
        #expect(ours == theirs)
        #expect(ours != "decoded")
    }

    /// Where JSONDecoder said only "The given data was not valid JSON.", with no path.
    @Test func aNumberThatDoesNotFitSaysWhereAndWhy() {
        let cases = [
            (
                #"{"type":"hello","plugvisor":1,"pid":1.5}"#,
                "dataCorrupted at pid: Parsed JSON number <1.5> does not fit in Int32."
            ),
            (
                #"{"type":"hello","plugvisor":1,"pid":99999999999}"#,
                "dataCorrupted at pid: Parsed JSON number <99999999999> does not fit in Int32."
            ),
            (#"{"type":"result","id":-1}"#, "dataCorrupted at id: Parsed JSON number <-1> does not fit in UInt64."),
        ]
        for (text, expected) in cases {
            #expect { try JSONCoding.decode(WorkerMessage.self, from: Array(text.utf8)) } throws: {
                Self.shape($0) == expected
            }
        }
    }

    @Test func anIntegerIsNeverRounded() throws {
        let past = Array(#"{"type":"result","id":1,"stats":{"micros":1,"fuelUsed":18446744073709551615}}"#.utf8)
        #expect {
            try JSONCoding.decode(WorkerMessage.self, from: past)
        } throws: { error in
            Self.shape(error)
                == "dataCorrupted at stats.fuelUsed: Parsed JSON number <1.8446744073709552e+19> does not fit in UInt64."
        }
        #expect(throws: DecodingError.self) {
            try JSONCoding.decode(UInt64.self, from: Array("9223372036854775809".utf8))
        }
        #expect(
            try JSONCoding.decode(UInt64.self, from: Array("9223372036854775807".utf8)) == 9_223_372_036_854_775_807)
        #expect(try JSONCoding.decode(Int.self, from: Array("2.0".utf8)) == 2)
    }

    @Test func aControlRequestWithAnUnknownOperationNamesIt() {
        let bytes = Array(#"{"op":"format-disk"}"#.utf8)
        var ours = ""
        var theirs = ""
        do { _ = try JSONCoding.decode(ControlRequest.self, from: bytes) } catch { ours = Self.shape(error) }
        do { _ = try JSONDecoder().decode(ControlRequest.self, from: Data(bytes)) } catch { theirs = Self.shape(error) }
        #expect(ours == theirs)
        #expect(ours.contains("format-disk"))
    }

    @Test func aMessageMayNestAFewEnvelopesAroundAValueAtTheLimit() throws {
        let deep = String(repeating: "[", count: JSONValue.maxDepth) + String(repeating: "]", count: JSONValue.maxDepth)
        let call = #"{"type":"call","id":1,"fn":"execute","payload":{"parameters":{"deep":"# + deep + "}}}"
        #expect(throws: Never.self) { try JSONCoding.decode(SupervisorMessage.self, from: Array(call.utf8)) }
        let tooDeep = String(repeating: "[", count: JSONCoding.maxMessageDepth + 1)
        #expect(throws: JSONParseError(.tooDeep(limit: JSONCoding.maxMessageDepth), at: JSONCoding.maxMessageDepth)) {
            try JSONCoding.decode(WorkerMessage.self, from: Array(tooDeep.utf8))
        }
    }

    /// Through a real socket, as the supervisor reads a worker: a clear error, with the depth and
    /// the byte, for deep JSON; the key path for a wrong type.
    @Test func aFrameChannelSaysWhatIsWrongWithAMessage() throws {
        func received(_ body: String) throws -> String {
            let (a, b) = try Descriptors.socketPair()
            try FrameChannel(descriptor: a).sendFrame(Array(body.utf8))
            do { _ = try FrameChannel(descriptor: b).receive(WorkerMessage.self, deadline: .now + .seconds(5)) } catch {
                return "\(error)"
            }
            return "decoded"
        }
        let depth = JSONCoding.maxMessageDepth
        let deep = #"{"type":"result","id":1,"payload":"# + String(repeating: "[", count: 10_000)
        #expect(
            try received(deep) == "malformed message: nesting deeper than \(depth) levels at byte \(34 + depth - 1)")
        #expect(try received(#"{"type":"result","id":"x"}"#).contains("at id"))
        #expect(try received(#"{"type":"result","id":1,"stats":{"micros":true}}"#).contains("at stats.micros"))
        #expect(
            try received(#"{"type":"log","level":"info","message":"a","message":"b"}"#)
                == #"malformed message: duplicate key "message" at byte 43"#)
    }
}
