import Dispatch
import PlugvisorProtocol

/// A function the embedding program gives its plugins: a plugin granted it in the manifest
/// (`host_functions: [NAME]`) calls it by name with bytes and gets bytes back. The guest's call
/// travels from its worker to the supervisor as a host request, as `http_request` does; the
/// function runs here, in the embedding program, never in the sandbox.
///
///     let kv = HostFunction(name: "kv_get") { call in
///         guard let value = store[String(decoding: call.input, as: UTF8.self)] else {
///             throw HostFunctionError("no such key")
///         }
///         return Array(value.utf8)
///     }
///     let supervisor = Supervisor(manifest: manifest, hostFunctions: [kv], logger: logger)
public struct HostFunction: Sendable {
    public let name: String
    let body: @Sendable (HostFunctionCall) async throws -> [UInt8]

    /// The most bytes a host function takes or answers.
    public static let maxBytes = HostRequest.maxRequestBytes

    /// How deeply host functions may nest calls of plugins (a plugin's host function calls a
    /// plugin whose host function calls ...): each level holds a blocking thread.
    public static let maxNesting = 8

    /// The plugins whose calls wait, each in a host function, for the code running now
    /// (outermost first). A host function's own calls of plugins carry it, so that a call is
    /// never sent to a worker that waits for its answer.
    @TaskLocal static var waitingCallers: [String] = []

    public init(name: String, _ body: @escaping @Sendable (HostFunctionCall) async throws -> [UInt8]) {
        self.name = name
        self.body = body
    }

    /// Runs the function for `plugin`, waiting at most until `deadline` (the guest call's own):
    /// its output, or why there is none. A function still running at the deadline is cancelled
    /// and left behind; the guest call then times out as any call does.
    /// - Parameter callers: the plugins whose calls wait for `plugin`'s (`waitingCallers`).
    func run(
        _ input: [UInt8], plugin: String, callers: [String] = [], deadline: ContinuousClock.Instant
    ) -> Result<[UInt8], HostFunctionError> {
        final class Outcome: @unchecked Sendable {
            // SAFETY: written once before `done` is signalled, read only after waiting on it.
            var result: Result<[UInt8], HostFunctionError> = .failure(HostFunctionError("no answer"))
            let done = DispatchSemaphore(value: 0)
        }
        let outcome = Outcome()
        let call = HostFunctionCall(plugin: plugin, input: input)
        let body = body
        let task = Self.$waitingCallers.withValue(callers + [plugin]) {
            Task {
                do {
                    let output = try await body(call)
                    outcome.result =
                        output.count <= Self.maxBytes
                        ? .success(output)
                        : .failure(
                            HostFunctionError("it answered \(output.count) bytes, over the \(Self.maxBytes)-byte limit")
                        )
                } catch let error as HostFunctionError {
                    outcome.result = .failure(error)
                } catch {
                    outcome.result = .failure(HostFunctionError("\(error)"))
                }
                outcome.done.signal()
            }
        }
        let left = ContinuousClock.now.duration(to: deadline)
        let nanoseconds = max(0, left.components.seconds * 1_000_000_000 + left.components.attoseconds / 1_000_000_000)
        guard outcome.done.wait(timeout: .now() + .nanoseconds(Int(nanoseconds))) == .success else {
            task.cancel()
            return .failure(HostFunctionError("it did not answer within the call's time left"))
        }
        return outcome.result
    }
}

/// One call of a host function: which plugin calls, with what.
public struct HostFunctionCall: Sendable {
    /// The calling plugin's name in the manifest.
    public let plugin: String
    public let input: [UInt8]
}

/// An error a host function throws for the guest: its message reaches the guest's call.
public struct HostFunctionError: Error, Sendable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
