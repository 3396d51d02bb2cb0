import PlugvisorProtocol
import WASI
@_spi(Fuzzing) import WasmKit
import WasmKitWASI

/// One instantiated guest module and the host side of its ABI. Thread-confined, like the
/// WasmKit store it owns: the worker makes every call from its single thread.
public final class GuestHost {
    public private(set) var ready = ReadyInfo(meta: nil, memoryBytes: 0)
    let plugin: String
    private let store: Store
    private let instance: Instance
    private let memory: Memory
    private let allocate: Function
    private let deallocate: Function
    private let execute: Function
    private let executeForm: ABICheck.ResultForm
    private let metaFunction: (Function, ABICheck.ResultForm)?
    private let destroyFunction: Function?
    private let fuel: UInt64?
    private let maxResultBytes: Int
    private let wasi: WASIBridgeToHost
    private let hostModule: HostModule

    /// Validates, instantiates and initialises the module (start function, `_initialize`, `init`),
    /// then asks `meta` if the guest has one. The worker calls this locked down: parsing the
    /// module is the first thing that touches guest bytes.
    /// - Throws: `PluginError` with code `load_failed` that says what is wrong, naming the item.
    public init(
        moduleBytes: [UInt8], request: LoadRequest, log: @escaping (LogLine) -> Void,
        hostService: @escaping (String, JSONValue) -> JSONValue = { _, _ in ["error": "no host services"] }
    ) throws(PluginError) {
        plugin = request.plugin
        fuel = request.fuel
        maxResultBytes = request.maxResultBytes
        func loadFailed(_ message: String) -> PluginError { PluginError(.loadFailed, plugin: request.plugin, message) }

        precondition(request.abi == .plugvisor, "a wasi-command plugin is a WasiCommand")
        let prepared = try PreparedModule(bytes: moduleBytes, request: request)
        let shape = prepared.shape
        store = Store(engine: prepared.engine)
        store.resourceLimiter = MemoryCap(bytes: prepared.memoryLimit)

        hostModule = HostModule(
            plugin: request.plugin, config: request.config, sandboxDrill: request.sandboxDrill,
            logLevel: request.logLevel, log: log, hostService: hostService)
        wasi = try WASILinking.bridge(for: request)
        let instance: Instance
        do throws(PluginError) {
            instance = try Self.instantiate(
                prepared.module, store: store, wasi: wasi, hostModule: hostModule, preopens: request.preopens,
                fuel: request.fuel, plugin: request.plugin, trapped: prepared.trapped)
        } catch {
            try? wasi.close()  // WasmKit requires close before the bridge goes away
            throw error
        }
        self.instance = instance
        guard let memory = instance.exports[memory: "memory"], let allocate = instance.exports[function: "allocate"],
            let deallocate = instance.exports[function: "deallocate"],
            let execute = instance.exports[function: "execute"]
        else {
            try? wasi.close()
            throw loadFailed("missing exports after instantiation")
        }
        self.memory = memory
        self.allocate = allocate
        self.deallocate = deallocate
        self.execute = execute
        executeForm = ABICheck.resultForm(shape.export("execute")?.signature)
        metaFunction = instance.exports[function: "meta"].map {
            ($0, ABICheck.resultForm(shape.export("meta")?.signature))
        }
        destroyFunction = instance.exports[function: "destroy"]
        try initialize(shape: shape, request: request)
    }

    deinit { try? wasi.close() }

    private static func instantiate(
        _ module: Module, store: Store, wasi: WASIBridgeToHost, hostModule: HostModule, preopens: [Preopen],
        fuel: UInt64?,
        plugin: String, trapped: [ModuleShape.Item]
    ) throws(PluginError) -> Instance {
        var imports = Imports()
        WASILinking.define(wasi, in: &imports, store: store, preopens: preopens)
        hostModule.define(in: &imports, store: store)
        HostModule.defineTrapping(trapped, in: &imports, store: store)
        if let fuel { store.fuel = Fuel(remaining: fuel) }
        do { return try module.instantiate(store: store, imports: imports) } catch {
            throw PluginError(.loadFailed, plugin: plugin, "instantiation failed: \(describe(error))")
        }
    }

