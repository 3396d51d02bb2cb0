import FoundationEssentials
import PlugvisorProtocol
import WasmKit

/// The 12 host functions of `extism:host/env` (config, vars, logs, HTTP) over one kernel
/// instance, and the state that outlives instances: vars and the last HTTP response.
///
/// Every handle the plugin passes is looked up in the kernel, whose memory the plugin can
/// corrupt: a handle that is not a block, or one too long, traps the plugin, never the worker.
final class ExtismHost {
    let hostModule: HostModule
    let maxVarBytes: Int
    /// What `get_log_level` answers: Extism's number for the lowest level that is logged.
    let extismLogLevel: Int32
    private var vars: [String: [UInt8]] = [:]
    private var varBytes = 0
    private var httpStatus: UInt32 = 0
    private var httpHeaders: JSONValue?

    /// The longest key a plugin may name (config or var).
    static let maxKeyBytes = 4096

    init(_ hostModule: HostModule, maxVarBytes: Int, logLevel: String) {
        self.hostModule = hostModule
        self.maxVarBytes = maxVarBytes
        // Extism: trace 0, debug 1, info 2, warn 3, error 4, logging off Int32.max. Each Extism
        // level is logged at plugvisor's level of the same name (warn at `warning`).
        switch logLevel {
        case "trace": extismLogLevel = 0
        case "debug": extismLogLevel = 1
        case "info": extismLogLevel = 2
        case "notice", "warning": extismLogLevel = 3
        case "error": extismLogLevel = 4
        default: extismLogLevel = Int32.max
        }
    }

    private typealias Fault = HostModule.GuestFault

    func define(in imports: inout Imports, store: Store, kernel: ExtismKernelInstance) {
        func define(
            _ name: String, _ body: @escaping (ExtismHost, [Value]) throws -> [Value]
        ) {
            guard let signature = ABICheck.extismHostFunctions[name] else {
                preconditionFailure("\(name) is not an Extism host function")
            }
            imports.define(
                module: ABICheck.extismModule, name: name,
                Function(store: store, parameters: signature.parameters, results: signature.results) {
                    [unowned self] _, arguments in try body(self, arguments)
                })
        }
        func handle(_ arguments: [Value], _ index: Int) -> UInt64 {
            if case let .i64(value) = arguments[index] { return value }
            return 0
        }
        /// The block at `handle` as a key: at most `maxKeyBytes`, UTF-8.
        func key(_ handle: UInt64, for function: String) throws -> String {
            guard let block = try kernel.block(handle, limit: Self.maxKeyBytes + 1) else {
                throw Fault(description: "\(function): the key \(handle) is not a block of the kernel")
            }
            guard block.length <= UInt64(Self.maxKeyBytes) else {
                throw Fault(description: "\(function): the key is \(block.length) bytes, over \(Self.maxKeyBytes)")
            }
            return String(decoding: block.bytes, as: UTF8.self)
        }

        define("config_get") { host, arguments in
            let name = try key(handle(arguments, 0), for: "config_get")
            guard let value = host.hostModule.config[name] else { return [.i64(0)] }
            return [.i64(try host.give(Array(value.utf8), kernel, for: "config_get"))]
        }
        define("var_get") { host, arguments in
            let name = try key(handle(arguments, 0), for: "var_get")
            guard let value = host.vars[name] else { return [.i64(0)] }
            return [.i64(try host.give(value, kernel, for: "var_get"))]
        }
        define("var_set") { host, arguments in
            let name = try key(handle(arguments, 0), for: "var_set")
            try host.setVar(name, handle(arguments, 1), kernel)
            return []
        }
        for (name, level) in [
            ("log_trace", "trace"), ("log_debug", "debug"), ("log_info", "info"), ("log_warn", "warning"),
            ("log_error", "error"),
        ] {
            define(name) { host, arguments in
                guard host.hostModule.logs(level) else { return [] }
                let message = handle(arguments, 0)
                guard let block = try kernel.block(message, limit: HostModule.maxLogLine) else {
                    // An empty line is a block of length 0 (Extism issue #620): log it as such.
                    if message != 0, try kernel.call("length", message) == 0 {
                        host.hostModule.guestLog(level: level, bytes: [], length: 0)
                        return []
                    }
                    throw Fault(description: "\(name): \(message) is not a block of the kernel")
                }
                host.hostModule.guestLog(level: level, bytes: block.bytes, length: Int(block.length))
                return []
            }
        }
        define("get_log_level") { host, _ in [.i32(UInt32(bitPattern: host.extismLogLevel))] }
        define("http_request") { host, arguments in
            [.i64(try host.httpRequest(handle(arguments, 0), body: handle(arguments, 1), kernel))]
        }
        define("http_status_code") { host, _ in [.i32(host.httpStatus)] }
        define("http_headers") { host, _ in
            guard let headers = host.httpHeaders else { return [.i64(0)] }
            return [.i64(try host.give(try JSONCoding.encode(headers), kernel, for: "http_headers"))]
        }
    }

