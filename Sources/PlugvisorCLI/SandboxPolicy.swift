import ArgumentParser
import Foundation
import Glibc
import PlugvisorProtocol
import PlugvisorSandbox

struct SandboxPolicyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sandbox-policy",
        abstract: "Print the seccomp allowlist of a locked-down worker, with the reason for each syscall.",
        discussion: """
            Anything not listed kills the worker with SIGSYS, and the supervisor names the syscall. \
            With --broker: the network broker's denylist instead (what kills it; the rest is allowed).
            """)

    @Flag(help: "The allowlist of a plugin that was granted directories (adds the WASI filesystem calls).")
    var filesystem = false

    @Flag(help: "The allowlist of a plugin with abi: wasi-command (adds its stdin and stdout files).")
    var command = false

    @Flag(help: "The denylist of plugvisor-broker, the process that performs guests' http_request.")
    var broker = false

    @Flag(help: "Print only the syscall names, one per line (for scripts/seccomp-audit.sh).")
    var namesOnly = false

    func validate() throws {
        if broker && (filesystem || command) {
            throw ValidationError("--broker has one policy: drop --filesystem and --command")
        }
    }

    func run() throws {
        let policy =
            broker
            ? SeccompPolicy.broker
            : SeccompPolicy.worker(channel: 3, processID: getpid(), filesystem: filesystem, command: command)
        var printed: Set<String> = []
        for rule in policy.rules {
            if namesOnly {
                if printed.insert(rule.name).inserted { Output.stdout(rule.name) }
            } else {
                let condition =
                    rule.conditions.isEmpty ? "" : " (only \(rule.conditions.map(\.meaning).joined(separator: ", ")))"
                Output.stdout("\(rule.name.padding(toLength: 16, withPad: " ", startingAt: 0)) \(rule.why)\(condition)")
            }
        }
    }
}
