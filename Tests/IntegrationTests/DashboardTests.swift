import Foundation
import Glibc
import PlugvisorPosix
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
        // Only the page's own script may run, and it may not be framed (its admin buttons).
        let policy = try #require(page.header("Content-Security-Policy"))
        #expect(policy.contains("default-src 'none'") && policy.contains("frame-ancestors 'none'"))
        #expect(policy.contains("script-src 'sha256-") && !policy.contains("unsafe-inline"))
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

/// The dashboard as a person sees it: Debian's Chromium loads it from a running gateway and
/// runs its script; the checks read the rendered page, click its buttons with the mouse and
/// answer its dialog. A screenshot of each run is kept in `.build/artefacts/` (or, where the
/// tree is not writable, `$TMPDIR/plugvisor-artefacts-<uid>/`).
@Suite(.serialized, .timeLimit(.minutes(5))) struct DashboardBrowserTests {
    static let manifest = """
        plugins:
          - {name: echo, wasm: "{{plugins}}/echo.wasm"}
          - {name: markup, wasm: "{{plugins}}/html-version.wasm"}
        """

    func row(_ plugin: String) -> String { "document.querySelector('tr[data-plugin=\"\(plugin)\"]')" }
    /// The text under the column headed `column`, found by its heading as a reader would.
    func cell(_ plugin: String, _ column: String) -> String {
        "\(row(plugin)).cells[[...document.querySelectorAll('#plugins thead th')]"
            + ".findIndex(th => th.textContent === '\(column)')].textContent"
    }

    @Test func thePageUpdatesItselfAndItsAdminButtonsWorkWithTheToken() throws {
        let (supervisor, http) = try GatewayTests.start(Self.manifest)
        let browser = try HeadlessBrowser()
        try browser.open(http.base + "/")
        #expect(try browser.waitUntil("document.getElementById('updated').textContent.startsWith('updated')"))
        #expect(
            try browser.evaluate("[...document.querySelectorAll('#plugins tbody tr')].map(r => r.dataset.plugin)")
                as? [String] == ["echo", "markup"])
        #expect(try browser.string(cell("echo", "state")) == "ready")

        // The guest's version is text on the page, never markup that runs.
        #expect(try browser.string(cell("markup", "version")) == "<script>alert(1)</script>")
        #expect(try browser.evaluate("document.querySelectorAll('script').length") as? Int == 1)
        // A plugin added while the page is open gets its row from the script: text there too.
        let added = (Self.manifest + "\n  - {name: late, wasm: \"{{plugins}}/html-version.wasm\"}\n")
            .replacingOccurrences(of: "{{plugins}}", with: Fixtures.pluginsDirectory.path)
        try added.write(toFile: supervisor.manifestPath, atomically: true, encoding: .utf8)
        #expect(supervisor.cli(["reload"]).status == 0)
        #expect(try browser.waitUntil("\(row("late")) !== null && \(cell("late", "state")) === 'ready'"))
        #expect(try browser.string(cell("late", "version")) == "<script>alert(1)</script>")
        #expect(try browser.evaluate("document.querySelectorAll('script').length") as? Int == 1)
        #expect(browser.dialogs.isEmpty, "\(browser.dialogs)")

        // Calls show in the counts and the calls/s sparkline without a reload.
        for _ in 0..<20 { #expect(supervisor.call("echo").status == 0) }
        #expect(try browser.waitUntil("\(cell("echo", "calls")) === '20'"))
        #expect(try browser.waitUntil("\(row("echo")).querySelector('svg.spark').dataset.points >= 3"))

        // A kill from the CLI turns the row to stopped; the page was not reloaded.
        _ = try browser.evaluate("window.stayedOnThePage = true")
        #expect(supervisor.cli(["kill", "echo"]).status == 0)
        #expect(try browser.waitUntil("\(cell("echo", "state")) === 'stopped'"))
        #expect(try browser.evaluate("window.stayedOnThePage") as? Bool == true)

        // The admin buttons are there; restart asks for the token once and sends it as a header.
        browser.promptAnswer = GatewayTests.token
        try browser.click("tr[data-plugin=\"echo\"] button.op-restart")
        #expect(try browser.waitUntil("\(cell("echo", "state")) === 'ready'"))
        #expect(browser.dialogs == ["prompt: Admin token"])
        #expect(try supervisor.plugin("echo").state == .ready)
        #expect(try browser.string("sessionStorage.getItem('plugvisor-token')") == GatewayTests.token)
        #expect(try browser.string("document.cookie") == "")
        #expect(try browser.string("location.href") == http.base + "/")
        // Asked once: a second action uses the stored token.
        try browser.click("tr[data-plugin=\"echo\"] button.op-kill")
        #expect(try browser.waitUntil("\(cell("echo", "state")) === 'stopped'"))
        #expect(browser.dialogs.count == 1)

        try browser.screenshot(to: try Self.artefact("dashboard.png"))
        _ = supervisor
    }

    @Test func withoutATokenThereAreNoAdminButtons() throws {
        let (supervisor, http) = try GatewayTests.start(Self.manifest, token: nil)
        let browser = try HeadlessBrowser()
        try browser.open(http.base + "/")
        #expect(try browser.waitUntil("document.getElementById('updated').textContent.startsWith('updated')"))
        #expect(try browser.string(cell("echo", "state")) == "ready")
        #expect(try browser.evaluate("document.querySelectorAll('button').length") as? Int == 0)
        #expect(throws: (any Error).self) { try browser.click("button.op-kill") }
        try browser.screenshot(to: try Self.artefact("dashboard-no-token.png"))
        _ = supervisor
    }

    /// Where a run's screenshots go (made on first use).
    static func artefact(_ name: String) throws -> String {
        let inTree = Fixtures.root.appendingPathComponent(".build/artefacts")
        var directory = inTree
        if (try? FileManager.default.createDirectory(at: inTree, withIntermediateDirectories: true)) == nil
            || access(inTree.path, W_OK) != 0
        {
            directory = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent(
                "plugvisor-artefacts-\(getuid())")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        }
        return directory.appendingPathComponent(name).path
    }
}
