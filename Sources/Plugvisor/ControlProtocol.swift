import Foundation
import PlugvisorProtocol

/// The control socket's envelope mapped onto the supervisor's typed operations: a
/// `ControlRequest` in, a `ControlResponse` out. The HTTP gateway's admin routes answer through
/// it too, so that a request gets the same answer and the same error whichever way it came.
package struct ControlProtocol: Sendable {
    let supervisor: SupervisorCore

    package init(_ supervisor: SupervisorCore) { self.supervisor = supervisor }

    /// Performs one control request (call, status, kill, restart, reload; `stop` is only
    /// acknowledged: stopping is `ControlServer`'s `onStop`). Blocks until it is done.
    package func respond(to request: ControlRequest) -> ControlResponse {
        switch request.op {
        case .call:
            guard let plugin = request.plugin else {
                return ControlResponse(error: PluginError(.badRequest, "call needs a plugin name"))
            }
            switch supervisor.execute(plugin: plugin, context: request.context ?? .object([:])) {
            case let .success(result): return ControlResponse(result: result)
            case let .failure(error): return ControlResponse(error: error)
            }
        case .status:
            return ControlResponse(status: supervisor.status())
        case .kill, .restart:
            guard let plugin = request.plugin else {
                return ControlResponse(error: PluginError(.badRequest, "\(request.op.rawValue) needs a plugin name"))
            }
            let outcome = request.op == .kill ? supervisor.kill(plugin: plugin) : supervisor.restart(plugin: plugin)
            switch outcome {
            case .success:
                let state = (try? supervisor.status(of: plugin).get())?.state.rawValue ?? "?"
                return ControlResponse(result: ["plugin": .string(plugin), "state": .string(state)])
            case let .failure(error): return ControlResponse(error: error)
            }
        case .stop:
            return ControlResponse(result: ["stopping": true])
        case .reload:
            guard let plugin = request.plugin else {
                switch supervisor.reloadManifest() {
                case let .failure(error): return ControlResponse(error: error)
                case let .success(changes):
                    return ControlResponse(result: [
                        "added": .array(changes.added.map { .string($0) }),
                        "removed": .array(changes.removed.map { .string($0) }),
                        "reloaded": .object(changes.reloaded.mapValues { .string($0.summary) }),
                    ])
                }
            }
            switch supervisor.reload(plugin: plugin) {
            case let .failure(error): return ControlResponse(error: error)
            case let .success(.failed(reason)):
                return ControlResponse(
                    error: PluginError(.reloadFailed, plugin: plugin, "\(reason); the previous version goes on serving")
                )
            case let .success(result):
                return ControlResponse(result: ["plugin": .string(plugin), "result": .string(result.summary)])
            }
        }
    }
}

extension Supervisor {
    /// What the control socket would answer `request`, for async callers; the work runs on the
    /// blocking pool. The typed methods (`execute`, `kill`, ...) say more.
    public func respond(to request: ControlRequest) async -> ControlResponse {
        let control = ControlProtocol(core)
        return await runBlocking { control.respond(to: request) }
    }
}