    /// Links the plugin's `extism:host/user` imports that the manifest grants (`granted`) to the
    /// embedding program's host functions, through the supervisor. One i64 in and one i64 out is
    /// Extism's usual form: a kernel block in, a kernel block out. Any other signature of i32 and
    /// i64 (Go's `mult(i64, i64) -> i64`) passes its arguments as 8-byte little-endian integers
    /// and takes its result, if any, from the first 8 bytes of the answer.
    func defineUserFunctions(
        _ imports: [ModuleShape.Item], granted: Set<String>, in definitions: inout Imports, store: Store,
        kernel: ExtismKernelInstance
    ) {
        for item in imports where item.module == ABICheck.extismUserModule && granted.contains(item.name) {
            guard let signature = item.signature else { continue }
            let name = item.name
            let handles = signature.parameters == [.i64] && signature.results == [.i64]
            definitions.define(
                module: ABICheck.extismUserModule, name: name,
                Function(store: store, parameters: signature.parameters, results: signature.results) {
                    [unowned self] _, arguments in
                    var input: [UInt8] = []
                    if handles {
                        var handle: UInt64 = 0
                        if case let .i64(value)? = arguments.first { handle = value }
                        if handle != 0 {
                            guard let block = try kernel.block(handle, limit: HostRequest.maxRequestBytes + 1),
                                block.length <= UInt64(HostRequest.maxRequestBytes)
                            else {
                                throw Fault(description: "\(name): the input is not a kernel block of at most 1 MiB")
                            }
                            input = block.bytes
                        }
                    } else {
                        for argument in arguments {
                            let value: UInt64 =
                                switch argument {
                                case let .i64(v): v
                                case let .i32(v): UInt64(v)
                                default: 0
                                }
                            input += withUnsafeBytes(of: value.littleEndian, Array.init)
                        }
                    }
                    let output = try callHostFunction(name, input)
                    if handles { return [.i64(try give(output, kernel, for: name))] }
                    guard let result = signature.results.first else { return [] }
                    var value: UInt64 = 0
                    for (index, byte) in output.prefix(8).enumerated() { value |= UInt64(byte) << (8 * index) }
                    return [result == .i32 ? .i32(UInt32(truncatingIfNeeded: value)) : .i64(value)]
                })
        }
    }

    /// Calls the embedding program's host function `name` through the supervisor.
    private func callHostFunction(_ name: String, _ input: [UInt8]) throws -> [UInt8] {
        let answer = hostModule.hostService(
            "host_function", ["name": .string(name), "input": .string(Data(input).base64EncodedString())])
        if let error = answer["error"]?.stringValue {
            throw Fault(description: "host function \(name) failed: \(error)")
        }
        guard let text = answer["output"]?.stringValue, let output = Data(base64Encoded: text) else {
            throw Fault(description: "host function \(name): the supervisor's answer carries no output")
        }
        return Array(output)
    }

    /// A new kernel block holding `bytes` for the plugin; 0 for no bytes.
    private func give(_ bytes: [UInt8], _ kernel: ExtismKernelInstance, for function: String) throws -> UInt64 {
        if bytes.isEmpty { return 0 }
        let handle = try kernel.allocate(bytes)
        guard handle != 0 else {
            throw Fault(description: "\(function): the kernel cannot allocate \(bytes.count) bytes")
        }
        return handle
    }

    /// `var_set`: value handle 0 removes the var; the vars together stay within `maxVarBytes`.
    private func setVar(_ name: String, _ value: UInt64, _ kernel: ExtismKernelInstance) throws {
        guard maxVarBytes > 0 else {
            throw Fault(description: "var_set: vars are disabled for this plugin (vars: 0 in the manifest)")
        }
        let old = vars[name].map { name.utf8.count + $0.count } ?? 0
        guard value != 0 else {
            vars[name] = nil
            varBytes -= old
            return
        }
        guard let block = try kernel.block(value, limit: maxVarBytes + 1) else {
            throw Fault(description: "var_set: the value \(value) is not a block of the kernel")
        }
        let total = varBytes - old + name.utf8.count + Int(clamping: block.length)
        guard total <= maxVarBytes else {
            throw Fault(
                description:
                    "var_set: the plugin's vars would take \(total) bytes, over its limit of \(maxVarBytes) (vars in the manifest)"
            )
        }
        vars[name] = block.bytes
        varBytes = total
    }

    /// `http_request(request, body)`: `request` is Extism's JSON `{"url", "method", "headers"}`;
    /// the supervisor's broker performs it within the plugin's `allowed_hosts`. Answers the
    /// response body's block (0 when empty); status and headers are kept for the next calls.
    private func httpRequest(_ request: UInt64, body: UInt64, _ kernel: ExtismKernelInstance) throws -> UInt64 {
        let limit = HostRequest.maxRequestBytes
        guard let requestBlock = try kernel.block(request, limit: limit + 1) else {
            throw Fault(description: "http_request: the request \(request) is not a block of the kernel")
        }
        guard requestBlock.length <= UInt64(limit),
            case var .object(members)? = try? JSONValue(parsing: requestBlock.bytes)
        else {
            throw Fault(description: "http_request: the request is not a JSON object of at most \(limit) bytes")
        }
        members = members.filter { ["url", "method", "headers"].contains($0.key) }
        if body != 0 {
            guard let bodyBlock = try kernel.block(body, limit: limit + 1), bodyBlock.length <= UInt64(limit) else {
                throw Fault(description: "http_request: the body is not a block of at most \(limit) bytes")
            }
            members["body_base64"] = .string(Data(bodyBlock.bytes).base64EncodedString())
        }
        let answer = hostModule.hostService("http", .object(members))
        if let error = answer["error"]?.stringValue {
            throw Fault(description: "HTTP request to \(members["url"]?.stringValue ?? "?") failed: \(error)")
        }
        let status = answer["status"].flatMap { value -> UInt32? in
            if case let .integer(code) = value, (0...999).contains(code) { return UInt32(code) }
            return nil
        }
        httpStatus = status ?? 0
        httpHeaders = answer["headers"]
        var bytes: [UInt8] = []
        if let text = answer["body"]?.stringValue {
            bytes = Array(text.utf8)
        } else if let encoded = answer["body_base64"]?.stringValue, let data = Data(base64Encoded: encoded) {
            bytes = Array(data)
        }
        return try give(bytes, kernel, for: "http_request")
    }
}
