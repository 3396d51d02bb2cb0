import FoundationEssentials
import PlugvisorProtocol
import PlugvisorSandbox
import WasmKit

/// The `plugvisor` host module a guest may import: log, config_get, http_request, host_call.
///
/// Every pointer and length the guest passes is checked against its memory before use: an
/// out-of-range one traps the guest, never the worker.
final class HostModule {
    let plugin: String
    let config: [String: String]
    private let sink: (LogLine) -> Void
    private var limiter = LogBudget.guest

    static let maxLogLine = LogLine.maxMessageBytes
    static let levels = ["trace", "debug", "info", "notice", "warning", "error", "critical"]

    let sandboxDrill: Bool
    /// Hands a host-service request (`http`) to the supervisor and waits for its answer.
    let hostService: (String, JSONValue) -> JSONValue

    static let maxHostRequest = HostRequest.maxRequestBytes

    /// The index in `levels` of the supervisor's log level.
    let minimumLevel: Int

    init(
        plugin: String, config: [String: String], sandboxDrill: Bool, logLevel: String = "trace",
        log: @escaping (LogLine) -> Void, hostService: @escaping (String, JSONValue) -> JSONValue
    ) {
        self.plugin = plugin
        minimumLevel = Self.levels.firstIndex(of: logLevel) ?? 0
        self.config = config
        self.sandboxDrill = sandboxDrill
        self.sink = log
        self.hostService = hostService
    }

    func log(_ line: LogLine) { sink(line) }

    /// Whether a guest's line at `level` is logged at all: the supervisor would drop a line below
    /// its level, so it is dropped here, before it costs the rate limit or the channel anything.
    func logs(_ level: String) -> Bool {
        (Self.levels.firstIndex(of: level) ?? 0) >= minimumLevel
    }

    /// Logs a guest's line at `level`: `bytes`, the first at most `maxLogLine` bytes of a
    /// `length`-byte message, within the guest's rate limit.
    func guestLog(level: String, bytes: [UInt8], length: Int) {
        let verdict = limiter.admit(bytes: bytes.count, now: .now)
        if case let .logAfterSummary(dropped) = verdict {
            sink(LogLine(level: "warning", message: "\(dropped) guest log lines dropped (rate limit)"))
        }
        guard verdict != .drop else { return }
        var text = String(decoding: bytes, as: UTF8.self)
        if length > bytes.count { text += "… (\(length) bytes, cut)" }
        sink(LogLine(level: level, message: text))
    }

    /// Says how many lines the rate limit dropped, so that a call's flood is reported when the
    /// call ends rather than at the next line the guest logs.
    func reportDroppedLines() {
        let dropped = limiter.takeDropped()
        if dropped > 0 { sink(LogLine(level: "warning", message: "\(dropped) guest log lines dropped (rate limit)")) }
    }

    struct GuestFault: Error, CustomStringConvertible {
        let description: String
    }

