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

    /// The worker gets the context as the bytes the supervisor wrote, found by one parse.
    @Test func anEnvelopeSaysWhereEachMemberLies() throws {
        let context: JSONValue = ["parameters": ["deep": [["a": "b"]]]]
        let frame = try CallFrame.call(id: 5, context: context)
        let body = Array(frame.dropFirst(Framing.headerLength))
        let (value, ranges) = try JSONValue.parsingEnvelope(body)
        let payload = try #require(ranges["payload"])
        #expect(Array(body[payload]) == (try JSONCoding.write(context)))
        #expect(value["payload"] == context)
        #expect(body[try #require(ranges["type"])].elementsEqual(#""call""#.utf8))
        #expect(try JSONValue.parsingEnvelope(Array("[1]".utf8)).memberRanges.isEmpty)
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
