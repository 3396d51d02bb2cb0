import ArgumentParser
import Foundation
import Plugvisor
import PlugvisorManifest
import PlugvisorProtocol

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Show a module's exports, imports and memory, which ABI it speaks and what it lacks.",
        discussion:
            "The module is parsed by a worker process, never by the supervisor. Exit status 1 when it would not load.")

    @Argument(help: "The .wasm file, or Swift sources (a .swift file or a folder of them) to build first.")
    var file: String

    @Flag(help: "Print JSON instead of text.")
    var json = false

    @OptionGroup var cache: CacheOptions

    func run() throws {
        let configuration = SupervisorConfiguration(cacheDirectory: cache.cacheDirectory)
        var module = file
        var isDirectory: ObjCBool = false
        let isSource =
            file.hasSuffix(".swift")
            || (FileManager.default.fileExists(atPath: file, isDirectory: &isDirectory) && isDirectory.boolValue)
        var report: InspectReport
        do {
            if isSource {
                let path = URL(fileURLWithPath: file).standardizedFileURL.path
                module = try SwiftSourceBuilder.buildForInspection(
                    PluginSpec.SwiftSource(path: path, written: file), configuration: configuration
                ).path
            }
            report = try ModuleInspector.inspect(path: module, configuration: configuration)
        } catch {
            Output.fail(PluginError(.loadFailed, "\(error)"))
        }
        if isSource {
            report.source = file
            report.module = module
        }
        Output.stdout(json ? Output.json(report) : Self.text(report, file: file))
        if !report.problems.isEmpty { throw ExitCode(1) }
    }

    static func text(_ report: InspectReport, file: String) -> String {
        var lines = ["\(report.module ?? file): \(report.sizeBytes) bytes, sha256 \(report.sha256 ?? "?")"]
        if let source = report.source {
            lines.insert("built from \(source) (the Swift kit compiled in), cached:", at: 0)
        }
        lines.append("ABI: \(report.abi?.rawValue ?? "none recognised")")
        if let min = report.memoryMinPages {
            lines.append(
                "memory: \(min * 64) KiB initial, "
                    + (report.memoryMaxPages.map { "\($0 * 64) KiB maximum" } ?? "no maximum"))
        }
        if let functions = report.functions {
            lines.append(
                "functions to call (plugvisor call NAME --function F): "
                    + (functions.isEmpty ? "none" : functions.joined(separator: ", ")))
        }
        lines.append("exports:")
        for item in report.exports {
            lines.append("  \(item.kind) \(item.name)\(item.signature.map { " \($0)" } ?? "")")
        }
        lines.append("imports:" + (report.imports.isEmpty ? " none" : ""))
        for item in report.imports {
            lines.append("  \(item.kind) \(item.module ?? "").\(item.name)\(item.signature.map { " \($0)" } ?? "")")
        }
        lines.append(
            "capabilities needed: "
                + (report.capabilities.isEmpty ? "none" : report.capabilities.joined(separator: ", ")))
        if report.problems.isEmpty {
            // Only the shape is checked here: start-up code (`_initialize`, `init`) first runs at load.
            lines.append(
                "ok: plugvisor can load this module (its exports and imports; its start-up code first runs at load)")
        } else {
            lines.append("problems:")
            lines.append(contentsOf: report.problems.map { "  - \($0)" })
        }
        return lines.joined(separator: "\n")
    }
}
