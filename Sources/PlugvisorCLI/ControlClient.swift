import Foundation
import PlugvisorPosix
import PlugvisorProtocol

/// One request/response exchange with a running supervisor, once it is known to be this
/// user's (or root's): see `ControlSocketTrust`.
struct ControlClient {
    let path: String

    /// With a `timeout`, a supervisor that does not answer in time is an error, not a hang.
    func send(_ request: ControlRequest, timeout: Duration? = nil) -> Result<ControlResponse, PluginError> {
        let socket: OwnedDescriptor
        do throws(ControlSocketTrust.Problem) { socket = try ControlSocketTrust.connect(path: path) } catch {
            switch error {
            case let .notListening(reason):
                return .failure(
                    PluginError(
                        .notRunning,
                        "no supervisor is listening on \(path) (\(reason)); start one with `plugvisor start MANIFEST`"))
            case let .untrusted(reason):
                return .failure(PluginError(.untrustedSocket, "\(reason); nothing was sent"))
            }
        }
        let channel = FrameChannel(descriptor: socket, maxFrameLength: 64 << 20)
        do {
            let deadline = timeout.map { ContinuousClock.now + $0 }
            try channel.send(request, deadline: deadline)
            return .success(try channel.receive(ControlResponse.self, deadline: deadline))
        } catch {
            return .failure(PluginError(.internalError, "control socket \(path): \(error)"))
        }
    }

    func fetchStatus(timeout: Duration? = nil) -> Result<StatusReport, PluginError> {
        send(ControlRequest(op: .status), timeout: timeout).flatMap { response in
            if let error = response.error { return .failure(error) }
            guard let status = response.status else {
                return .failure(PluginError(.internalError, "no status in the answer"))
            }
            return .success(status)
        }
    }

    /// `op` (kill, restart) on plugin `name`; prints the state it is in afterwards.
    func apply(_ op: ControlRequest.Operation, to name: String) {
        switch send(ControlRequest(op: op, plugin: name)) {
        case let .failure(error): Output.fail(error)
        case let .success(response):
            if let error = response.error { Output.fail(error) }
            Output.stdout("\(name): \(response.result?["state"]?.stringValue ?? "?")")
        }
    }
}

/// What the commands print. A typed error is one line of JSON on stderr, then exit 2.
enum Output {
    static func fail(_ error: PluginError) -> Never {
        let line = JSONCoding.compact(["error": error])
        FileHandle.standardError.write(Data((line + "\n").utf8))
        exit(2)
    }

    static func names(_ list: JSONValue) -> String {
        guard case let .array(items) = list else { return "" }
        return items.compactMap(\.stringValue).joined(separator: ", ")
    }

    static func stdout(_ text: String) {
        FileHandle.standardOutput.write(Data((text + "\n").utf8))
    }

    static func stderr(_ text: String) {
        FileHandle.standardError.write(Data((text + "\n").utf8))
    }

    /// Pretty JSON for a person at a terminal, one compact line for a pipe.
    static func json<T: Encodable>(_ value: T) -> String {
        isatty(STDOUT_FILENO) == 1 ? JSONCoding.pretty(value) : JSONCoding.compact(value)
    }
}
