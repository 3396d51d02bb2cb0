import Foundation
import PlugvisorProtocol
import Testing

/// The hand-written parser against RFC 8259, and against what JSONDecoder made of the same bytes.
@Suite struct JSONParserTests {
    static let valid: [(String, JSONValue)] = [
        ("null", .null), ("true", true), ("false", false),
        ("0", .integer(0)), ("-0", .integer(0)), ("42", .integer(42)), ("-7", .integer(-7)),
        ("9223372036854775807", .integer(.max)), ("-9223372036854775808", .integer(.min)),
        // Past Int64: a double, as before.
        ("9223372036854775808", .double(9_223_372_036_854_775_808)),
        ("-9223372036854775809", .double(-9_223_372_036_854_775_808)),
        ("12345678901234567890123", .double(1.2345678901234568e22)),
        // A fraction or exponent with a whole value in Int64's range is an integer (JSONDecoder's rule).
        ("1.0", .integer(1)), ("-0.0", .integer(0)), ("1e3", .integer(1000)), ("1E+3", .integer(1000)),
        ("1.5e1", .integer(15)), ("100e-2", .integer(1)), ("1e-400", .integer(0)),
        ("1e19", .double(1e19)), ("9.223372036854775807e18", .double(9.223372036854775807e18)),
        ("0.5", .double(0.5)), ("-1.5e-3", .double(-0.0015)), ("0.1", .double(0.1)),
        ("1.7976931348623157e308", .double(.greatestFiniteMagnitude)), ("4.9e-324", .double(.leastNonzeroMagnitude)),
        (#""""#, ""), (#""abc""#, "abc"),
        (#""a\"b\\c\/d\b\f\n\r\t""#, "a\"b\\c/d\u{8}\u{C}\n\r\t"),
        (#""\u00e9\u00E9""#, "éé"), (#""\u0000""#, "\u{0}"), (#""\ud83d\ude00""#, "😀"),
        ("\"é😀\u{7F}\"", "é😀\u{7F}"),
        ("[]", []), ("{}", [:]), ("[1,\"two\",[3],{\"four\":4}]", [1, "two", [3], ["four": 4]]),
        (" \t\r\n{ \"a\" : [ null , true ] }\n ", ["a": [nil, true]]),
        (#"{"":1,"a":{"a":{}}}"#, ["": 1, "a": ["a": [:]]]),
    ]

    @Test(arguments: valid) func aValidDocumentParses(_ text: String, _ expected: JSONValue) throws {
        #expect(try JSONValue(parsing: Array(text.utf8)) == expected)
    }

    typealias Reason = JSONParseError.Reason
    static let invalid: [([UInt8], Reason, Int)] = [
        (bytes(""), .unexpected(found: nil, expected: "a value"), 0),
        (bytes("   "), .unexpected(found: nil, expected: "a value"), 3),
        (bytes("[1,]"), .unexpected(found: ascii("]"), expected: "a value"), 3),
        (bytes(#"{"a":1,}"#), .unexpected(found: ascii("}"), expected: "a string key"), 7),
        (bytes("[1 2]"), .unexpected(found: ascii("2"), expected: "',' or ']'"), 3),
        (bytes("[1"), .unexpected(found: nil, expected: "',' or ']'"), 2),
        (bytes(#"{"a" 1}"#), .unexpected(found: ascii("1"), expected: "':'"), 5),
        (bytes("{1:2}"), .unexpected(found: ascii("1"), expected: "a string key"), 1),
        (bytes("01"), .unexpected(found: ascii("1"), expected: "the end of the input"), 1),
        (bytes("1."), .unexpected(found: nil, expected: "a digit"), 2),
        (bytes(".1"), .unexpected(found: ascii("."), expected: "a value"), 0),
        (bytes("+1"), .unexpected(found: ascii("+"), expected: "a value"), 0),
        (bytes("-"), .unexpected(found: nil, expected: "a digit"), 1),
        (bytes("-a"), .unexpected(found: ascii("a"), expected: "a digit"), 1),
        (bytes("1e"), .unexpected(found: nil, expected: "a digit"), 2),
        (bytes("1e+"), .unexpected(found: nil, expected: "a digit"), 3),
        (bytes("0x10"), .unexpected(found: ascii("x"), expected: "the end of the input"), 1),
        (bytes("NaN"), .unexpected(found: ascii("N"), expected: "a value"), 0),
        (bytes("Infinity"), .unexpected(found: ascii("I"), expected: "a value"), 0),
        (bytes("tru"), .unexpected(found: nil, expected: "'true'"), 3),
        (bytes("nul1"), .unexpected(found: ascii("1"), expected: "'null'"), 3),
        (bytes("[1] x"), .unexpected(found: ascii("x"), expected: "the end of the input"), 4),
        (bytes("1 2"), .unexpected(found: ascii("2"), expected: "the end of the input"), 2),
        (bytes("// comment\n1"), .unexpected(found: ascii("/"), expected: "a value"), 0),
        (bytes("1e400"), .numberOutOfRange, 0),
        (bytes("[-1e400]"), .numberOutOfRange, 1),
        (bytes(#""abc"#), .unexpected(found: nil, expected: "'\"' closing the string"), 4),
        (bytes("\"a\u{1}b\""), .controlCharacterInString(1), 2),
        (bytes("\"a\nb\""), .controlCharacterInString(0x0A), 2),
        (bytes(#""\x""#), .invalidEscape, 1),
        (bytes(#""\u12""#), .invalidEscape, 1),
        (bytes(#""\u12G4""#), .invalidEscape, 1),
        (bytes(#""ab\"#), .unexpected(found: nil, expected: "an escaped character"), 4),
        (bytes(#""\ud800""#), .unpairedSurrogate, 1),
        (bytes(#""\udc00""#), .unpairedSurrogate, 1),
        (bytes(#""x\ud800\u0041""#), .unpairedSurrogate, 2),
        (bytes(#""\ud800x""#), .unpairedSurrogate, 1),
        ([0x22, 0xFF, 0x22], .invalidUTF8, 1),
        ([0x22, 0x61, 0xC3, 0x22], .invalidUTF8, 2),  // a lead byte with no continuation
        ([0x22, 0xC0, 0xAF, 0x22], .invalidUTF8, 1),  // overlong "/"
        ([0x22, 0xED, 0xA0, 0x80, 0x22], .invalidUTF8, 1),  // an encoded surrogate
        ([0x22, 0xF4, 0x90, 0x80, 0x80, 0x22], .invalidUTF8, 1),  // past U+10FFFF
        ([0x22, 0xE2, 0x82], .invalidUTF8, 1),  // cut short by the end
        ([0x22, 0x80, 0x22], .invalidUTF8, 1),  // a lone continuation byte
        ([0xFF], .unexpected(found: 0xFF, expected: "a value"), 0),
        ([0xEF, 0xBB, 0xBF, 0x31], .byteOrderMark, 0),
        (bytes(#"{"a":1,"b":2,"a":3}"#), .duplicateKey("a"), 13),
    ]

    @Test(arguments: invalid) func anInvalidDocumentIsRefusedSayingWhatAndWhere(
        _ input: [UInt8], _ reason: Reason, _ offset: Int
    ) {
        #expect(throws: JSONParseError(reason, at: offset)) { try JSONValue(parsing: input) }
    }

    /// An object's first members are gathered before its dictionary is made, and a larger one
    /// moves to its dictionary on the way: either way every member is kept, and a duplicate
    /// key is refused at its own byte.
    @Test(arguments: [1, 15, 16, 17, 40])
    func objectsOfAnySizeKeepEveryMemberAndRefuseADuplicate(members: Int) throws {
        let entries = (0..<members).map { #""k\#($0)":{"n":\#($0)}"# }
        let object = "{" + entries.joined(separator: ",") + "}"
        let expected = JSONValue.object(
            Dictionary(uniqueKeysWithValues: (0..<members).map { ("k\($0)", ["n": .integer(Int64($0))]) }))
        #expect(try JSONValue(parsing: Array(object.utf8)) == expected)
        #expect(try JSONValue(parsing: Array("[\(object),\(object)]".utf8)) == .array([expected, expected]))
        let duplicated = "{" + entries.joined(separator: ",") + #","k0":1}"#
        #expect(throws: JSONParseError(.duplicateKey("k0"), at: duplicated.utf8.count - 7)) {
            try JSONValue(parsing: Array(duplicated.utf8))
        }
    }

    @Test func errorsReadWell() {
        func message(_ text: String) -> String {
            do {
                _ = try JSONValue(parsing: Array(text.utf8))
                return "parsed"
            } catch { return "\(error)" }
        }
        #expect(message("{\"city\": \"Lyon\",\n \"n\": x}") == "unexpected 'x' at byte 23, expected a value")
        #expect(message("[1,") == "unexpected end of input at byte 3, expected a value")
        #expect(message("\"\u{1B}[2J\"") == "unescaped control character byte 0x1B in a string at byte 1")
        #expect(message(#"{"a\nb":1,"a\nb":2}"#) == #"duplicate key "a\nb" at byte 10"#)
    }

    // MARK: Depth

    static func nested(_ depth: Int, open: String = "[", close: String = "]") -> [UInt8] {
        Array((String(repeating: open, count: depth) + String(repeating: close, count: depth)).utf8)
    }

    /// How many arrays and objects enclose the first leaf.
    static func depth(_ value: JSONValue) -> Int {
        var depth = 0
        var node = value
        while true {
            switch node {
            case let .array(elements):
                depth += 1
                guard let first = elements.first else { return depth }
                node = first
            case let .object(members):
                depth += 1
                guard let first = members.values.first else { return depth }
                node = first
            default: return depth
            }
        }
    }

    @Test func nestingExactlyAtTheLimitParses() throws {
        #expect(Self.depth(try JSONValue(parsing: Self.nested(128))) == 128)
        let objects = Array((String(repeating: #"{"a":"#, count: 128) + "0" + String(repeating: "}", count: 128)).utf8)
        #expect(Self.depth(try JSONValue(parsing: objects)) == 128)
    }

    @Test func nestingOneDeeperThanTheLimitIsRefusedNamingTheDepth() {
        #expect(throws: JSONParseError(.tooDeep(limit: 128), at: 128)) { try JSONValue(parsing: Self.nested(129)) }
        let objects = Array((String(repeating: #"{"a":"#, count: 129) + "0" + String(repeating: "}", count: 129)).utf8)
        #expect(throws: JSONParseError(.tooDeep(limit: 128), at: 128 * 5)) { try JSONValue(parsing: objects) }
        do {
            _ = try JSONValue(parsing: Self.nested(129))
        } catch {
            #expect("\(error)" == "nesting deeper than 128 levels at byte 128")
        }
    }

    @Test func aMillionOpeningBracketsStopAtTheLimit() {
        let bytes = [UInt8](repeating: UInt8(ascii: "["), count: 1 << 20)
        #expect(throws: JSONParseError(.tooDeep(limit: 128), at: 128)) { try JSONValue(parsing: bytes) }
    }

    @Test func theLimitCanBeLowered() {
        #expect(throws: JSONParseError(.tooDeep(limit: 2), at: 2)) {
            try JSONValue(parsing: Self.nested(3), maxDepth: 2)
        }
        #expect(throws: Never.self) { try JSONValue(parsing: Array("1".utf8), maxDepth: 0) }
    }

    /// Many documents nested to the limit, side by side, parse whole: depth is per path, not a
    /// count of brackets.
    @Test func repeatedDeepNestingAtTheLimitParses() throws {
        let element = Self.nested(JSONValue.maxDepth - 1)
        var bytes: [UInt8] = [UInt8(ascii: "[")]
        for index in 0..<1000 {
            if index > 0 { bytes.append(UInt8(ascii: ",")) }
            bytes += element
        }
        bytes.append(UInt8(ascii: "]"))
        guard case let .array(elements) = try JSONValue(parsing: bytes) else {
            Issue.record("not an array")
            return
        }
        #expect(elements.count == 1000)
    }

    // MARK: Round trips with the encoder

    static let roundTrips: [JSONValue] = [
        nil, true, 0, -1, .integer(.max), .integer(.min), 0.5, -1.25e-10, 1e300, "", "é\"\\/\n\u{0}😀",
        [1, "two", [3, [4, [5]]], ["k": nil]], ["b": 1, "a": ["z": [], "y": [:]], "c": "d"],
    ]

    @Test(arguments: roundTrips) func aValueSurvivesEncodingAndParsing(_ value: JSONValue) throws {
        let bytes = try JSONCoding.encode(value)
        #expect(try JSONValue(parsing: bytes) == value)
        // What the encoder writes, parsed and written again, is the same bytes.
        #expect(try JSONCoding.encode(JSONValue(parsing: bytes)) == bytes)
    }

    @Test func aValueAtTheDepthLimitEncodesAndComesBack() throws {
        var value: JSONValue = ["leaf": true]
        for level in 1..<JSONValue.maxDepth { value = level.isMultiple(of: 2) ? [value] : ["k": value] }
        let bytes = try JSONCoding.encode(value)
        #expect(try JSONValue(parsing: bytes) == value)
        #expect(try JSONCoding.decode(JSONValue.self, from: bytes) == value)
    }

    @Test func objectKeysAreWrittenSortedAndSlashesUnescaped() throws {
        let value = try JSONValue(parsing: Array(#"{"b":"x/y","a":[1.5,true,null]}"#.utf8))
        #expect(String(decoding: try JSONCoding.encode(value), as: UTF8.self) == #"{"a":[1.5,true,null],"b":"x/y"}"#)
    }
}

private func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }
private func ascii(_ character: Unicode.Scalar) -> UInt8 { UInt8(ascii: character) }

/// JSONCoding.encode writes what JSONEncoder wrote with `[.sortedKeys, .withoutEscapingSlashes]`.
@Suite struct JSONWriterTests {
    static func foundation<T: Encodable>(_ value: T) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }

    static func ours<T: Encodable>(_ value: T) throws -> String {
        String(decoding: try JSONCoding.encode(value), as: UTF8.self)
    }

    static let values: [JSONValue] = [
        nil, true, false, 0, -1, .integer(.max), .integer(.min),
        0.5, 2.0, -0.0, 1e300, 1e-10, 1e21, 1e16, 1e15, 1.5e15, 123456789012345680.0, 0.1, .double(1.0 / 3), 5e-324,
        .double(.greatestFiniteMagnitude), 100.0, 12345.678, -2.5e-7,
        "", "plain", "a\u{0}\u{1}\u{1F}\u{7F}\u{80}\u{2028}é😀\"\\/\n\r\t\u{8}\u{C}",
        [], [:], [1, [2, [3, []]], ["k": nil]],
        [
            "b": 1, "a": 2, "B": 3, "é": 4, "aa": 5, "a\u{0}": 6, "_": 7, "Z": 8, "~": 9, "😀": 10, "ß": 11, "e": 12,
            "f": 13,
        ],
    ]

    @Test(arguments: values) func aValueIsWrittenAsJSONEncoderWroteIt(_ value: JSONValue) throws {
        #expect(try Self.ours(value) == Self.foundation(value))
    }

    @Test func theMessagesAreWrittenAsJSONEncoderWroteThem() throws {
        let worker: [WorkerMessage] = [
            .hello(Hello(pid: 1)),
            .ready(ReadyInfo(meta: ["name": "x"], memoryBytes: 65536)),
            .loadFailed(reason: "missing export: execute"),
            .result(
                CallResult(
                    id: 7, payload: ["success": true, "data": [1, 2.5, "three", nil]],
                    stats: CallStats(micros: 12, fuelUsed: 99, memoryBytes: 65536))),
            .result(CallResult(id: 8, error: PluginError(.trap, plugin: "p", "unreachable"))),
            .log(LogLine(level: "info", message: "hi/there")),
        ]
        for message in worker { #expect(try Self.ours(message) == Self.foundation(message)) }
        let supervisor: [SupervisorMessage] = [
            .load(
                LoadRequest(
                    plugin: "p", memoryLimit: 1 << 20, fuel: 1000, env: ["A": "b"], config: ["k": "v"],
                    preopens: [Preopen(host: "/tmp", guest: "/data", readOnly: true)])),
            .call(
                CallRequest(id: 1, fn: .execute, payload: PluginContext(requestID: "r", parameters: ["x": [1]]).json)),
            .inspect(InspectRequest(workerUser: WorkerUser(uid: 61184, gid: 61184))),
        ]
        for message in supervisor { #expect(try Self.ours(message) == Self.foundation(message)) }
        let status = ControlResponse(
            status: StatusReport(plugins: [
                PluginStatus(
                    name: "echo", version: nil, state: .ready,
                    workers: [
                        WorkerStatus(pid: 3, state: .idle, uptimeSeconds: 2.0, rssBytes: nil, memoryBytes: 65536)
                    ],
                    calls: 1, errors: 0, errorsByCode: ["trap": 1], p50Micros: nil, p99Micros: 5, restarts: 0,
                    lastError: nil,
                    sha256: nil, circuit: nil, queued: 0, generation: 0, lastReloadAt: nil, lastReload: nil)
            ]))
        #expect(try Self.ours(status) == Self.foundation(status))
        #expect(
            try Self.ours(ControlRequest(op: .call, plugin: "echo", context: ["parameters": [:]]))
                == Self.foundation(ControlRequest(op: .call, plugin: "echo", context: ["parameters": [:]])))
    }

    @Test func aNonFiniteDoubleIsAnError() {
        #expect(throws: EncodingError.self) { try JSONCoding.encode(JSONValue.double(.nan)) }
        #expect(throws: EncodingError.self) { try JSONCoding.encode([Double.infinity]) }
    }
}
