import FoundationEssentials
import PlugvisorProtocol
import WASI
@_spi(Fuzzing) import WasmKit
import WasmKitWASI

/// An Extism plugin (`abi: extism`): the plugin and plugvisor's Extism kernel instantiated in one
/// store, the kernel's 20 functions and the host's 12 linked as the plugin's `extism:host/env`.
/// A call names an export and carries raw bytes (`ExtismCall`). Thread-confined, like GuestHost.
public final class ExtismGuest {
    public private(set) var ready = ReadyInfo(meta: nil, memoryBytes: 0)
    private let request: LoadRequest
    private let prepared: PreparedModule
    /// Modules linked by name (`modules:` in the manifest), instantiated before the plugin.
    private let linked: [(name: String, module: PreparedModule)]
    private let kernelModule: Module
    private let functions: Set<String>
    /// The host functions, and what outlives an instance: vars (per worker, as in Extism).
    private let host: ExtismHost
    private var live: Live
    /// After `_start` or `proc_exit` an instance is spent (Extism resets the store): the next
    /// call gets a fresh one. A trap leaves one in an unknown state, so it is replaced too.
    private var spent = false

    /// One instance of the plugin and its kernel, and the state tied to them.
    private struct Live {
        let store: Store
        let budget: MemoryBudget
        let kernel: ExtismKernelInstance
        let plugin: Instance
        let wasi: WASIBridgeToHost
    }

    /// Fuel for the host's own kernel calls around a call (reset, the input, the output): never
    /// the plugin's budget, which a plugin that ran out of fuel has spent.
    private static let hostFuel: UInt64 = 10_000_000
    /// The longest error message read from a plugin's `error_set`.
    static let maxErrorBytes = 64 << 10

    /// Parses and checks the module, instantiates it with the kernel, and runs its initialisers.
    /// - Throws: `PluginError` with code `load_failed` naming what is wrong.
    public init(
        moduleBytes: [UInt8], request: LoadRequest, log: @escaping (LogLine) -> Void,
        hostService: @escaping (String, JSONValue) -> JSONValue
    ) throws(PluginError) {
        precondition(request.abi == .extism, "only an abi: extism plugin is an ExtismGuest")
        self.request = request
        // fd 4 held the plugin's module, then each linked module's bytes.
        let linkedBytes = request.linkedModules.reduce(0) { $0 + max(0, $1.byteCount) }
        guard linkedBytes <= moduleBytes.count else {
            throw PluginError(.loadFailed, plugin: request.plugin, "the linked modules' bytes are missing")
        }
        var start = moduleBytes.count - linkedBytes
        prepared = try PreparedModule(bytes: Array(moduleBytes[..<start]), request: request)
        var linked: [(name: String, module: PreparedModule)] = []
        for module in request.linkedModules {
            let bytes = Array(moduleBytes[start..<(start + max(0, module.byteCount))])
            start += max(0, module.byteCount)
            linked.append((module.name, try PreparedModule(bytes: bytes, request: request, linkedAs: module.name)))
        }
        self.linked = linked
        functions = Set(ABICheck.extismFunctions(prepared.shape))
        do { kernelModule = try ExtismKernel.module() } catch {
            throw PluginError(.internalError, plugin: request.plugin, "cannot compile the Extism kernel: \(error)")
        }
        host = ExtismHost(
            HostModule(
                plugin: request.plugin, config: request.config, sandboxDrill: false, logLevel: request.logLevel,
                log: log, hostService: hostService),
            maxVarBytes: request.maxVarBytes, logLevel: request.logLevel)
        live = try Self.instantiate(
            prepared: prepared, linked: linked, kernelModule: kernelModule, request: request, host: host)
        ready = ReadyInfo(
            meta: [
                "name": .string(request.plugin), "abi": "extism",
                "functions": .array(functions.sorted().map { .string($0) }),
            ],
            memoryBytes: memoryBytes)
    }

    deinit { try? live.wasi.close() }

    public var memoryBytes: Int {
        live.kernel.memory.byteCount + (live.plugin.exports[memory: "memory"]?.byteCount ?? 0)
    }

    public func destroy() {}

    // MARK: - Instances