    func define(in imports: inout Imports, store: Store) {
        imports.define(
            module: "plugvisor", name: "log",
            Function(store: store, parameters: [.i32, .i32, .i32]) { [unowned self] caller, args in
                guard case let .i32(level) = args[0], case let .i32(pointer) = args[1], case let .i32(length) = args[2]
                else { return [] }
                let levelName = Self.levels[Int(min(level, UInt32(Self.levels.count - 1)))]
                guard logs(levelName) else { return [] }
                let memory = try Self.memory(caller)
                let bytes = try Self.read(memory, pointer: pointer, length: length, limit: Self.maxLogLine)
                guestLog(level: levelName, bytes: bytes, length: Int(length))
                return []
            })
        imports.define(
            module: "plugvisor", name: "config_get",
            Function(store: store, parameters: [.i32, .i32, .i32, .i32], results: [.i32]) {
                [unowned self] caller, args in
                guard case let .i32(keyPointer) = args[0], case let .i32(keyLength) = args[1],
                    case let .i32(bufferPointer) = args[2], case let .i32(bufferLength) = args[3]
                else { return [.i32(UInt32(bitPattern: -1))] }
                let memory = try Self.memory(caller)
                let key = String(
                    decoding: try Self.read(memory, pointer: keyPointer, length: keyLength, limit: 4096), as: UTF8.self)
                guard let value = config[key] else { return [.i32(UInt32(bitPattern: -1))] }
                let bytes = Array(value.utf8)
                let copied = min(bytes.count, Int(bufferLength))
                if copied > 0 {
                    guard
                        GuestAnswer.checkBounds(
                            pointer: bufferPointer, length: UInt32(copied), memorySize: memory.byteCount)
                    else {
                        throw GuestFault(
                            description: "config_get: buffer \(bufferPointer)+\(copied) is outside guest memory")
                    }
                    memory.withUnsafeMutableBufferPointer(offset: UInt(bufferPointer), count: copied) {
                        $0.copyBytes(from: bytes[0..<copied])
                    }
                }
                return [.i32(UInt32(bytes.count))]
            })
        imports.define(
            module: "plugvisor", name: "http_request",
            Function(store: store, parameters: [.i32, .i32], results: [.i64]) { [unowned self] caller, args in
                guard case let .i32(pointer) = args[0], case let .i32(length) = args[1] else { return [.i64(0)] }
                let memory = try Self.memory(caller)
                guard Int(length) <= Self.maxHostRequest else {
                    return [.i64(try Self.give(caller, ["error": "request larger than 1 MiB"]))]
                }
                let bytes = try Self.read(memory, pointer: pointer, length: length, limit: Self.maxHostRequest)
                guard case let .object(request)? = try? JSONValue(parsing: bytes) else {
                    return [.i64(try Self.give(caller, ["error": "the request is not a JSON object"]))]
                }
                return [.i64(try Self.give(caller, hostService("http", .object(request))))]
            })
        imports.define(
            module: "plugvisor", name: "host_call",
            Function(store: store, parameters: [.i32, .i32, .i32, .i32], results: [.i64]) {
                [unowned self] caller, args in
                guard case let .i32(namePointer) = args[0], case let .i32(nameLength) = args[1],
                    case let .i32(inputPointer) = args[2], case let .i32(inputLength) = args[3]
                else { return [.i64(0)] }
                let memory = try Self.memory(caller)
                guard nameLength <= 256, Int(inputLength) <= Self.maxHostRequest else {
                    return [
                        .i64(
                            try Self.give(
                                caller, Array("host_call: a name over 256 bytes or an input over 1 MiB".utf8),
                                failed: true))
                    ]
                }
                let name = String(
                    decoding: try Self.read(memory, pointer: namePointer, length: nameLength, limit: 256), as: UTF8.self
                )
                let input = try Self.read(
                    memory, pointer: inputPointer, length: inputLength, limit: Self.maxHostRequest)
                let answer = hostService(
                    "host_function", ["name": .string(name), "input": .string(Data(input).base64EncodedString())])
                if let error = answer["error"]?.stringValue {
                    return [
                        .i64(try Self.give(caller, Array("host function \(name) failed: \(error)".utf8), failed: true))
                    ]
                }
                guard let text = answer["output"]?.stringValue, let output = Data(base64Encoded: text) else {
                    return [.i64(try Self.give(caller, Array("host function \(name): no output".utf8), failed: true))]
                }
                return [.i64(try Self.give(caller, Array(output), failed: false))]
            })
        if sandboxDrill {
            imports.define(
                module: "plugvisor", name: "sandbox_drill",
                Function(store: store, parameters: [.i32], results: [.i32]) { _, args in
                    guard case let .i32(which) = args[0] else { return [.i32(0)] }
                    return [.i32(UInt32(truncatingIfNeeded: Lockdown.drill(Int32(bitPattern: which))))]
                })
        }
    }

    /// Copies `answer` into a buffer from the guest's own `allocate` and packs (ptr << 32) | len;
    /// the guest owns the buffer and frees it with `deallocate`.
    static func give(_ caller: borrowing Caller, _ answer: JSONValue) throws -> UInt64 {
        try give(caller, try JSONCoding.encode(answer), failed: false)
    }

    /// `give` for raw bytes; `failed` sets the top bit of the low word (`host_call`'s error
    /// flag: lengths stay under 1 MiB, so the bit is free).
    static func give(_ caller: borrowing Caller, _ bytes: [UInt8], failed: Bool) throws -> UInt64 {
        guard let allocate = caller.instance?.exports[function: "allocate"] else {
            throw GuestFault(description: "the guest has no allocate export")
        }
        guard case let .i32(pointer)? = try allocate.invoke([.i32(UInt32(bytes.count))]).first else {
            throw GuestFault(description: "allocate returned no i32")
        }
        let memory = try memory(caller)
        guard GuestAnswer.checkBounds(pointer: pointer, length: UInt32(bytes.count), memorySize: memory.byteCount)
        else {
            throw GuestFault(description: "allocate(\(bytes.count)) returned \(pointer), outside guest memory")
        }
        if !bytes.isEmpty {
            memory.withUnsafeMutableBufferPointer(offset: UInt(pointer), count: bytes.count) {
                $0.copyBytes(from: bytes)
            }
        }
        return UInt64(pointer) << 32 | UInt64(bytes.count) | (failed ? 0x8000_0000 : 0)
    }

    /// Links each of `items` as a function that traps, naming itself, when the guest calls it.
    static func defineTrapping(_ items: [ModuleShape.Item], in imports: inout Imports, store: Store) {
        for item in items {
            guard let module = item.module, let signature = item.signature else { continue }
            let name = item.qualifiedName
            imports.define(
                module: module, name: item.name,
                Function(store: store, parameters: signature.parameters, results: signature.results) { _, _ in
                    throw GuestFault(description: "called \(name), an import nothing grants (unknown_imports: trap)")
                })
        }
    }

    static func memory(_ caller: borrowing Caller) throws -> Memory {
        guard let memory = caller.instance?.exports[memory: "memory"] else {
            throw GuestFault(description: "the guest has no exported memory")
        }
        return memory
    }

    static func read(_ memory: Memory, pointer: UInt32, length: UInt32, limit: Int) throws -> [UInt8] {
        guard GuestAnswer.checkBounds(pointer: pointer, length: length, memorySize: memory.byteCount) else {
            throw GuestFault(description: "pointer \(pointer) with length \(length) is outside guest memory")
        }
        let count = min(Int(length), limit)
        if count == 0 { return [] }
        return memory.withUnsafeBufferPointer(offset: UInt(pointer), count: count) { Array($0) }
    }
}
