/// Messages on the supervisor ⇄ worker socketpair (DESIGN §3). Each is one JSON object with a
/// `type` member; the supervisor treats every byte coming from a worker as hostile.
public enum ProtocolVersion {
    /// Bumped whenever a message changes incompatibly. 2: the supervisor may send a worker its
    /// next call before the current one's result (pipelining), even while a host request of the
    /// current one waits for its answer.
    public static let current = 2
}

/// How many calls a worker's channel holds at most: the one the worker runs and those the
/// supervisor sent behind it, which a worker whose guest waits for a host service keeps and runs
/// next, in order. Deep enough that the callers of one busy worker wait on its channel rather
/// than in the supervisor's queue (RATIONALE, "Why pipeline calls behind another, and why
/// eight deep?").
public enum Pipelining {
    public static let depth = 8
}

/// The worker's first frame. `plugvisor` carries the protocol version (go-plugin style: a
/// friendly mismatch diagnosis, not a security check).
public struct Hello: Codable, Sendable, Equatable {
    public var plugvisor: Int
    public var pid: Int32
    public init(plugvisor: Int = ProtocolVersion.current, pid: Int32) {
        self.plugvisor = plugvisor
        self.pid = pid
    }
}

/// A WASI preopen: host directory `host` appears to the guest at `guest`.
public struct Preopen: Codable, Sendable, Equatable {
    public var host: String
    public var guest: String
    public var readOnly: Bool
    public init(host: String, guest: String, readOnly: Bool) {
        self.host = host
        self.guest = guest
        self.readOnly = readOnly
    }
}

/// How the host talks to the guest module.
public enum GuestABI: String, Codable, Sendable, CaseIterable {
    /// allocate/execute exports exchanging JSON through linear memory (DESIGN §4).
    case plugvisor
    /// A WASI command (`_start`): context JSON on stdin, result JSON on stdout.
    case wasiCommand = "wasi-command"
    /// An Extism plugin: exported functions called with raw bytes through plugvisor's Extism
    /// kernel (`extism:host/env`); see `ExtismCall`.
    case extism
}

/// Everything a worker needs to set up one plugin. The module's bytes travel separately, as a
/// sealed memfd on fd 4, so that what runs is exactly what the supervisor hashed.
public struct LoadRequest: Codable, Sendable, Equatable {
    public var plugin: String
    public var abi: GuestABI
    /// Linear memory cap in bytes; nil means `defaultMemoryLimit`.
    public var memoryLimit: Int?
    public static let defaultMemoryLimit = 128 << 20
    /// Per-call instruction budget; nil means unmetered.
    public var fuel: UInt64?
    public var env: [String: String]
    public var config: [String: String]
    public var preopens: [Preopen]
    /// Ceiling on one result the guest returns, in bytes.
    public var maxResultBytes: Int
    public static let defaultMaxResultBytes = 8 << 20
    /// When the worker starts as root, it drops to this user after opening its grants.
    public var workerUser: WorkerUser?
    /// Test-only: links `plugvisor.sandbox_drill`, which attempts a forbidden syscall.
    public var sandboxDrill: Bool
    /// argv of a `wasi-command` plugin.
    public var args: [String]
    /// Function imports nothing grants are linked as traps instead of refused.
    public var trapUnknownImports: Bool
    /// For `abi: extism`: the most bytes the plugin's vars (keys and values) may hold; 0 disables them.
    public var maxVarBytes: Int
    public static let defaultMaxVarBytes = 1 << 20
    /// For `abi: extism`: modules linked by name for the plugin to import from, in the order
    /// they are instantiated. Their bytes follow the plugin's own on fd 4, in this order.
    public var linkedModules: [LinkedModule] = []
    /// Host functions of the embedding program granted to the plugin, by name.
    public var hostFunctions: [String] = []
    /// The supervisor's log level (`trace` … `critical`): lines below it are dropped in the
    /// worker, and an Extism plugin's `get_log_level` answers from it.
    public var logLevel: String

