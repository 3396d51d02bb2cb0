import PlugvisorManifest
import Testing

/// How problems read in a terminal: `file:line:column: key.path: message`, one per line.
@Suite struct ManifestProblemTests {
    @Test func aProblemReadsFileLineColumnKeyPathAndMessage() {
        let problem = ManifestProblem(
            file: "/etc/plugvisor/plugins.yaml", line: 6, column: 14, keyPath: "plugins[1].timeout",
            message: "'soon' is not a duration (e.g. 250ms, 5s, 2m)")
        #expect(
            problem.description
                == "/etc/plugvisor/plugins.yaml:6:14: plugins[1].timeout: 'soon' is not a duration (e.g. 250ms, 5s, 2m)"
        )
    }

    @Test func aProblemWithoutAKeyPathLeavesItOut() {
        let problem = ManifestProblem(
            file: "plugins.yaml", line: 3, column: 4, keyPath: nil,
            message: "YAML syntax: did not find expected '-' indicator")
        #expect(problem.description == "plugins.yaml:3:4: YAML syntax: did not find expected '-' indicator")
    }

    @Test func aProblemWithoutAColumnGivesTheLineOnly() {
        let problem = ManifestProblem(
            file: "plugins.yaml", line: 9, column: nil, keyPath: "plugins", message: "lists no plugin")
        #expect(problem.description == "plugins.yaml:9: plugins: lists no plugin")
    }

    @Test func aProblemWithoutALocationGivesTheFileOnly() {
        let problem = ManifestProblem(
            file: "plugins.yaml", line: nil, column: nil, keyPath: nil, message: "manifest is not UTF-8 text")
        #expect(problem.description == "plugins.yaml: manifest is not UTF-8 text")
        #expect(String(describing: problem) == problem.description)
    }

    @Test func aParsedProblemDescribesItselfAsAnEditorWouldLinkIt() throws {
        let folder = try ManifestDirectory()
        let problem = try folder.problem(
            """
            plugins:
              - name: echo
                wasm: echo.wasm
                timeout: soon
            """)
        #expect(
            problem.description
                == "\(folder.manifestPath):4:14: plugins[0].timeout: 'soon' is not a duration (e.g. 250ms, 5s, 2m)")
    }

    @Test func allProblemsDescribeThemselvesOnePerLineInFileOrder() throws {
        let folder = try ManifestDirectory()
        let error = try #require(throws: ManifestErrors.self) {
            try folder.parse(
                """
                plugins:
                  - name: echo
                    wasm: echo.wasm
                    memory: lots
                  - name: echo
                    wasm: echo.wasm
                """)
        }
        let file = folder.manifestPath
        #expect(
            error.description == """
                \(file):4:13: plugins[0].memory: 'lots' is not a memory size between 64KiB and 4GiB (e.g. 32MiB)
                \(file):5:11: plugins[1].name: duplicate plugin name 'echo' (first used on line 2)
                """)
        #expect(error.description == error.problems.map(\.description).joined(separator: "\n"))
    }

    @Test func theSameTextGivesTheSameProblems() throws {
        let folder = try ManifestDirectory()
        let text = ManifestDirectory.plugin("    timeout: soon\n    fuel: none")
        #expect(folder.problems(text) == folder.problems(text))
        #expect(folder.problems(text).count == 2)
    }
}
