import PlugvisorProtocol
import WasmKit

/// A module checked against its ABI and its memory limit, and parsed: what `GuestHost` and
/// `WasiCommand` both start from. Parsing is the first thing that touches guest bytes, so the
/// worker makes one locked down.
struct PreparedModule {
    let shape: ModuleShape
    let module: Module
    let engine: Engine
    /// The guest's linear memory cap in bytes.
    let memoryLimit: Int
    /// Function imports that nothing grants, linked as traps (`trapUnknownImports`).
    let trapped: [ModuleShape.Item]

    /// - Throws: `PluginError` with code `load_failed` that says what is wrong, naming the item.
    /// `linkedAs` names a module linked beside the plugin (`abi: extism`) rather than the plugin.
    init(bytes: [UInt8], request: LoadRequest, linkedAs: String? = nil) throws(PluginError) {
        func loadFailed(_ message: String) -> PluginError {
            PluginError(.loadFailed, plugin: request.plugin, linkedAs.map { "module \($0): " + message } ?? message)
        }
        do { shape = try ModuleShape(bytes: bytes) } catch {
            throw loadFailed(ModuleShape.notAModule(error, bytes: bytes))
        }
        let linked = Set(request.linkedModules.map(\.name))
        let problems = ABICheck.problems(
            shape, abi: request.abi, sandboxDrill: request.sandboxDrill, trapUnknownImports: request.trapUnknownImports,
            linked: linked, isLinked: linkedAs != nil, hostFunctions: Set(request.hostFunctions))
        guard problems.isEmpty else { throw loadFailed(problems.map(\.description).joined(separator: "; ")) }
        trapped =
            request.trapUnknownImports
            ? ABICheck.unknownFunctionImports(
                shape, abi: request.abi, sandboxDrill: request.sandboxDrill, linked: linked,
                hostFunctions: Set(request.hostFunctions)) : []
        memoryLimit = request.memoryLimit ?? LoadRequest.defaultMemoryLimit
        if let minPages = shape.memoryMinPages, minPages > UInt64(memoryLimit / 65536) {
            throw loadFailed(
                "initial memory of \(minPages * 64) KiB exceeds the plugin's memory limit of \(memoryLimit / 1024) KiB")
        }
        do { module = try parseWasm(bytes: bytes) } catch {
            throw loadFailed(ModuleShape.notAModule(error, bytes: bytes))
        }
        // Software bounds checks: the interpreter checks every access anyway, and this avoids
        // process-wide SIGSEGV handlers and a 4 GiB address reservation per memory. Extism
        // plugins are translated lazily: their PDKs' runtimes are megabytes of code a call
        // mostly never runs, and a `_start` plugin gets a fresh instance for every call.
        engine = Engine(
            configuration: EngineConfiguration(
                compilationMode: request.abi == .extism ? .lazy : .eager, memoryBoundsChecking: .software,
                fuelMetering: request.fuel != nil))
    }
}