    private static func instantiate(
        prepared: PreparedModule, linked: [(name: String, module: PreparedModule)], kernelModule: Module,
        request: LoadRequest, host: ExtismHost
    ) throws(PluginError) -> Live {
        func loadFailed(_ message: String) -> PluginError { PluginError(.loadFailed, plugin: request.plugin, message) }
        let store = Store(engine: prepared.engine)
        let budget = MemoryBudget(bytes: prepared.memoryLimit)
        store.resourceLimiter = budget
        if request.fuel != nil { store.fuel = Fuel(remaining: hostFuel) }
        let kernel: ExtismKernelInstance
        do { kernel = try ExtismKernelInstance(module: kernelModule, store: store) } catch {
            throw loadFailed("cannot instantiate the Extism kernel: \(GuestHost.describe(error))")
        }
        budget.memories.append(kernel.memory)
        let wasi = try WASILinking.bridge(for: request)
        var imports = Imports()
        WASILinking.define(wasi, in: &imports, store: store, preopens: request.preopens)
        for name in ExtismKernel.functions.keys {
            if let function = kernel.function(name) {
                imports.define(module: ABICheck.extismModule, name: name, function)
            }
        }
        host.define(in: &imports, store: store, kernel: kernel)
        let granted = Set(request.hostFunctions)
        for module in [prepared] + linked.map(\.module) {
            host.defineUserFunctions(
                module.shape.imports, granted: granted, in: &imports, store: store, kernel: kernel)
        }
        HostModule.defineTrapping(prepared.trapped, in: &imports, store: store)
        for (name, module) in linked {
            let instance: Instance
            do {
                instance = try module.module.instantiate(store: store, imports: imports)
                if let memory = instance.exports[memory: "memory"] { budget.memories.append(memory) }
                try initialise(instance, store: store, request: request)
            } catch {
                try? wasi.close()
                throw loadFailed("module \(name): \(GuestHost.describe(error))")
            }
            imports.define(module: name, instance.exports)
        }
        let plugin: Instance
        do { plugin = try prepared.module.instantiate(store: store, imports: imports) } catch {
            try? wasi.close()
            if budget.refused { throw loadFailed("instantiation needs more memory than the plugin's budget") }
            throw loadFailed("instantiation failed: \(GuestHost.describe(error))")
        }
        if let memory = plugin.exports[memory: "memory"] { budget.memories.append(memory) }
        budget.instantiating = false
        let live = Live(store: store, budget: budget, kernel: kernel, plugin: plugin, wasi: wasi)
        do { try initialise(plugin, store: store, request: request) } catch {
            try? wasi.close()
            throw loadFailed("its initialiser failed: \(GuestHost.describe(error))")
        }
        return live
    }

    /// Extism's initialisers, once per instance: `hs_init` (a GHC plugin) after `_initialize`;
    /// else `__wasm_call_ctors` (C/C++ without a WASI start-up); else a WASI reactor's `_initialize`.
    private static func initialise(_ instance: Instance, store: Store, request: LoadRequest) throws {
        let exports = instance.exports
        if let fuel = request.fuel { store.fuel = Fuel(remaining: fuel) }
        if let hsInit = exports[function: "hs_init"] {
            try exports[function: "_initialize"]?.invoke([])
            try hsInit.invoke(hsInit.type.parameters.map { $0 == .i64 ? .i64(0) : .i32(0) })
        } else if let constructors = exports[function: "__wasm_call_ctors"], constructors.type.parameters.isEmpty {
            try constructors.invoke([])
        } else {
            try exports[function: "_initialize"]?.invoke([])
        }
    }

    // MARK: - Calls

    /// - Returns: the answer plugvisor's ABI would give (`ExtismCall.result`), as JSON.
    public func execute(context: CallContext) -> Result<[UInt8], PluginError> {
        let tree: JSONValue
        do { tree = try context.value() } catch {
            return .failure(
                PluginError(.badRequest, plugin: request.plugin, "the call's context is not JSON: \(error)"))
        }
        return GuestAnswer.written(call(tree), plugin: request.plugin)
    }

