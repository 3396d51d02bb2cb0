import Foundation
import PlugvisorManifest
import PlugvisorPosix
import PlugvisorProtocol

/// The wire protocol with one worker: its handshake, its calls with the host services a guest
/// asks for on the way, and what each broken promise means (`ChannelError` → `PluginError`).
/// Whatever the worker sends is believed only as far as it can be checked; a worker that
/// breaks the protocol is killed, and the error says what it did.
struct WorkerConnection {
    let worker: WorkerHandle
    let plugin: String

    /// A host service a guest asked for during its call, answered within the call's deadline.
    typealias HostService = (HostRequest, PluginSpec, ContinuousClock.Instant) -> HostResult

    /// Starting a worker process and compiling its module take time of their own: a short call
    /// timeout would fail loads on a busy machine, so a load gets at least this.
    static let minimumLoadTime = Duration.seconds(2)

    /// hello → load → ready, within the plugin's timeout (which also bounds a runaway start function).
    func handshake(_ request: LoadRequest, spec: PluginSpec) throws(PluginError) -> ReadyInfo {
        let limit = max(spec.timeout, Self.minimumLoadTime)
        let deadline = ContinuousClock.now + limit
        do {
            let hello = try worker.channel.receive(
                WorkerMessage.self, deadline: deadline, limit: WorkerFrameCeiling.envelope)
            guard case let .hello(h) = hello else {
                throw violation("did not start with hello")
            }
            guard h.plugvisor == ProtocolVersion.current else {
                throw violation(
                    "speaks protocol \(h.plugvisor), this supervisor \(ProtocolVersion.current): reinstall plugvisor-worker"
                )
            }
            try worker.channel.send(SupervisorMessage.load(request), deadline: deadline)
            // `ready` carries the guest's meta answer, at most a result's size.
            let ceiling = WorkerFrameCeiling.result(maxResultBytes: request.maxResultBytes)
            while true {
                switch try worker.channel.receive(WorkerMessage.self, deadline: deadline, limit: ceiling) {
                case let .ready(info):
                    if let problem = Self.checkMemory(info.memoryBytes, spec: spec) { throw violation(problem) }
                    return info
                case let .loadFailed(reason):
                    throw PluginError(.loadFailed, plugin: plugin, reason)
                case let .log(line):
                    try checkLogFrame()
                    worker.logGuest(line)
                default:
                    throw violation("sent an unexpected message during load")
                }
            }
        } catch let error as ChannelError {
            switch error {
            case .timedOut:
                worker.kill(because: .timeout)
                let which =
                    spec.timeout >= Self.minimumLoadTime
                    ? "the plugin's timeout of \(limit)"
                    : "\(limit) (the minimum a load gets; the plugin's timeout of \(spec.timeout) bounds calls)"
                throw PluginError(
                    .loadFailed, plugin: plugin, "loading took longer than \(which): a runaway start function?")
            case .closed:
                _ = worker.awaitExit(timeout: .seconds(2))
                throw PluginError(
                    .workerCrashed, plugin: plugin, "worker died while loading: \(worker.crashDescription())")
            default:
                throw violation("broke the protocol during load (\(error))")
            }
        } catch let error as PluginError {
            throw error
        } catch {
            throw PluginError(.internalError, plugin: plugin, "\(error)")
        }
    }

    /// A call encoded once for the wire, whichever worker it goes to (again, when the first
    /// one was lost before running it).
    struct EncodedCall {
        let id: UInt64
        let frame: [UInt8]

        init(id: UInt64, context: JSONValue) throws(ChannelError) {
            self.id = id
            do { frame = try CallFrame.call(id: id, context: context) } catch {
                throw .malformed("cannot encode the call: \(error)")
            }
        }
    }

    enum CallOutcome {
        /// The worker's answer, or what became of the call.
        case answered(Result<JSONValue, PluginError>)
        /// It was sent behind a call whose worker was lost before answering: it never ran.
        case notRun
        /// The worker was idle but had sent something nobody asked for, or hung up: it must
        /// answer no call. Nothing was sent.
        case unusable(FrameChannel.UnexpectedInput)
    }

    /// Sends one call (behind the worker's current one, if any: see `CallPipeline`), waits for
    /// its turn and reads until its result, forwarding guest log lines and serving host requests
    /// on the way. Every send and receive keeps to `deadline`, whatever the worker does.
    func call(
        _ call: EncodedCall, spec: PluginSpec, deadline: ContinuousClock.Instant, hostService: HostService
    ) -> CallOutcome {
        let sent = ContinuousClock.now
        let ticket: CallPipeline.Ticket
        switch worker.pipeline.send(
            check: { worker.channel.unexpectedInput() },
            { () throws(ChannelError) in try worker.channel.writeAll(call.frame, deadline: deadline) })
        {
        case .lost:
            return .notRun
        case let .refused(input):
            return .unusable(input)
        case let .failed(error, sentToIdle):
            // Behind a call, a hung-up channel means the worker is gone before reaching this one.
            if !sentToIdle && error == .closed { return .notRun }
            return .answered(.failure(failure(error, spec: spec, deadline: deadline)))
        case let .sent(sentTicket):
            ticket = sentTicket
        }
        if !ticket.sentToIdle {
            // The call ahead ends by its own deadline, no later than this one's.
            switch worker.pipeline.awaitTurn(ticket, until: deadline + .seconds(1)) {
            case .yours:
                break
            case .notRun:
                return .notRun
            case .stuck:
                worker.pipeline.lose()
                worker.kill(because: .internalError)
                return .answered(
                    .failure(
                        PluginError(
                            .internalError, plugin: plugin,
                            "the call ahead of this one on worker \(worker.pid) never ended")))
            }
        }
        do throws(PluginError) {
            let answer = try receiveAnswer(
                to: call.id, spec: spec, deadline: deadline, sent: sent, hostService: hostService)
            worker.pipeline.answered(ticket)
            return .answered(answer)
        } catch {
            worker.pipeline.lose()
            return .answered(.failure(error))
        }
    }

