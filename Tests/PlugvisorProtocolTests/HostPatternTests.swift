import PlugvisorProtocol
import Testing

/// `allowed_hosts` entries: parsed into one canonical form, matched on host and port.
@Suite struct HostPatternTests {
    @Test(arguments: [
        ("api.example.com", "api.example.com"), ("API.Example.COM.", "api.example.com"),
        ("api.example.com:8443", "api.example.com:8443"), ("*.Internal.example:8443", "*.internal.example:8443"),
        ("[::1]:8080", "[::1]:8080"), ("[FE80::1]", "[fe80::1]"), ("10.0.0.1", "10.0.0.1"),
    ])
    func entriesAreNormalised(entry: String, canonical: String) throws {
        #expect(try HostPattern.parse(entry).get().description == canonical)
    }

    @Test(arguments: [
        "*", "::1", "[::1", "a%2eb", "bücher.example", "a:0", "a:65536", "a:", "*.[::1]", "[a.b]", "ex*ample.com",
    ])
    func malformedEntriesAreRefused(entry: String) {
        #expect(throws: HostProblem.self) { try HostPattern.parse(entry).get() }
    }

    @Test func withoutAPortOnlyTheSchemesDefaultPortMatches() throws {
        let localhost = try HostPattern.parse("localhost").get()
        #expect(localhost.matches(host: "localhost", port: 80, scheme: "http"))
        #expect(localhost.matches(host: "localhost", port: 443, scheme: "https"))
        #expect(!localhost.matches(host: "localhost", port: 8080, scheme: "http"))
        #expect(!localhost.matches(host: "localhost", port: 443, scheme: "http"))
        let wildcard = try HostPattern.parse("*.example.com:8443").get()
        #expect(wildcard.matches(host: "a.example.com", port: 8443, scheme: "https"))
        #expect(!wildcard.matches(host: "example.com", port: 8443, scheme: "https"))
        #expect(!wildcard.matches(host: "a.example.com", port: 443, scheme: "https"))
    }
}
