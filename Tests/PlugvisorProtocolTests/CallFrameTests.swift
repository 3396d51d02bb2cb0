import PlugvisorProtocol
import Testing

/// The hand-written frames every call carries are the bytes the Codable messages encode to, and
/// read back as they do.
@Suite struct CallFrameTests {
    static let contexts: [JSONValue] = [
        [:],
        ["request_id": "bench", "headers": [:], "parameters": [:]],
        [
            "parameters": [
                "text": "naïve \"quoted\" \\ tab\t nul\u{0}", "n": 12, "ratio": 0.25, "list": [true, nil, -7],
            ]
        ],
    ]

    @Test(arguments: contexts) func aCallFrameIsWhatTheCallMessageEncodesTo(context: JSONValue) throws {
        let frame = try CallFrame.call(id: 18_446_744_073, context: context)
        let message = SupervisorMessage.call(CallRequest(id: 18_446_744_073, fn: .execute, payload: context))
        #expect(frame == Framing.frame(try JSONCoding.encode(message)))
    }

    @Test func aResultFrameIsWhatTheResultMessageEncodesTo() throws {
        let answer: JSONValue = ["success": true, "data": ["echo": "é", "n": [1, 2]]]
        for stats in [
            CallStats(micros: 12), CallStats(micros: 0, memoryBytes: 65536),
            CallStats(micros: 7, fuelUsed: 99, memoryBytes: 131_072),
        ] {
            let frame = CallFrame.result(id: 42, answer: try JSONCoding.write(answer), stats: stats)
            let message = WorkerMessage.result(CallResult(id: 42, payload: answer, stats: stats))
            #expect(frame == Framing.frame(try JSONCoding.encode(message)), "\(stats)")
        }
    }

    /// A guest's answer travels as the guest wrote it (spaces and all) and reads back as its value.
    @Test func aGuestsAnswerIsSplicedInAsItCame() throws {
        let written = Array(#" { "success" : true , "data" : [ 1.0 , "x" ] } "#.utf8)
        let frame = CallFrame.result(id: 1, answer: written, stats: CallStats(micros: 3))
        let body = Array(frame.dropFirst(Framing.headerLength))
        #expect(body.count == frame.count - Framing.headerLength)
        guard case let .result(result) = try JSONCoding.decode(WorkerMessage.self, from: body) else {
            Issue.record("not a result")
            return
        }
        #expect(result.payload == ["success": true, "data": [1, "x"]])
        #expect(result.stats == CallStats(micros: 3))
    }

    /// The worker gets the context as the bytes the supervisor wrote, without parsing it.
    @Test func aCallFrameGivesItsIDAndContextBytes() throws {
        let context: JSONValue = ["parameters": ["deep": [["a": "b"]]], "type": "call"]
        for id: UInt64 in [0, 5, .max] {
            let body = Array(try CallFrame.call(id: id, context: context).dropFirst(Framing.headerLength))
            let parsed = try #require(CallFrame.parsedCall(body))
            #expect(parsed.id == id)
            #expect(Array(body[parsed.context]) == (try JSONCoding.write(context)))
        }
    }

    /// Any other form is left to the general decoder, which says what is wrong with it.
    @Test func aCallFrameOfAnotherFormIsNotReadByItsFixedParts() throws {
        for text in [
            #"{"fn":"execute","id":1,"payload":{},"type":"cal"}"#,
            #"{"fn":"execute","id":,"payload":{},"type":"call"}"#,
            #"{"fn":"execute","id":-1,"payload":{},"type":"call"}"#,
            #"{"fn":"execute","id":18446744073709551616,"payload":{},"type":"call"}"#,
            #"{"fn":"execute","id":1,"payload":,"type":"call"}"#,
            #"{"fn":"execute","id":1,"type":"call"}"#,
            #"{"fn":"meta","id":1,"payload":{},"type":"call"}"#,
        ] {
            #expect(CallFrame.parsedCall(Array(text.utf8)) == nil, "\(text)")
        }
    }

    /// The supervisor reads an answer from the tree without a decoder, and gets what the
    /// decoder would give; any other form is left to the decoder.
    @Test func anAnswerReadFromItsTreeIsWhatTheDecoderReads() throws {
        for stats in [
            CallStats(micros: 0), CallStats(micros: 7, fuelUsed: 12, memoryBytes: 65536),
            CallStats(micros: 1, memoryBytes: 0),
        ] {
            let frame = CallFrame.result(id: 9, answer: Array(#"{"success":true}"#.utf8), stats: stats)
            let tree = try JSONValue(parsing: Array(frame.dropFirst(Framing.headerLength)))
            let read = try #require(CallFrame.answeredResult(tree))
            #expect(WorkerMessage.result(read) == (try JSONCoding.decode(WorkerMessage.self, from: tree)))
        }
        for text in [
            #"{"id":1,"error":{"code":"trap","message":"x"},"type":"result"}"#,
            #"{"id":-1,"payload":{},"stats":{"micros":1},"type":"result"}"#,
            #"{"id":1,"payload":{},"stats":{"micros":1.5},"type":"result"}"#,
            #"{"id":1,"payload":{},"stats":{"micros":1,"fuelUsed":-2},"type":"result"}"#,
            #"{"id":1,"payload":{},"type":"result"}"#,
            #"{"id":1,"payload":{},"stats":{"micros":1},"type":"log"}"#,
            #"[1]"#,
        ] {
            #expect(CallFrame.answeredResult(try JSONValue(parsing: Array(text.utf8))) == nil, "\(text)")
        }
    }

    /// Read by hand, a result says what is wrong as the Codable decoder did.
    @Test func aBrokenResultSaysWhatIsMissing() {
        #expect {
            try JSONCoding.decode(WorkerMessage.self, from: Array(#"{"type":"result","payload":{}}"#.utf8))
        } throws: { error in
            guard case let DecodingError.keyNotFound(key, _) = error else { return false }
            return key.stringValue == "id"
        }
        #expect {
            try JSONCoding.decode(WorkerMessage.self, from: Array(#"{"type":"result","id":-1}"#.utf8))
        } throws: { error in
            guard case let DecodingError.dataCorrupted(context) = error else { return false }
            return context.codingPath.map(\.stringValue) == ["id"]
        }
        #expect(throws: Never.self) {
            try JSONCoding.decode(WorkerMessage.self, from: Array(#"{"type":"result","id":1,"payload":null}"#.utf8))
        }
    }
}