    public init(
        plugin: String, abi: GuestABI = .plugvisor, memoryLimit: Int? = nil, fuel: UInt64? = nil,
        env: [String: String] = [:], config: [String: String] = [:], preopens: [Preopen] = [],
        maxResultBytes: Int = defaultMaxResultBytes, workerUser: WorkerUser? = nil, sandboxDrill: Bool = false,
        args: [String] = [], trapUnknownImports: Bool = false, maxVarBytes: Int = defaultMaxVarBytes,
        logLevel: String = "info"
    ) {
        self.plugin = plugin
        self.abi = abi
        self.memoryLimit = memoryLimit
        self.fuel = fuel
        self.env = env
        self.config = config
        self.preopens = preopens
        self.maxResultBytes = maxResultBytes
        self.workerUser = workerUser
        self.sandboxDrill = sandboxDrill
        self.args = args
        self.trapUnknownImports = trapUnknownImports
        self.maxVarBytes = maxVarBytes
        self.logLevel = logLevel
    }
}

/// A module an `abi: extism` plugin imports from by `name` (Extism's manifest `wasm` list).
public struct LinkedModule: Codable, Sendable, Equatable {
    public var name: String
    public var byteCount: Int
    public init(name: String, byteCount: Int) {
        self.name = name
        self.byteCount = byteCount
    }
}

/// The user a process drops to when it starts as root: worker, broker and inspector alike.
public struct WorkerUser: Codable, Sendable, Equatable {
    public var uid: UInt32
    public var gid: UInt32
    public init(uid: UInt32, gid: UInt32) {
        self.uid = uid
        self.gid = gid
    }

    /// `UID:GID`, as `plugvisor-broker --user` takes it.
    public var argument: String { "\(uid):\(gid)" }

    /// Reads `argument`'s form; nil for anything else.
    public init?(argument: String) {
        let parts = argument.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, let uid = UInt32(parts[0]), let gid = UInt32(parts[1]) else { return nil }
        self.init(uid: uid, gid: gid)
    }
}

/// One import or export of a module, as `plugvisor inspect` reports it.
public struct ModuleItem: Codable, Sendable, Equatable {
    public var module: String?
    public var name: String
    /// "func", "memory", "table" or "global".
    public var kind: String
    /// For functions, e.g. "(i32, i32) -> i64".
    public var signature: String?
    public init(module: String? = nil, name: String, kind: String, signature: String? = nil) {
        self.module = module
        self.name = name
        self.kind = kind
        self.signature = signature
    }
}

/// The worker's answer to `load` when the module is instantiated and ready for calls.
/// (Earlier workers also sent `exports` and `imports`; the decoder ignores them.)
public struct ReadyInfo: Codable, Sendable, Equatable {
    /// What the guest's `meta` export answered, if it has one.
    public var meta: JSONValue?
    /// Linear memory size in bytes after instantiation.
    public var memoryBytes: Int
    public init(meta: JSONValue?, memoryBytes: Int) {
        self.meta = meta
        self.memoryBytes = memoryBytes
    }
}

public struct CallRequest: Codable, Sendable, Equatable {
    /// Only `execute`: the supervisor asks for `meta` through `ready`, and a worker runs the
    /// guest's `destroy` when its channel closes.
    public enum Function: String, Codable, Sendable {
        case execute
    }
    public var id: UInt64
    public var fn: Function
    /// For `execute`: the plugin context `{"request_id", "headers", "parameters"}`.
    public var payload: JSONValue?
    public init(id: UInt64, fn: Function, payload: JSONValue? = nil) {
        self.id = id
        self.fn = fn
        self.payload = payload
    }
}

public struct CallStats: Codable, Sendable, Equatable {
    /// Time spent inside the worker, guest code included.
    public var micros: Int
    public var fuelUsed: UInt64?
    public var memoryBytes: Int?
    public init(micros: Int, fuelUsed: UInt64? = nil, memoryBytes: Int? = nil) {
        self.micros = micros
        self.fuelUsed = fuelUsed
        self.memoryBytes = memoryBytes
    }
}

