import PlugvisorProtocol
import PlugvisorWorker
import Testing

@Suite struct GuestAnswerTests {
    @Test func aPackedAnswerSplitsIntoPointerAndLength() {
        let (pointer, length) = GuestAnswer.unpack(0x0000_1000_0000_0005)
        #expect(pointer == 0x1000)
        #expect(length == 5)
        #expect(GuestAnswer.unpack(UInt64.max) == (UInt32.max, UInt32.max))
    }

    @Test(arguments: [
        (UInt32(0), UInt32(0), true),
        (0, 65536, true),
        (65535, 1, true),
        (65536, 0, true),
        (65536, 1, false),
        (1, 65536, false),
        (UInt32.max, UInt32.max, false),  // would overflow a naive pointer + length
        (0xFFFF_FFF0, 0x100, false),
    ])
    func boundsAreCheckedWithoutOverflow(pointer: UInt32, length: UInt32, inside: Bool) {
        #expect(GuestAnswer.checkBounds(pointer: pointer, length: length, memorySize: 65536) == inside)
    }

    @Test(arguments: [
        (#"{"success":true}"#, 16),
        (#"  {"a":"}"}  trailing"#, 11),
        (#"{"a":"\"}"}"#, 11),
        (#"[1,[2],{"b":[3]}]garbage"#, 17),
        ("\"just a string\"\u{0}more", 15),
        ("42,", 2),
        ("true\u{0}", 4),
    ])
    func theFirstJSONValueEndsWhereItCloses(text: String, expected: Int) {
        #expect(GuestAnswer.lengthOfFirstJSONValue(Array(text.utf8)) == expected)
    }

    @Test(arguments: [#"{"success":true"#, #"{"a":"}"#, "   ", "", #"["#])
    func anUnfinishedValueHasNoLength(text: String) {
        #expect(GuestAnswer.lengthOfFirstJSONValue(Array(text.utf8)) == nil)
    }

    @Test func aValidResultDecodes() throws {
        let value = try GuestAnswer.decodeResult(Array(#"{"success":true,"data":{"n":1}}"#.utf8), plugin: "p").get()
        #expect(value["data"]?["n"] == .integer(1))
        #expect(try GuestAnswer.checkResultShape(value, plugin: "p").get() == value)
    }

    @Test func nonUTF8IsAnInvalidResultThatSaysSo() {
        let result = GuestAnswer.decodeResult([0xFF, 0xFE, 0x7B, 0x7D], plugin: "p")
        #expect(result.failure?.code == .invalidResult)
        #expect(result.failure?.message.contains("UTF-8") == true)
    }

    @Test func nonJSONIsAnInvalidResultThatQuotesIt() {
        let result = GuestAnswer.decodeResult(Array("hello there".utf8), plugin: "p")
        #expect(result.failure?.code == .invalidResult)
        #expect(result.failure?.message.contains("hello there") == true)
    }

    @Test func anEmptyAnswerIsInvalid() {
        #expect(GuestAnswer.decodeResult([], plugin: "p").failure?.code == .invalidResult)
    }

    @Test(arguments: [#"[1,2]"#, #"{"data":1}"#, #"{"success":"yes"}"#, #"{"success":false,"error":42}"#])
    func aResultOfTheWrongShapeIsInvalid(text: String) throws {
        let value = try GuestAnswer.decodeResult(Array(text.utf8), plugin: "p").get()
        #expect(GuestAnswer.checkResultShape(value, plugin: "p").failure?.code == .invalidResult)
    }
}

extension Result {
    var failure: Failure? {
        if case let .failure(error) = self { return error }
        return nil
    }
}
