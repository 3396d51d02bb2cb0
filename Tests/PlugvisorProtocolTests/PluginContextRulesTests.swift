import PlugvisorProtocol
import Testing

/// The rules `plugvisor call` and the gateway share when they build a context.
@Suite struct PluginContextRulesTests {
    @Test func headerNamesAreLowerCasedAndRepeatsJoinedInOrder() {
        let headers = PluginContext.headers(from: [
            (name: "X-Foo", value: "bar"), (name: "Accept", value: "*/*"), (name: "x-FOO", value: "baz"),
        ])
        #expect(headers == ["x-foo": "bar, baz", "accept": "*/*"])
    }

    @Test func aParameterGivenTwiceIsRefusedByName() throws {
        let twice = PluginContext.parameters(from: [
            (name: "a", value: "1"), (name: "b", value: 2), (name: "a", value: "2"),
        ])
        #expect(throws: PluginError(.badRequest, #"parameter "a" is given twice"#)) { try twice.get() }
        let once = PluginContext.parameters(from: [(name: "a", value: "1"), (name: "A", value: "2")])
        #expect(try once.get() == ["a": "1", "A": "2"], "parameter names keep their case")
    }

    @Test func requestIDsAreOneTo128VisibleASCIICharacters() {
        for valid in ["r", "order-17", String(repeating: "a", count: 128), "~!#"] {
            #expect(PluginContext.isValidRequestID(valid), "\(valid)")
        }
        for invalid in ["", String(repeating: "a", count: 129), "has space", "tab\t", "caf\u{e9}", "nul\u{0}"] {
            #expect(!PluginContext.isValidRequestID(invalid), "\(invalid.debugDescription)")
        }
    }
}
