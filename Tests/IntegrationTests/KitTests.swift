import Foundation
import PlugvisorProtocol
import PlugvisorTestSupport
import Testing

/// The author kits' examples, built from source by the test run and called through the supervisor.
@Suite(.serialized, .timeLimit(.minutes(15))) struct KitTests {
    /// The greeter examples of kits/ (C with its header, Embedded Swift with its kit, Rust with
    /// its standard library only) behave alike.
    @Test(arguments: ["greeter-c", "greeter-swift", "greeter-rust"])
    func aKitsExampleReadsItsContextConfigAndLogs(plugin: String) throws {
        let supervisor = try RunningSupervisor(
            manifest: """
                plugins:
                  - {name: greeter, wasm: "{{plugins}}/\(plugin).wasm", config: {greeting: Salut}}
                """)
        let hello = supervisor.call("greeter", "-p", "name=Grace \"Amazing\" Hopper", "--request-id", "r-9")
        #expect(hello.status == 0, "\(hello.stderr)")
        #expect(hello.json?["data"] == ["message": "Salut, Grace \"Amazing\" Hopper!", "request_id": "r-9"])
        #expect(supervisor.log.contains("greeting Grace \"Amazing\" Hopper for request r-9"))
        let nameless = supervisor.call("greeter")
        #expect(nameless.status == 1)
        #expect(nameless.json == ["success": false, "error": "pass a \"name\" parameter"])
    }

    /// What JSON escapes carry (a newline, a tab, a control character, quotes, a backslash) and
    /// what it carries raw (é, an emoji) reach each kit's example and come back as they were sent.
    @Test(arguments: ["greeter-c", "greeter-swift", "greeter-rust"])
    func aKitsExampleGreetsANameExactlyAsSent(plugin: String) throws {
        let supervisor = try RunningSupervisor(
            manifest: """
                plugins:
                  - {name: greeter, wasm: "{{plugins}}/\(plugin).wasm"}
                """)
        let name = "Ada\nLovelace\tCountess \u{1} \"é\" \\ 😀"
        let hello = supervisor.call("greeter", "-p", "name=\(name)", "--request-id", "r-1")
        #expect(hello.status == 0, "\(hello.stderr)")
        #expect(hello.json?["data"] == ["message": .string("Hello, \(name)!"), "request_id": "r-1"], "\(hello.stdout)")
    }

    /// Each kit's example declares its name and version in one line, and `status` shows the version.
    @Test(arguments: ["greeter-c", "greeter-swift", "greeter-rust", "greeter-wat"])
    func aKitsExampleReportsItsVersion(plugin: String) throws {
        let supervisor = try RunningSupervisor(
            manifest: """
                plugins:
                  - {name: greeter, wasm: "{{plugins}}/\(plugin).wasm"}
                """)
        #expect(try supervisor.plugin("greeter").version == "1.0.0")
    }

    // MARK: - The C kit's accessors, through kit-c-probe

    static let cProbeManifest = """
        plugins:
          - {name: probe, wasm: "{{plugins}}/kit-c-probe.wasm"}
        """

    /// A context as a user sends it with `plugvisor call --json`: strings with escapes, a number,
    /// booleans, null, an array and an object; the C kit reads each as it was sent.
    @Test func theCKitReadsEachParameterAsSent() throws {
        let supervisor = try RunningSupervisor(manifest: Self.cProbeManifest)
        let text = "line\nnext\ttab é 😀 \u{1} \"quoted\" back\\slash /"
        let context: JSONValue = [
            "parameters": [
                "text": .string(text), "count": 42.5, "flag": true, "off": false, "none": nil,
                "list": [1, "]"], "object": ["text": "not this one"],
            ],
            "headers": ["x-note": "a\nb"],
        ]
        let file = supervisor.directory.appendingPathComponent("context.json")
        try Data(try JSONCoding.encode(context)).write(to: file)
        let answer = supervisor.call("probe", "--json", file.path)
        #expect(answer.status == 0, "\(answer.stderr)")
        #expect(
            answer.json?["data"] == [
                "text": .string(text), "prefix": "line\n", "text_length": .integer(Int64(text.utf8.count)),
                "note": "a\nb",
                "count": 42.5, "flag": true, "count_is_bool": 0,
                "types": [
                    "text": "string", "count": "number", "flag": "bool", "off": "bool", "none": "null",
                    "list": "array", "object": "object", "missing": "absent",
                ],
            ], "\(answer.stdout)")
        let integer = supervisor.cli(
            ["call", "probe", "--json", "-"], stdin: #"{"parameters": {"count": -7, "flag": false}}"#)
        #expect(integer.json?["data"]?["count"] == -7, "\(integer.stdout) \(integer.stderr)")
        #expect(integer.json?["data"]?["flag"] == false)
        // Absent and of another type: null, and pv_param_type says which.
        let other = supervisor.call("probe", "-p", "count=42", "-p", "flag=true")
        #expect(other.json?["data"]?["count"] == JSONValue.null, "\(other.stdout)")
        #expect(other.json?["data"]?["flag"] == JSONValue.null)
        #expect(other.json?["data"]?["types"]?["count"] == "string")
        #expect(other.json?["data"]?["text"] == JSONValue.null)
        #expect(other.json?["data"]?["types"]?["text"] == "absent")
    }

    /// Escapes the host does not write itself (\u00e9, a surrogate pair, \/, \b, \f, an escaped
    /// key), handed to the kit verbatim; malformed strings are refused, and the log says which.
    @Test func theCKitDecodesEveryJSONEscapeAndRefusesMalformedOnes() throws {
        let supervisor = try RunningSupervisor(manifest: Self.cProbeManifest)
        let inner =
            #"{"headers": {"x-note": "\u00e9\ud83d\ude00"}, "parameters": {"t\u0065xt": "Chlo\u00e9 \ud83d\ude00 \/\b\f\r!", "count": 1e3}}"#
        let decoded = try probe(supervisor, ["context": .string(inner)])
        #expect(decoded["data"]?["text"] == "Chloé 😀 /\u{8}\u{c}\r!", "\(decoded)")
        #expect(decoded["data"]?["prefix"] == "Chlo", "é does not fit in the one byte left: no half character")
        #expect(decoded["data"]?["note"] == "é😀")
        #expect(decoded["data"]?["count"] == 1000)
        for malformed in [#""\ud83d""#, #""\ude00x""#, #""\ud83d\u0041""#, #""\x""#, #""\u12g4""#, "\"tab\there\""] {
            let refused = try probe(supervisor, ["context": .string(#"{"parameters": {"text": \#(malformed)}}"#)])
            #expect(refused["data"]?["text"] == "" && refused["data"]?["text_length"] == 0, "\(malformed): \(refused)")
            #expect(refused["data"]?["types"]?["text"] == "string")
        }
        #expect(
            supervisor.eventually {
                supervisor.log.contains("parameters.text is not a valid JSON string (at byte 1 of it): refused")
            },
            "\(supervisor.log)")
        #expect(try supervisor.plugin("probe").version == "0.2.0")
    }

    /// The WAT example needs no kit: it copies the name as the context spells it, escapes and all.
    @Test func theWATExampleGreetsWithTheNameAsSpelled() throws {
        let supervisor = try RunningSupervisor(
            manifest: """
                plugins:
                  - {name: greeter, wasm: "{{plugins}}/greeter-wat.wasm"}
                """)
        let hello = supervisor.call("greeter", "-p", "name=Grace \"Amazing\" Hopper", "-H", "name=not this one")
        #expect(
            hello.json?["data"] == ["message": "Hello, Grace \"Amazing\" Hopper!"], "\(hello.stdout) \(hello.stderr)")
        #expect(supervisor.log.contains(#"Hello, Grace \"Amazing\" Hopper!"#))
        let nameless = supervisor.call("greeter", "-p", "other=x")
        #expect(nameless.json == ["success": false, "error": "pass a \"name\" parameter"])
    }

    @Test func theSwiftKitsExampleReportsItsVersionAndDefaultGreeting() throws {
        let supervisor = try RunningSupervisor(
            manifest: """
                plugins:
                  - {name: greeter, wasm: "{{plugins}}/greeter-swift.wasm"}
                """)
        let hello = supervisor.call("greeter", "-p", "name=Ada")
        #expect(hello.json?["data"]?["message"] == "Hello, Ada!", "\(hello.stdout) \(hello.stderr)")
        #expect(try supervisor.plugin("greeter").version == "1.0.0")
    }

    // MARK: - The Swift kit's JSON, headers and HTTP, through kit-swift-probe

    func probe(_ supervisor: RunningSupervisor, _ parameters: [String: JSONValue]) throws -> JSONValue {
        let response = try supervisor.directCall("probe", parameters)
        guard let result = response.result else {
            throw FixtureError("no result: \(String(describing: response.error))")
        }
        return result
    }

    // The probe parses and prints hundreds of numbers in the interpreter: 3-7 s in a debug
    // build on a loaded machine, past the default 5 s call timeout.
    static let probeManifest = """
        plugins:
          - {name: probe, wasm: "{{plugins}}/kit-swift-probe.wasm", timeout: 30s}
        """

    @Test func theSwiftKitReadsAndWritesJSONAsFoundationDoes() throws {
        let supervisor = try RunningSupervisor(manifest: Self.probeManifest)
        let documents = [
            #"{"a":[1,-2.5,1e3,0.1,true,false,null],"s":"q\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00 \u0001 ok","e":{},"f":[]}"#,
            #" [ 0 , -0.0 , 1E-7 , 123456789012 , 9007199254740993 , 1.7976931348623157e308, 5e-324, 2.2250738585072011e-308 ] "#,
            #""plain""#, "true", "null", "-12",
            // As deep as the host takes a guest's answer: 126 levels inside its data.value.
            String(repeating: "[", count: 126) + String(repeating: "]", count: 126),
        ]
        for document in documents {
            let expected = try JSONCoding.decode(JSONValue.self, from: Array(document.utf8))
            let answer = try probe(supervisor, ["json": .string(document)])
            #expect(answer["success"] == true, "\(document): \(answer)")
            #expect(answer["data"]?["value"].map(numeric) == numeric(expected), "\(document)")
            // What the kit wrote is JSON that Foundation reads back as the same value.
            let written = try #require(answer["data"]?["text"]?.stringValue, "\(answer)")
            #expect(
                numeric(try JSONCoding.decode(JSONValue.self, from: Array(written.utf8))) == numeric(expected),
                "\(written)")
        }
        // Duplicate keys: the host refuses them in every JSON it reads, a guest's answer
        // included (two readers of the same bytes must never disagree), so the probe, which
        // echoes what it parsed, cannot show which one the kit keeps.
    }

    @Test func theSwiftKitRoundsNumbersCorrectly() throws {
        let supervisor = try RunningSupervisor(manifest: Self.probeManifest)
        var generator = SystemRandomNumberGenerator()
        let numbers = (0..<300).map { _ in
            let digits = String(
                (0..<Int.random(in: 1...20, using: &generator)).map { _ in
                    "0123456789".randomElement(using: &generator)!
                })
            // At most 21 digits, so an exponent up to 287 stays below Double's 1.8e308: no infinity,
            // which JSON cannot carry.
            return
                "\(Bool.random(using: &generator) ? "-" : "")1\(digits)e\(Int.random(in: -330...287, using: &generator))"
        }
        let answer = try probe(supervisor, ["json": .string("[" + numbers.joined(separator: ",") + "]")])
        let values = try #require(
            answer["data"]?["value"].flatMap { if case let .array(items) = $0 { items } else { nil } }, "\(answer)")
        #expect(values.count == numbers.count)
        for (text, value) in zip(numbers, values) {
            #expect(numeric(value) == .double(Double(text)!), "\(text)")
        }
    }

    @Test func theSwiftKitRefusesMalformedJSONSayingWhere() throws {
        let supervisor = try RunningSupervisor(manifest: Self.probeManifest)
        let cases: [(String, String)] = [
            (#"{"a":1,}"#, "expected a string key at byte 7"),
            ("[1 2]", "expected ',' or ']' at byte 3"),
            (#"{"a" 1}"#, "expected ':' at byte 5"),
            (#""\ud800""#, "lone surrogate in \\u escape at byte 7"),
            (#""\udc00x""#, "lone surrogate in \\u escape at byte 7"),
            (#""\x""#, "invalid escape at byte 2"),
            (#""\u12g4""#, "invalid hex digit in \\u escape at byte 5"),
            ("\"tab\there\"", "control character in string (escape it) at byte 4"),
            (#""open"#, "unterminated string at byte 0"),
            ("01", "leading zero in a number at byte 1"),
            ("-", "expected a digit at byte 1"),
            ("1.", "expected a digit after '.' at byte 2"),
            ("1e+", "expected a digit in the exponent at byte 3"),
            ("1e999", "number out of range at byte 0"),
            ("tru", "unexpected character, expected a value at byte 0"),
            ("1 2", "unexpected text after the JSON value at byte 2"),
            ("", "unexpected end, expected a value at byte 0"),
            ("[", "unexpected end, expected a value at byte 1"),
            (String(repeating: "[", count: 129), "nested deeper than 128 levels at byte 128"),
        ]
        for (document, reason) in cases {
            let answer = try probe(supervisor, ["json": .string(document)])
            #expect(answer == ["success": false, "error": .string(reason)], "\(document)")
        }
        // The worker is still the same one: nothing trapped.
        #expect(try supervisor.plugin("probe").restarts == 0)
        #expect(try supervisor.plugin("probe").errors == 0)
    }

    @Test func theSwiftKitReadsHeadersInAnyCase() throws {
        let supervisor = try RunningSupervisor(manifest: Self.probeManifest)
        let answer = supervisor.call("probe", "-H", "X-Probe=yes", "-p", "kind=header")
        #expect(
            answer.json?["data"] == ["header": "yes", "parameters": ["kind": "header"]],
            "\(answer.stdout) \(answer.stderr)")
    }

    @Test func theSwiftKitFetchesThroughTheSupervisorAndReportsRefusals() throws {
        let server = try NetworkTests.LoopbackServer()
        let supervisor = try RunningSupervisor(
            manifest: """
                plugins:
                  - {name: probe, wasm: "{{plugins}}/kit-swift-probe.wasm", network: {allowed_hosts: ["\(server.allowed)"]}, timeout: 3s}
                  - {name: offline, wasm: "{{plugins}}/kit-swift-probe.wasm"}
                """)
        let hello = supervisor.call("probe", "-p", "url=\(server.url("hello"))")
        #expect(
            hello.json?["data"] == ["status": 200, "body": "hello from the host"], "\(hello.stdout) \(hello.stderr)")
        let refused = supervisor.call("offline", "-p", "url=\(server.url("hello"))")
        #expect(refused.status == 1)
        #expect(refused.json == ["success": false, "error": "network access is not granted to this plugin"])
        withExtendedLifetime(server) {}
    }
}

/// Numbers as Doubles, so that 1000 and 1e3, or 0 and -0.0, compare as JSON numbers do.
func numeric(_ value: JSONValue) -> JSONValue {
    switch value {
    case let .integer(number): return .double(Double(number))
    case let .array(items): return .array(items.map(numeric))
    case let .object(members): return .object(members.mapValues(numeric))
    default: return value
    }
}
