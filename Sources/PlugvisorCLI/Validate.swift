import ArgumentParser
import Foundation
import Plugvisor
import PlugvisorManifest
import PlugvisorProtocol

struct Validate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check a manifest and its modules, and report every problem at once, each with its line.",
        discussion: """
            Each plugin's module is inspected as `plugvisor inspect` does (by a sandboxed worker): a \
            module that lacks an export or imports what plugvisor does not provide is a problem. \
            Its start-up code runs only at load. Exit status 0 when all is valid, 1 when not.
            """)

    @Argument(help: "The manifest (YAML or JSON).")
    var manifest: String

    @Flag(help: "Check only the manifest, not the modules it names.")
    var noModules = false

    func run() throws {
        let loaded: Manifest
        do { loaded = try Manifest.load(path: manifest) } catch {
            Report.stdout(error.description)
            Report.stdout("\(error.problems.count) problem(s)")
            throw ExitCode(1)
        }
        let problems = noModules ? [] : loaded.plugins.flatMap { Self.moduleProblems($0) }
        guard problems.isEmpty else {
            problems.forEach { Report.stdout("\(manifest): \($0)") }
            Report.stdout("\(problems.count) problem(s)")
            throw ExitCode(1)
        }
        let checked = noModules ? "" : " (modules checked)"
        Report.stdout("\(manifest): ok, \(loaded.plugins.count) plugin(s)\(checked): \(loaded.plugins.map(\.name).joined(separator: ", "))")
    }

    /// What `inspect` finds wrong with `plugin`'s module, or that it speaks another ABI than declared.
    static func moduleProblems(_ plugin: PluginSpec) -> [String] {
        let at = "plugin \(plugin.name): \(plugin.wasm)"
        let report: InspectReport
        do { report = try ModuleInspector.inspect(path: plugin.wasm) } catch { return ["\(at): \(error)"] }
        var problems = report.problems.map { "\(at): \($0)" }
        if problems.isEmpty, let abi = report.abi, abi.guestABI != plugin.abi {
            problems.append("\(at): the module is a \(abi.rawValue) module but the manifest says abi: \(plugin.abi.rawValue)")
        }
        return problems
    }
}

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show a module's exports, imports and memory, which ABI it speaks and what it lacks.",
        discussion: "The module is parsed by a worker process, never by the supervisor. Exit status 1 when it would not load.")

    @Argument(help: "The .wasm file.")
    var file: String

    @Flag(help: "Print JSON instead of text.")
    var json = false

    func run() throws {
        let report: InspectReport
        do { report = try ModuleInspector.inspect(path: file) } catch {
            Report.error(PluginError(.loadFailed, "\(error)"))
        }
        Report.stdout(json ? Report.json(report) : Self.text(report, file: file))
        if !report.problems.isEmpty { throw ExitCode(1) }
    }

    static func text(_ report: InspectReport, file: String) -> String {
        var lines = ["\(file): \(report.sizeBytes) bytes, sha256 \(report.sha256 ?? "?")"]
        lines.append("ABI: \(report.abi?.rawValue ?? "none recognised")")
        if let min = report.memoryMinPages {
            lines.append("memory: \(min * 64) KiB initial, " + (report.memoryMaxPages.map { "\($0 * 64) KiB maximum" } ?? "no maximum"))
        }
        lines.append("exports:")
        for item in report.exports { lines.append("  \(item.kind) \(item.name)\(item.signature.map { " \($0)" } ?? "")") }
        lines.append("imports:" + (report.imports.isEmpty ? " none" : ""))
        for item in report.imports {
            lines.append("  \(item.kind) \(item.module ?? "").\(item.name)\(item.signature.map { " \($0)" } ?? "")")
        }
        lines.append("capabilities needed: " + (report.capabilities.isEmpty ? "none" : report.capabilities.joined(separator: ", ")))
        if report.problems.isEmpty {
            // Only the shape is checked here: start-up code (`_initialize`, `init`) first runs at load.
            lines.append("ok: plugvisor can load this module (its exports and imports; its start-up code first runs at load)")
        } else {
            lines.append("problems:")
            lines.append(contentsOf: report.problems.map { "  - \($0)" })
        }
        return lines.joined(separator: "\n")
    }
}