    /// `_initialize`, then `init` with the config, then `meta`: each failure refuses the load.
    private func initialize(shape: ModuleShape, request: LoadRequest) throws(PluginError) {
        func loadFailed(_ message: String) -> PluginError { PluginError(.loadFailed, plugin: request.plugin, message) }
        do {
            setFuel()
            try wasi.initialize(instance)  // runs a WASI reactor's _initialize, if exported
        } catch {
            throw loadFailed("_initialize failed: \(Self.describe(error))")
        }
        if let initFunction = instance.exports[function: "init"] {
            let form = ABICheck.resultForm(shape.export("init")?.signature)
            let config = JSONValue.object([
                "name": .string(request.plugin),
                "config": .object(request.config.mapValues { .string($0) }),
            ])
            let answer = invoke(
                initFunction, form: form, input: ArraySlice((try? JSONCoding.write(config)) ?? []), what: "init result"
            )
            .flatMap { GuestAnswer.decodeResult($0, plugin: request.plugin, what: "init result") }
            .flatMap { GuestAnswer.checkResultShape($0, plugin: request.plugin) }
            switch answer {
            case let .failure(error): throw loadFailed("init failed: \(error.message)")
            case let .success(value) where value["success"]?.boolValue == false:
                throw loadFailed("init refused: \(value["error"]?.stringValue ?? "no reason given")")
            case .success: break
            }
        }
        var meta: JSONValue?
        if let (function, form) = metaFunction {
            switch invoke(function, form: form, input: nil, what: "meta").flatMap({
                GuestAnswer.decodeResult($0, plugin: request.plugin, what: "meta")
            }) {
            case let .success(value): meta = value
            case let .failure(error): throw loadFailed("meta failed: \(error.message)")
            }
        }
        ready = ReadyInfo(meta: meta, memoryBytes: memory.byteCount)
    }

    /// Runs `execute` with the plugin context.
    /// - Returns: the guest's answer, checked (`GuestAnswer.checkedAnswer`), as the bytes it wrote.
    public func execute(context: CallContext) -> Result<[UInt8], PluginError> {
        invoke(execute, form: executeForm, input: context.json, what: "result")
            .flatMap { GuestAnswer.checkedAnswer($0, plugin: plugin) }
    }

    /// Calls the guest's `destroy`, if any; errors are only logged, as the worker is ending.
    public func destroy() {
        guard let destroyFunction else { return }
        setFuel()
        do { try destroyFunction.invoke([]) } catch {
            hostModule.log(LogLine(level: "warning", message: "destroy failed: \(Self.describe(error))"))
        }
    }

    public var memoryBytes: Int { memory.byteCount }

    // MARK: - The call protocol

    /// allocate → copy input → call → read answer (bounds-checked) → deallocate both.
    /// - Returns: the answer's bytes, not yet parsed.
    private func invoke(
        _ function: Function, form: ABICheck.ResultForm, input: ArraySlice<UInt8>?, what: String
    )
        -> Result<[UInt8], PluginError>
    {
        defer { hostModule.reportDroppedLines() }
        setFuel()
        do {
            var arguments: [Value] = []
            var inputPointer: UInt32 = 0
            if let input {
                guard input.count <= Int(Int32.max) else {
                    return .failure(PluginError(.badRequest, plugin: plugin, "context too large for a 32-bit guest"))
                }
                let length = UInt32(input.count)
                guard case let .i32(pointer)? = try allocate.invoke([.i32(length)]).first else {
                    return invalid("allocate returned no i32")
                }
                guard GuestAnswer.checkBounds(pointer: pointer, length: length, memorySize: memory.byteCount) else {
                    return invalid(
                        "allocate(\(length)) returned \(pointer), outside the guest's \(memory.byteCount)-byte memory")
                }
                if length > 0 {
                    memory.withUnsafeMutableBufferPointer(offset: UInt(pointer), count: input.count) { target in
                        target.copyBytes(from: input)
                    }
                }
                inputPointer = pointer
                arguments = [.i32(pointer), .i32(length)]
            }
            let results = try function.invoke(arguments)
            let answer: [UInt8]
            var resultRegion: (UInt32, UInt32)?
            switch (form, results.first) {
            case let (.packed, .i64(packed)?):
                let (pointer, length) = GuestAnswer.unpack(packed)
                guard GuestAnswer.checkBounds(pointer: pointer, length: length, memorySize: memory.byteCount) else {
                    return invalid(
                        "the \(what) pointer \(pointer) with length \(length) lies outside the guest's \(memory.byteCount)-byte memory"
                    )
                }
                guard Int(length) <= maxResultBytes else {
                    return invalid("the \(what) is \(length) bytes, over the \(maxResultBytes)-byte limit")
                }
                answer = memory.withUnsafeBufferPointer(offset: UInt(pointer), count: Int(length)) { Array($0) }
                resultRegion = (pointer, length)
            case let (.pointer, .i32(pointer)?):
                guard Int(pointer) < memory.byteCount else {
                    return invalid(
                        "the \(what) pointer \(pointer) lies outside the guest's \(memory.byteCount)-byte memory")
                }
                let available = min(maxResultBytes, memory.byteCount - Int(pointer))
                let window = memory.withUnsafeBufferPointer(offset: UInt(pointer), count: available) { Array($0) }
                guard let length = GuestAnswer.lengthOfFirstJSONValue(window) else {
                    return invalid("no complete JSON value at the \(what) pointer \(pointer) within \(available) bytes")
                }
                answer = Array(window[0..<length])
            default:
                return invalid(
                    "the guest returned \(results) instead of a \(form == .packed ? "packed i64" : "i32 pointer")")
            }
            if let input {
                try deallocate.invoke([.i32(inputPointer), .i32(UInt32(input.count))])
            }
            if let (pointer, length) = resultRegion, length > 0 {
                try deallocate.invoke([.i32(pointer), .i32(length)])
            }
            return .success(answer)
        } catch {
            return .failure(Self.classify(error, plugin: plugin, fuel: fuel))
        }
    }

