import ArgumentParser
import Foundation
import Plugvisor
import PlugvisorManifest
import PlugvisorProtocol

struct Validate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "validate",
        abstract: "Check a manifest and its modules, and report every problem at once, each with its line.",
        discussion: """
            Each plugin's module is inspected as `plugvisor inspect` does (by a sandboxed worker): a \
            module that lacks an export or imports what plugvisor does not provide is a problem. \
            Its start-up code runs only at load. Exit status 0 when all is valid, 1 when not.
            """)

    @Argument(help: "The manifest (YAML or JSON).")
    var manifest: String

    @Flag(help: "Check only the manifest, not the modules it names (nor build Swift sources).")
    var noModules = false

    @OptionGroup var cache: CacheOptions

    func run() throws {
        let loaded: Manifest
        do { loaded = try Manifest.load(path: manifest) } catch {
            Output.stdout(error.description)
            Output.stdout("\(error.problems.count) problem(s)")
            throw ExitCode(1)
        }
        let configuration = SupervisorConfiguration(cacheDirectory: cache.cacheDirectory)
        let problems = noModules ? [] : loaded.plugins.flatMap { Self.moduleProblems($0, configuration: configuration) }
        guard problems.isEmpty else {
            // A compiler's diagnostics span lines: indented, so none reads as a problem of its own.
            problems.forEach { Output.stdout("\(manifest): " + $0.replacingOccurrences(of: "\n", with: "\n    ")) }
            Output.stdout("\(problems.count) problem(s)")
            throw ExitCode(1)
        }
        let checked = noModules ? "" : " (modules checked)"
        Output.stdout(
            "\(manifest): ok, \(loaded.plugins.count) plugin(s)\(checked): \(loaded.plugins.map(\.name).joined(separator: ", "))"
        )
    }

    /// What `inspect` finds wrong with `plugin`'s module, or that it speaks another ABI than declared.
    /// A plugin from Swift sources is built first (or found in the cache), and its module inspected.
    static func moduleProblems(_ plugin: PluginSpec, configuration: SupervisorConfiguration) -> [String] {
        var module = plugin.wasm
        if let source = plugin.source {
            do { module = try SwiftSourceBuilder.buildForInspection(source, configuration: configuration).path } catch {
                return ["plugin \(plugin.name): \(error)"]
            }
        }
        let at = "plugin \(plugin.name): \(plugin.source?.written ?? module)"
        let report: InspectReport
        do {
            report = try ModuleInspector.inspect(
                path: module, linked: plugin.modules.map(\.name), configuration: configuration)
        } catch {
            return ["\(at): \(error)"]
        }
        var problems = report.problems.map { "\(at): \($0)" }
        if problems.isEmpty, let abi = report.abi, abi.guestABI != plugin.abi {
            problems.append(
                "\(at): the module is a \(abi.rawValue) module but the manifest says abi: \(plugin.abi.rawValue)")
        }
        return problems
    }
}
