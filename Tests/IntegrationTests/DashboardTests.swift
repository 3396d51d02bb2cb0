import Foundation
import PlugvisorTestSupport
import Testing

/// The dashboard at `/` of a real `plugvisor start --http`, as served (the table rendered on the
/// server, readable without JavaScript).
@Suite(.serialized, .timeLimit(.minutes(5))) struct DashboardTests {
    @Test func thePageHasEachPluginsRowAndAdminButtonsOnlyWithAToken() async throws {
        let manifest = """
            plugins:
              - {name: echo, wasm: "{{plugins}}/echo.wasm"}
              - {name: markup, wasm: "{{plugins}}/html-version.wasm"}
            """
        let (supervisor, http) = try GatewayTests.start(manifest)
        let page = try await http.send("GET", "/")
        #expect(page.status == 200)
        #expect(page.header("Content-Type") == "text/html; charset=utf-8")
        #expect(page.text.contains(#"<tr data-plugin="echo"><td>echo</td><td>ready</td>"#))
        #expect(page.text.contains(#"<body data-admin="1">"#))
        // A version the guest wrote is shown as text: escaped, never markup.
        #expect(page.text.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "\(page.text)")
        #expect(!page.text.contains("<script>alert(1)"))
        _ = supervisor

        let (plain, plainHTTP) = try GatewayTests.start(manifest, token: nil)
        let withoutToken = try await plainHTTP.send("GET", "/")
        #expect(withoutToken.text.contains(#"<body data-admin="0">"#))
        _ = plain
    }
}