    private func invalid(_ message: String) -> Result<[UInt8], PluginError> {
        .failure(PluginError(.invalidResult, plugin: plugin, message))
    }

    private func setFuel() {
        if let fuel { store.fuel = Fuel(remaining: fuel) }
    }

    /// Maps what WasmKit throws to a typed error. Only a trap's first line is kept: the rest is a
    /// backtrace that can run to thousands of lines.
    static func classify(_ error: Error, plugin: String, fuel: UInt64?) -> PluginError {
        if let exit = error as? WASIExitCode {
            return PluginError(.trap, plugin: plugin, "the guest called \(describeExit(exit.code))")
        }
        let text = describe(error)
        if text.hasPrefix("out of fuel") {
            let budget = fuel.map { "its fuel budget of \($0)" } ?? "its fuel budget"
            return PluginError(
                .outOfFuel, plugin: plugin, "the call used up \(budget) (the plugin's `fuel` key in the manifest)")
        }
        return PluginError(.trap, plugin: plugin, text)
    }

    static func describe(_ error: Error) -> String {
        if let exit = error as? WASIExitCode { return describeExit(exit.code) }
        var text = String(describing: error)
        if let newline = text.firstIndex(of: "\n") { text = String(text[..<newline]) }
        if text.hasPrefix("Trap: ") { text.removeFirst(6) }
        return String(text.prefix(500))
    }

    /// `proc_exit(71)` alone tells a plugin author nothing: name the code as the C library that
    /// chose it does (sysexits.h, which wasi-libc uses), and what its start-up means by it.
    static func describeExit(_ code: UInt32) -> String {
        let meanings: [UInt32: String] = [
            64: "EX_USAGE", 65: "EX_DATAERR", 66: "EX_NOINPUT", 67: "EX_NOUSER", 68: "EX_NOHOST",
            69: "EX_UNAVAILABLE", 70: "EX_SOFTWARE", 72: "EX_OSFILE", 73: "EX_CANTCREAT", 74: "EX_IOERR",
            75: "EX_TEMPFAIL", 76: "EX_PROTOCOL", 77: "EX_NOPERM", 78: "EX_CONFIG",
            71: "EX_OSERR: wasi-libc's start-up exits so when the host refuses it its arguments, environment or "
                + "preopened directories",
        ]
        guard let meaning = meanings[code] else { return "proc_exit(\(code))" }
        return "proc_exit(\(code), \(meaning))"
    }
}

/// Caps linear memory growth: a refused `memory.grow` returns -1 to the guest.
final class MemoryCap: ResourceLimiter, @unchecked Sendable {
    // SAFETY: immutable.
    let bytes: Int
    init(bytes: Int) { self.bytes = bytes }
    func limitMemoryGrowth(to desired: Int) throws -> Bool { desired <= bytes }
    func limitTableGrowth(to desired: Int) throws -> Bool { desired <= 1_000_000 }
}