public struct CallResult: Codable, Sendable, Equatable {
    public var id: UInt64
    /// The guest's JSON answer when the call completed.
    public var payload: JSONValue?
    /// Set instead of `payload` when the call could not complete.
    public var error: PluginError?
    public var stats: CallStats?
    public init(id: UInt64, payload: JSONValue? = nil, error: PluginError? = nil, stats: CallStats? = nil) {
        self.id = id
        self.payload = payload
        self.error = error
        self.stats = stats
    }

    /// The codes a worker may answer a call with: what its guest can cause, and the worker's
    /// own refusals. Any other (`timeout`, `killed`, ...) is the supervisor's to give, and a
    /// worker that claims one breaks the protocol.
    public static let workerErrorCodes: Set<PluginError.Code> = [
        .trap, .outOfFuel, .invalidResult, .outOfMemory,
        .badRequest,  // a context the guest cannot take (too large for a 32-bit guest)
        .internalError,  // a WASI command's stdio could not be set up
    ]
}

public struct LogLine: Codable, Sendable, Equatable {
    public var level: String
    public var message: String
    public init(level: String, message: String) {
        self.level = level
        self.message = message
    }
}

/// A brokered host service the guest asked for during a call (the worker has no network).
public struct HostRequest: Codable, Sendable, Equatable {
    /// The largest request a guest may pass to a host service, as JSON.
    public static let maxRequestBytes = 1 << 20

    public var id: UInt64
    /// "http".
    public var op: String
    public var request: JSONValue
    public init(id: UInt64, op: String, request: JSONValue) {
        self.id = id
        self.op = op
        self.request = request
    }
}

public struct HostResult: Codable, Sendable, Equatable {
    public var id: UInt64
    public var result: JSONValue
    public init(id: UInt64, result: JSONValue) {
        self.id = id
        self.result = result
    }
}

/// The largest frame a worker may send, by what the supervisor waits for: it refuses a frame
/// over its ceiling from the header, before buffering any of it, and checks each message's own
/// ceiling once decoded.
public enum WorkerFrameCeiling {
    /// Room for a message's members around its payload (ids, type, stats, an error's message).
    public static let envelope = 64 * 1024
    /// A `log` frame: a message of `LogLine.maxMessageBytes`, even if every byte were a control
    /// character that JSON spells as six (`\u001b`).
    public static let log = 6 * LogLine.maxMessageBytes + envelope
    /// A `host` frame: the guest's request is re-encoded by the worker, which can lengthen
    /// numbers (`1e9` becomes `1000000000`).
    public static let host = 4 * HostRequest.maxRequestBytes + envelope
    /// A `result` frame, the largest a worker sends during a call: the guest's answer (at most
    /// `maxResultBytes`), re-encoded, plus envelope.
    public static func result(maxResultBytes: Int) -> Int { maxResultBytes + maxResultBytes / 8 + envelope }
}

public enum WorkerMessage: Sendable, Equatable {
    case hello(Hello)
    case ready(ReadyInfo)
    case loadFailed(reason: String)
    case result(CallResult)
    case log(LogLine)
    case inspected(InspectReport)
    case host(HostRequest)
}

public enum SupervisorMessage: Sendable, Equatable {
    case load(LoadRequest)
    case call(CallRequest)
    /// Describe the module on fd 4 without running any of it.
    case inspect(InspectRequest)
    case hostResult(HostResult)
    /// Run a compiler locked down: the worker applies `CompileRequest`'s sandbox, points its
    /// stdout and stderr at the channel (which carries the diagnostics from then on, as bytes),
    /// and executes the program.
    case compile(CompileRequest)
}

private enum TypeKey: String, CodingKey { case type, reason }