    /// Reads until call `id`'s result: the worker's answer (a guest result or a guest error).
    /// - Throws: what became of the call when the worker did not answer; the worker is lost.
    private func receiveAnswer(
        to id: UInt64, spec: PluginSpec, deadline: ContinuousClock.Instant, sent: ContinuousClock.Instant,
        hostService: HostService
    ) throws(PluginError) -> Result<JSONValue, PluginError> {
        let ceiling = WorkerFrameCeiling.result(maxResultBytes: LoadRequest.defaultMaxResultBytes)
        do {
            while true {
                switch try worker.channel.receive(
                    WorkerMessage.self, deadline: deadline, limit: ceiling,
                    known: { CallFrame.answeredResult($0).map(WorkerMessage.result) })
                {
                case let .log(line):
                    try checkLogFrame()
                    worker.logGuest(line)
                case let .host(hostRequest):
                    guard worker.channel.lastFrameLength <= WorkerFrameCeiling.host else {
                        throw violation(
                            "sent a \(worker.channel.lastFrameLength)-byte host request, over the \(WorkerFrameCeiling.host)-byte ceiling"
                        )
                    }
                    let answer = hostService(hostRequest, spec, deadline)
                    try worker.channel.send(SupervisorMessage.hostResult(answer), deadline: deadline)
                case let .result(result) where result.id == id:
                    return try check(result, spec: spec, elapsed: ContinuousClock.now - sent)
                default:
                    throw violation("sent an unexpected message")
                }
            }
        } catch let error as PluginError {
            throw error
        } catch let error as ChannelError {
            throw failure(error, spec: spec, deadline: deadline)
        } catch {
            throw violation("broke the protocol (\(error))")
        }
    }

    /// What a broken channel during a call means for its caller; the worker is killed where it
    /// still lives.
    private func failure(_ error: ChannelError, spec: PluginSpec, deadline: ContinuousClock.Instant) -> PluginError {
        switch error {
        case .timedOut:
            worker.kill(because: .timeout)
            return PluginError(
                .timeout, plugin: plugin,
                "call ran longer than \(spec.timeout); worker \(worker.pid) was killed and is being replaced")
        case .closed:
            // Its end closed: it died, or it hung up and lingers, which a worker must not do.
            let grace = min(max(ContinuousClock.now.duration(to: deadline), .zero) + .milliseconds(50), .seconds(1))
            guard worker.awaitExit(timeout: grace) != nil else {
                return violation("closed its channel during a call without exiting")
            }
            if let reason = worker.killedReason(), reason != .protocolViolation {
                return PluginError(reason, plugin: plugin, "worker \(worker.pid) was killed (\(reason))")
            }
            return PluginError(.workerCrashed, plugin: plugin, worker.crashDescription())
        default:
            return violation("broke the protocol (\(error))")
        }
    }

    /// Closing our end is the worker's cue to call destroy() and exit.
    func retire() { worker.retire() }

    /// A worker's result, believed only as far as it can be checked: its error code must be one
    /// a worker may give, its numbers within range, its payload a guest answer.
    private func check(
        _ result: CallResult, spec: PluginSpec, elapsed: Duration
    )
        throws(PluginError) -> Result<JSONValue, PluginError>
    {
        if let stats = result.stats {
            if let problem = Self.checkMemory(stats.memoryBytes, spec: spec) { throw violation(problem) }
            guard (0...max(0, elapsed.microseconds)).contains(Int64(stats.micros)) else {
                throw violation("reported a call of \(stats.micros) µs that took \(elapsed.microseconds) µs")
            }
            worker.noteMemory(stats.memoryBytes)
        }
        if let error = result.error {
            guard CallResult.workerErrorCodes.contains(error.code) else {
                throw violation("answered with error code \(error.code), which only the supervisor gives")
            }
            return .failure(PluginError(error.code, plugin: plugin, error.message))
        }
        guard let payload = result.payload, payload["success"]?.boolValue != nil else {
            throw violation("sent a result without a success flag")
        }
        return .success(payload)
    }

    /// Nil when `bytes` (a worker's report of its guest's linear memory) can be true: at most the
    /// plugin's memory cap, which the worker enforces.
    static func checkMemory(_ bytes: Int?, spec: PluginSpec) -> String? {
        guard let bytes else { return nil }
        let cap = spec.memory ?? LoadRequest.defaultMemoryLimit
        guard bytes < 0 || bytes > cap else { return nil }
        return "reported \(bytes) bytes of guest memory, outside 0...\(cap) (its cap)"
    }

    private func checkLogFrame() throws(PluginError) {
        let length = worker.channel.lastFrameLength
        guard length <= WorkerFrameCeiling.log else {
            throw violation("sent a \(length)-byte log frame, over the \(WorkerFrameCeiling.log)-byte ceiling")
        }
    }

    /// Kills the worker for breaking the protocol; the error says what it did.
    private func violation(_ what: String) -> PluginError {
        worker.kill(because: .protocolViolation)
        return PluginError(.protocolViolation, plugin: plugin, "worker \(worker.pid) \(what); it was killed")
    }
}
