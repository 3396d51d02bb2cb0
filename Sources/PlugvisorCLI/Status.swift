import ArgumentParser
import Foundation
import PlugvisorManifest
import PlugvisorProtocol

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show each plugin's version, generation, state, workers, calls, errors, latency, restarts and memory."
    )

    @Flag(help: "Print JSON instead of a table (with --watch, one line of JSON each time).")
    var json = false

    @Flag(
        help: ArgumentHelp(
            "Redraw the table in place every --interval, with calls/s and errors/s since the last frame; q or Ctrl-C quits.",
            discussion: "When stdout is not a terminal, a plain table is printed each time instead."))
    var watch = false

    @Option(help: "How often --watch redraws (e.g. 1s, 500ms; at least 100ms).")
    var interval = "1s"

    @OptionGroup var control: ControlOptions

    func validate() throws { _ = try watchInterval() }

    func watchInterval() throws -> Duration {
        guard let duration = Units.duration(interval), duration >= .milliseconds(100) else {
            throw ValidationError("--interval '\(interval)' is not a duration of at least 100ms (e.g. 1s, 500ms)")
        }
        return duration
    }

    /// A note under the table: each line escaped (a guest may have written it), continuation
    /// lines (a compiler's diagnostics) indented.
    static func note(_ text: String) -> String {
        text.split(separator: "\n", omittingEmptySubsequences: false).map { DisplayText.escaped(String($0)) }
            .joined(separator: "\n    ")
    }

    func run() throws {
        let client = ControlClient(path: control.path)
        if watch {
            StatusWatch(interval: try watchInterval(), json: json) { client.fetchStatus(timeout: .seconds(5)) }.run()
        }
        switch client.fetchStatus() {
        case let .failure(error): Output.fail(error)
        case let .success(status): Output.stdout(json ? Output.json(status) : Self.table(status))
        }
    }

    /// Calls and errors per second of each plugin, since the frame before (`status --watch`).
    typealias Rates = [String: (calls: Double, errors: Double)]

    static func table(_ status: StatusReport, rates: Rates? = nil) -> String {
        var header = [
            "PLUGIN", "VERSION", "GEN", "STATE", "PIDS", "CALLS", "ERRORS", "P50", "P99", "RESTARTS", "MEMORY",
        ]
        if rates != nil { header.insert(contentsOf: ["CALLS/S", "ERRORS/S"], at: 7) }
        var rows = [header]
        var notes: [String] = []
        for plugin in status.plugins {
            let rss = plugin.workers.compactMap(\.rssBytes).saturatingSum()
            var row = [
                plugin.name, plugin.version ?? "-", "\(plugin.generation)", plugin.state.rawValue,
                plugin.workers.isEmpty ? "-" : plugin.workers.map { "\($0.pid)" }.joined(separator: ","),
                "\(plugin.calls)", "\(plugin.errors)",
                plugin.p50Micros.map(formatMicros) ?? "-", plugin.p99Micros.map(formatMicros) ?? "-",
                "\(plugin.restarts)", rss > 0 ? formatBytes(rss) : "-",
            ]
            if let rates {
                let rate = rates[plugin.name]
                row.insert(
                    contentsOf: [rate.map { formatRate($0.calls) } ?? "-", rate.map { formatRate($0.errors) } ?? "-"],
                    at: 7)
            }
            rows.append(row)
            if let error = plugin.lastError, plugin.state == .failed || plugin.errors > 0 {
                notes.append(
                    Self.note("\(plugin.name): \(plugin.state == .failed ? "failed: " : "last error: ")\(error)"))
            }
            if let source = plugin.source {
                notes.append(
                    Self.note("\(plugin.name): built from \(source)" + (plugin.module.map { ", serving \($0)" } ?? "")))
            }
            // A failed reload leaves the old version serving: only this says it happened.
            if let reload = plugin.lastReload, reload.hasPrefix("failed"), plugin.state != .failed {
                notes.append(Self.note("\(plugin.name): last reload \(reload)"))
            }
        }
        // Versions and errors are what guests and workers wrote: data, never terminal controls.
        rows = rows.map { $0.map(DisplayText.escaped) }
        let widths = header.indices.map { column in rows.map { $0[column].count }.max() ?? 0 }
        let lines = rows.map { row in
            row.enumerated().map { $1.padding(toLength: widths[$0], withPad: " ", startingAt: 0) }
                .joined(separator: "  ").trimmingCharacters(in: .whitespaces)
        }
        return (lines + (notes.isEmpty ? [] : [""] + notes)).joined(separator: "\n")
    }

    static func formatMicros(_ micros: Int) -> String {
        micros < 1000
            ? "\(micros)µs"
            : micros < 1_000_000
                ? String(format: "%.1fms", Double(micros) / 1000)
                : String(format: "%.2fs", Double(micros) / 1e6)
    }

    static func formatRate(_ perSecond: Double) -> String {
        perSecond < 100 ? String(format: "%.1f", perSecond) : String(format: "%.0f", perSecond)
    }

    static func formatBytes(_ bytes: Int) -> String {
        bytes < 1 << 20 ? "\(bytes / 1024)KiB" : String(format: "%.1fMiB", Double(bytes) / Double(1 << 20))
    }
}
