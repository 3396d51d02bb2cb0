import CPlugvisorLinux
import FoundationEssentials
import Glibc
import PlugvisorPosix
import PlugvisorProtocol
import PlugvisorSandbox
import WasmKit

/// The worker process: handshake, load, then one call at a time until the supervisor hangs up.
///
/// It is started by the supervisor with fd 3 = its socketpair end and fd 4 = the module bytes.
public enum PlugvisorWorker {
    static let channelFD: Int32 = 3
    static let moduleFD: Int32 = 4

    public static func main() -> Never {
        // Die with the supervisor; tell a person who runs this binary by hand what it is.
        SupervisedStart.begin(channel: channelFD, program: "plugvisor-worker")
        do { try Lockdown.atStart() } catch { fail("\(error)") }
        let channel = FrameChannel(descriptor: OwnedDescriptor(channelFD), spin: .microseconds(50))
        do {
            try channel.send(WorkerMessage.hello(Hello(pid: getpid())))
            let first = try channel.receive(SupervisorMessage.self)
            switch first {
            case let .inspect(request):
                // Hostile bytes are parsed only under the same lockdown as a load, never as root.
                let bytes: [UInt8]
                do {
                    try Lockdown.setResourceLimits(.worker(memoryLimit: LoadRequest.defaultMemoryLimit))
                    bytes = try readModule()
                    try Lockdown.apply(plan(for: LoadRequest(plugin: "inspect", workerUser: request.workerUser)))
                } catch {
                    fail("\(error)")
                }
                try channel.send(
                    WorkerMessage.inspected(Inspector.report(moduleBytes: bytes, linked: Set(request.linked))))
                exit(0)
            case let .load(request):
                let host: any Guest
                do throws(PluginError) {
                    let limit = request.memoryLimit ?? LoadRequest.defaultMemoryLimit
                    do { try Lockdown.setResourceLimits(.worker(memoryLimit: limit)) } catch {
                        throw PluginError(.loadFailed, plugin: request.plugin, "\(error)")
                    }
                    let bytes = try readModule()
                    let stdio = request.abi == .wasiCommand ? try WasiCommand.makeStdio() : nil
                    // Locked down before the first guest byte is parsed.
                    do { try Lockdown.apply(plan(for: request)) } catch {
                        throw PluginError(.loadFailed, plugin: request.plugin, "\(error)")
                    }
                    let log: (LogLine) -> Void = { line in _ = try? channel.send(WorkerMessage.log(line)) }
                    let hostService: (String, JSONValue) -> JSONValue = { op, request in
                        requestHostService(channel, op: op, request: request)
                    }
                    switch (request.abi, stdio) {
                    case let (.wasiCommand, stdio?):
                        host = try WasiCommand(moduleBytes: bytes, request: request, stdio: stdio)
                    case (.extism, _):
                        host = try ExtismGuest(
                            moduleBytes: bytes, request: request, log: log, hostService: hostService)
                    default:
                        host = try GuestHost(moduleBytes: bytes, request: request, log: log, hostService: hostService)
                    }
                } catch {
                    try channel.send(WorkerMessage.loadFailed(reason: error.message))
                    exit(0)
                }
                try channel.send(WorkerMessage.ready(host.ready))
                serve(host, channel)
            case let .compile(request):
                CompileStep.run(request, channel: channelFD)
            case .call, .hostResult:
                fail("the supervisor sent \(first) before load")
            }
        } catch {
            fail("\(error)")
        }
    }

    /// The worker's sandbox for `request`: its grants, its user, its namespaces, its allowlist.
    private static func plan(for request: LoadRequest) -> LockdownPlan {
        LockdownPlan(
            directories: request.preopens.map(LockdownPlan.Directory.init),
            user: request.workerUser,
            policy: .worker(
                channel: channelFD, processID: getpid(), filesystem: !request.preopens.isEmpty,
                command: request.abi == .wasiCommand))
    }

    /// Asks the supervisor to perform a host service (the worker itself has no network) and
    /// waits for the answer on the same channel: the guest's call is blocked meanwhile anyway.
    private static func requestHostService(_ channel: FrameChannel, op: String, request: JSONValue) -> JSONValue {
        nextHostRequest += 1
        let id = nextHostRequest
        do {
            try channel.send(WorkerMessage.host(HostRequest(id: id, op: op, request: request)))
            while true {
                switch try receive(channel) {
                case let (.hostResult(answer), _) where answer.id == id:
                    return answer.result
                case let (.call(next), context?) where callsSentAhead.count < maxCallsSentAhead:
                    // The supervisor sends the next call while this one runs (pipelining).
                    callsSentAhead.append((next.id, context))
                default:
                    fail("the supervisor answered a host request with something else")
                }
            }
        } catch {
            fail("\(error)")
        }
    }