    private func call(_ context: JSONValue) -> Result<JSONValue, PluginError> {
        let plugin = request.plugin
        guard let (function, input) = ExtismCall.request(from: context) else {
            return .failure(
                PluginError(
                    .badRequest, plugin: plugin,
                    "\(plugin) is an Extism plugin: a call names one of its functions (\(functions.sorted().joined(separator: ", "))), e.g. plugvisor call \(plugin) --function \(functions.sorted().first ?? "NAME") --input TEXT"
                ))
        }
        guard functions.contains(function) else {
            return .failure(
                PluginError(
                    .badRequest, plugin: plugin,
                    "\(plugin) has no function \(function.debugDescription) to call (it has \(functions.sorted().joined(separator: ", ")))"
                ))
        }
        if spent, let error = renew() { return .failure(error) }
        defer { host.hostModule.reportDroppedLines() }
        let kernel = live.kernel
        let budget = live.budget
        budget.refused = false
        do {
            setFuel(Self.hostFuel)
            let pluginMemory = live.plugin.exports[memory: "memory"]?.byteCount ?? 0
            let handle = try kernel.begin(
                input: input, growLimitPages: UInt64(max(0, budget.bytes - pluginMemory) >> 16))
            if handle == 0 && !input.isEmpty {
                return .failure(outOfMemory("the \(input.count)-byte input does not fit"))
            }
            var code: UInt32 = 0
            var exited = false
            setFuel(request.fuel)
            do {
                if case let .i32(returned)? = try live.plugin.exports[function: function]?.invoke([]).first {
                    code = returned
                }
            } catch let exit as WASIExitCode {
                code = exit.code
                exited = true
                spent = true
            }
            if function == "_start" { spent = true }
            setFuel(Self.hostFuel)
            var failure: String?
            let error = try kernel.global("plugvisor_error")
            if error != 0 {
                failure =
                    try kernel.block(error, limit: Self.maxErrorBytes).map { block in
                        String(decoding: block.bytes, as: UTF8.self)
                            + (block.length > UInt64(block.bytes.count) ? "… (\(block.length) bytes, cut)" : "")
                    } ?? "the plugin set an error that is not a block of the kernel"
            } else if code != 0 {
                failure = "\(function) " + (exited ? "exited with code \(code)" : "returned \(Int32(bitPattern: code))")
            }
            if let failure {
                // A plugin that failed after a refused grow failed for want of memory.
                if budget.refused { return .failure(outOfMemory("the call needed more (the plugin said: \(failure))")) }
                return .success(["success": false, "error": .string(failure)])
            }
            let offset = try kernel.global("plugvisor_output_offset")
            let length = try kernel.global("plugvisor_output_length")
            guard length <= UInt64(request.maxResultBytes) else {
                return .failure(
                    PluginError(
                        .invalidResult, plugin: plugin,
                        "the output is \(length) bytes, over the \(request.maxResultBytes)-byte limit"))
            }
            guard let output = length == 0 ? [] : kernel.bytes(at: offset, count: length) else {
                return .failure(
                    PluginError(
                        .invalidResult, plugin: plugin,
                        "the output at \(offset) with length \(length) lies outside the kernel's \(kernel.memory.byteCount)-byte memory"
                    ))
            }
            return .success(ExtismCall.result(output: output))
        } catch {
            spent = true
            if budget.refused { return .failure(outOfMemory("the call needed more")) }
            return .failure(GuestHost.classify(error, plugin: plugin, fuel: request.fuel))
        }
    }

    /// A fresh instance for a spent one, made between calls so that the next call does not wait.
    public func prepareNextCall() {
        if spent { _ = renew() }
    }

    /// Replaces the instance; the error when a fresh one cannot be made (the call then fails).
    private func renew() -> PluginError? {
        do {
            let fresh = try Self.instantiate(
                prepared: prepared, linked: linked, kernelModule: kernelModule, request: request, host: host)
            try? live.wasi.close()
            live = fresh
            spent = false
            return nil
        } catch {
            return error
        }
    }

    private func outOfMemory(_ what: String) -> PluginError {
        PluginError(
            .outOfMemory, plugin: request.plugin,
            "\(what) than the plugin's memory budget of \(live.budget.bytes >> 10) KiB for all its memories (the plugin's `memory` key in the manifest)"
        )
    }

    private func setFuel(_ fuel: UInt64?) {
        if let fuel, request.fuel != nil { live.store.fuel = Fuel(remaining: fuel) }
    }
}

/// One memory budget over all of a plugin's memories (its own and the kernel's), as Extism has.
/// WasmKit asks for each growing memory's new size without saying which memory grows; where that
/// is ambiguous the budget assumes the smallest candidate grows, which counts the most bytes.
final class MemoryBudget: ResourceLimiter, @unchecked Sendable {
    // SAFETY: used from the worker's one thread, like the store it limits.
    let bytes: Int
    /// The memories instantiated so far; a memory being created is not among them yet.
    var memories: [Memory] = []
    /// While instantiating, a request may be a new memory's first allocation.
    var instantiating = true
    /// Whether a growth was refused since the host last cleared it: a call that then fails
    /// failed for want of memory, whatever the plugin made of the refused grow.
    var refused = false

    init(bytes: Int) { self.bytes = bytes }

    func limitMemoryGrowth(to desired: Int) throws -> Bool {
        let sizes = memories.map(\.byteCount)
        let growing = instantiating ? 0 : (sizes.filter { $0 < desired }.min() ?? 0)
        let total = sizes.reduce(0, +) - growing + desired
        guard total <= bytes else {
            refused = true
            return false
        }
        return true
    }

    func limitTableGrowth(to desired: Int) throws -> Bool { desired <= 1_000_000 }
}
