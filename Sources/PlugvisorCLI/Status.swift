import ArgumentParser
import Foundation
import PlugvisorProtocol

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show each plugin's version, generation, state, workers, calls, errors, latency, restarts and memory."
    )

    @Flag(help: "Print JSON instead of a table.")
    var json = false

    @OptionGroup var control: ControlOptions

    func run() throws {
        switch ControlClient(path: control.path).send(ControlRequest(op: .status)) {
        case let .failure(error): Output.fail(error)
        case let .success(response):
            if let error = response.error { Output.fail(error) }
            guard let status = response.status else {
                Output.fail(PluginError(.internalError, "no status in the answer"))
            }
            Output.stdout(json ? Output.json(status) : Self.table(status))
        }
    }

    static func table(_ status: StatusReport) -> String {
        let header = [
            "PLUGIN", "VERSION", "GEN", "STATE", "PIDS", "CALLS", "ERRORS", "P50", "P99", "RESTARTS", "MEMORY",
        ]
        var rows = [header]
        var notes: [String] = []
        for plugin in status.plugins {
            let rss = plugin.workers.compactMap(\.rssBytes).saturatingSum()
            rows.append([
                plugin.name, plugin.version ?? "-", "\(plugin.generation)", plugin.state.rawValue,
                plugin.workers.isEmpty ? "-" : plugin.workers.map { "\($0.pid)" }.joined(separator: ","),
                "\(plugin.calls)", "\(plugin.errors)",
                plugin.p50Micros.map(formatMicros) ?? "-", plugin.p99Micros.map(formatMicros) ?? "-",
                "\(plugin.restarts)", rss > 0 ? formatBytes(rss) : "-",
            ])
            if let error = plugin.lastError, plugin.state == .failed || plugin.errors > 0 {
                notes.append(
                    DisplayText.escaped(
                        "\(plugin.name): \(plugin.state == .failed ? "failed: " : "last error: ")\(error)"))
            }
            // A failed reload leaves the old version serving: only this says it happened.
            if let reload = plugin.lastReload, reload.hasPrefix("failed"), plugin.state != .failed {
                notes.append(DisplayText.escaped("\(plugin.name): last reload \(reload)"))
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

    static func formatBytes(_ bytes: Int) -> String {
        bytes < 1 << 20 ? "\(bytes / 1024)KiB" : String(format: "%.1fMiB", Double(bytes) / Double(1 << 20))
    }
}