/// A message's `type`, read from our decoder's tree without a keyed container (every call's
/// frames come this way); through one when it is missing or not a string, for its error.
private func messageType(_ decoder: Decoder) throws -> String {
    if let decoder = decoder as? JSONValueDecoder, case let .string(type)? = decoder.value["type"] { return type }
    return try decoder.container(keyedBy: TypeKey.self).decode(String.self, forKey: .type)
}

extension WorkerMessage: Codable {
    public init(from decoder: Decoder) throws {
        switch try messageType(decoder) {
        case "hello": self = .hello(try Hello(from: decoder))
        case "ready": self = .ready(try ReadyInfo(from: decoder))
        case "load_failed":
            self = .loadFailed(
                reason: try decoder.container(keyedBy: TypeKey.self).decode(String.self, forKey: .reason))
        case "result": self = .result(try CallResult(from: decoder))
        case "log": self = .log(try LogLine(from: decoder))
        case "inspected": self = .inspected(try InspectReport(from: decoder))
        case "host": self = .host(try HostRequest(from: decoder))
        case let other:
            throw DecodingError.dataCorruptedError(
                forKey: .type, in: try decoder.container(keyedBy: TypeKey.self),
                debugDescription: "unknown worker message type \"\(other)\"")
        }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: TypeKey.self)
        switch self {
        case let .hello(m):
            try c.encode("hello", forKey: .type)
            try m.encode(to: encoder)
        case let .ready(m):
            try c.encode("ready", forKey: .type)
            try m.encode(to: encoder)
        case let .loadFailed(reason):
            try c.encode("load_failed", forKey: .type)
            try c.encode(reason, forKey: .reason)
        case let .result(m):
            try c.encode("result", forKey: .type)
            try m.encode(to: encoder)
        case let .log(m):
            try c.encode("log", forKey: .type)
            try m.encode(to: encoder)
        case let .inspected(m):
            try c.encode("inspected", forKey: .type)
            try m.encode(to: encoder)
        case let .host(m):
            try c.encode("host", forKey: .type)
            try m.encode(to: encoder)
        }
    }
}

extension SupervisorMessage: Codable {
    public init(from decoder: Decoder) throws {
        switch try messageType(decoder) {
        case "load": self = .load(try LoadRequest(from: decoder))
        case "call": self = .call(try CallRequest(from: decoder))
        case "inspect": self = .inspect(try InspectRequest(from: decoder))
        case "host_result": self = .hostResult(try HostResult(from: decoder))
        case "compile": self = .compile(try CompileRequest(from: decoder))
        case let other:
            throw DecodingError.dataCorruptedError(
                forKey: .type, in: try decoder.container(keyedBy: TypeKey.self),
                debugDescription: "unknown supervisor message type \"\(other)\"")
        }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: TypeKey.self)
        switch self {
        case let .load(m):
            try c.encode("load", forKey: .type)
            try m.encode(to: encoder)
        case let .call(m):
            try c.encode("call", forKey: .type)
            try m.encode(to: encoder)
        case let .inspect(m):
            try c.encode("inspect", forKey: .type)
            try m.encode(to: encoder)
        case let .hostResult(m):
            try c.encode("host_result", forKey: .type)
            try m.encode(to: encoder)
        case let .compile(m):
            try c.encode("compile", forKey: .type)
            try m.encode(to: encoder)
        }
    }
}

/// A build step of a plugin from source (the compiler, then the linker), run by a worker
/// process that locks itself down first: only `directories` exist for it, in namespaces of its
/// own (no network), as `workerUser` when it starts as root, within `limits`.
public struct CompileRequest: Codable, Sendable, Equatable {
    public struct Directory: Codable, Sendable, Equatable {
        /// `list`: a folder holding other grants, whose entries may be listed; nothing else of
        /// it is visible.
        public enum Access: String, Codable, Sendable { case read, execute, write, list }
        public var path: String
        public var access: Access
        public init(_ path: String, _ access: Access) {
            self.path = path
            self.access = access
        }
    }
    public struct Limits: Codable, Sendable, Equatable {
        public var cpuSeconds: UInt64
        public var dataBytes: UInt64
        public var fileBytes: UInt64
        public init(cpuSeconds: UInt64, dataBytes: UInt64, fileBytes: UInt64) {
            self.cpuSeconds = cpuSeconds
            self.dataBytes = dataBytes
            self.fileBytes = fileBytes
        }
    }
    /// Absolute path; argv[0] is this path too.
    public var program: String
    public var arguments: [String]
    public var environment: [String: String]
    public var directories: [Directory]
    public var workerUser: WorkerUser?
    public var limits: Limits