    nonisolated(unsafe) private static var nextHostRequest: UInt64 = 0
    /// Calls that came while the guest waited for a host service, run next in the order sent.
    nonisolated(unsafe) private static var callsSentAhead: [(id: UInt64, context: CallContext)] = []
    /// The supervisor sends at most this many calls behind the running one; more is a bug.
    private static let maxCallsSentAhead = Pipelining.depth - 1

    private static func readModule() throws(PluginError) -> [UInt8] {
        defer { close(moduleFD) }
        do { return try Descriptors.readAll(moduleFD, limit: 256 << 20) } catch {
            throw PluginError(.loadFailed, "cannot read the module: \(error)")
        }
    }

    private static func serve(_ host: any Guest, _ channel: FrameChannel) -> Never {
        while true {
            let id: UInt64
            let context: CallContext
            if !callsSentAhead.isEmpty {
                (id, context) = callsSentAhead.removeFirst()
            } else {
                do {
                    let (message, received) = try receive(channel)
                    guard case let .call(request) = message, let received else {
                        fail("unexpected message while serving: \(message)")
                    }
                    (id, context) = (request.id, received)
                } catch .closed {
                    // The supervisor hung up: it is shutting down (or gone). Let the guest clean up.
                    host.destroy()
                    exit(0)
                } catch {
                    fail("\(error)")
                }
            }
            let started = ContinuousClock.now
            let outcome = host.execute(context: context)
            let elapsed = ContinuousClock.now - started
            let stats = CallStats(micros: Int(elapsed.microseconds), memoryBytes: host.memoryBytes)
            do {
                switch outcome {
                case let .success(answer):
                    try channel.writeAll(CallFrame.result(id: id, answer: answer, stats: stats))
                case let .failure(error):
                    try channel.send(WorkerMessage.result(CallResult(id: id, error: error, stats: stats)))
                }
            } catch {
                fail("\(error)")
            }
            host.prepareNextCall()
        }
    }

    /// The supervisor's next message; for a call, its context too, as the bytes it came as.
    private static func receive(_ channel: FrameChannel) throws(ChannelError) -> (SupervisorMessage, CallContext?) {
        let body = try channel.receiveFrame()
        if let (id, context) = CallFrame.parsedCall(body) {
            return (.call(CallRequest(id: id, fn: .execute)), CallContext(json: body[context]))
        }
        let message = try FrameChannel.decode(SupervisorMessage.self, from: body)
        guard case let .call(request) = message else { return (message, nil) }
        do { return (message, try CallContext(request.payload ?? .object([:]))) } catch {
            throw .malformed("the call's context cannot be written as JSON: \(error)")
        }
    }

    static func writeError(_ line: String) {
        let bytes = Array((line + "\n").utf8)
        _ = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
    }

    private static func fail(_ message: String) -> Never {
        writeError("plugvisor-worker: \(message)")
        exit(70)
    }
}

enum Inspector {
    static func report(moduleBytes: [UInt8], linked: Set<String> = []) -> InspectReport {
        let shape: ModuleShape
        do { shape = try ModuleShape(bytes: moduleBytes) } catch {
            return InspectReport(
                abi: nil, exports: [], imports: [], memoryMinPages: nil, memoryMaxPages: nil,
                problems: [ModuleShape.notAModule(error, bytes: moduleBytes)], capabilities: [],
                sizeBytes: moduleBytes.count)
        }
        let abi = ABICheck.detectABI(shape)
        var problems = ABICheck.problems(shape, abi: abi?.guestABI ?? .plugvisor, linked: linked).map(\.description)
        // The shape comes from the declaring sections alone; code and data are checked here.
        do { _ = try parseWasm(bytes: moduleBytes) } catch {
            problems.append(ModuleShape.notAModule(error, bytes: moduleBytes))
        }
        let items = shape.moduleItems
        return InspectReport(
            abi: abi, exports: items.exports, imports: items.imports, memoryMinPages: shape.memoryMinPages,
            memoryMaxPages: shape.memoryMaxPages, problems: problems,
            capabilities: ABICheck.capabilities(shape),
            sizeBytes: moduleBytes.count, functions: abi == .extism ? ABICheck.extismFunctions(shape) : nil)
    }
}

/// A loaded plugin as the serve loop sees it, whatever its ABI.
protocol Guest {
    var ready: ReadyInfo { get }
    var memoryBytes: Int { get }
    /// The JSON of a checked result object (DESIGN §4), or why the call failed.
    func execute(context: CallContext) -> Result<[UInt8], PluginError>
    /// Work for between calls, once the result is sent (a fresh instance after a spent one).
    func prepareNextCall()
    func destroy()
}

extension GuestHost: Guest {
    func prepareNextCall() {}
}

extension ExtismGuest: Guest {}

extension WasiCommand: Guest {
    var memoryBytes: Int { 0 }
    func prepareNextCall() {}
    func destroy() {}
}