    public init(
        program: String, arguments: [String], environment: [String: String], directories: [Directory],
        workerUser: WorkerUser?, limits: Limits
    ) {
        self.program = program
        self.arguments = arguments
        self.environment = environment
        self.directories = directories
        self.workerUser = workerUser
        self.limits = limits
    }
}

/// `plugvisor inspect`'s request: the worker parses the module locked down as for a load, as
/// `workerUser` when it starts as root.
public struct InspectRequest: Codable, Sendable, Equatable {
    public var workerUser: WorkerUser?
    /// Names of the modules linked beside an `abi: extism` plugin, which it may import from.
    public var linked: [String]
    public init(workerUser: WorkerUser? = nil, linked: [String] = []) {
        self.workerUser = workerUser
        self.linked = linked
    }

    private enum CodingKeys: String, CodingKey { case workerUser, linked }

    /// Every member may be missing: `{"type":"inspect"}` inspects a module alone, as root.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        workerUser = try c.decodeIfPresent(WorkerUser.self, forKey: .workerUser)
        linked = try c.decodeIfPresent([String].self, forKey: .linked) ?? []
    }
}

/// What `plugvisor inspect` reports about a module, computed by a worker (the supervisor never
/// parses guest bytes itself).
public struct InspectReport: Codable, Sendable, Equatable {
    /// The ABI a module speaks, judged by its exports; the raw values are the wire strings.
    public enum ABI: String, Codable, Sendable, CaseIterable {
        case plugvisor
        /// The plugvisor ABI with the Go pattern's results: an i32 pointer to one JSON value.
        case plugvisorI32 = "plugvisor-i32"
        case wasiCommand = "wasi-command"
        case extism

        /// What a manifest's `abi:` says for such a module.
        public var guestABI: GuestABI {
            switch self {
            case .plugvisor, .plugvisorI32: return .plugvisor
            case .wasiCommand: return .wasiCommand
            case .extism: return .extism
            }
        }
    }

    /// Nil when the module speaks none.
    public var abi: ABI?
    public var exports: [ModuleItem]
    public var imports: [ModuleItem]
    /// Linear memory limits in 64 KiB pages.
    public var memoryMinPages: UInt64?
    public var memoryMaxPages: UInt64?
    /// What the host would refuse or miss, one sentence each; empty when it would load.
    public var problems: [String]
    /// Capabilities its imports ask for (filesystem, env, time, random, network, config, log).
    public var capabilities: [String]
    public var sizeBytes: Int
    public var sha256: String?
    /// For an Extism plugin: the exports a call may name (`plugvisor call NAME --function F`).
    public var functions: [String]?
    /// For Swift sources (`plugvisor inspect greeter.swift`): the sources and the cached module built from them.
    public var source: String?
    public var module: String?

    public init(
        abi: ABI?, exports: [ModuleItem], imports: [ModuleItem], memoryMinPages: UInt64?, memoryMaxPages: UInt64?,
        problems: [String], capabilities: [String], sizeBytes: Int, sha256: String? = nil, functions: [String]? = nil
    ) {
        self.abi = abi
        self.exports = exports
        self.imports = imports
        self.memoryMinPages = memoryMinPages
        self.memoryMaxPages = memoryMaxPages
        self.problems = problems
        self.capabilities = capabilities
        self.sizeBytes = sizeBytes
        self.sha256 = sha256
        self.functions = functions
    }
}
