import CPlugvisorLinux
import Glibc
import PlugvisorProtocol
import WASI
@_spi(Fuzzing) import WasmKit
import WasmKitWASI

/// A WASI command (`_start`) as a plugin (`abi: wasi-command`): each call runs the program once
/// in a fresh instance, with the context JSON on stdin; its stdout must be one JSON value, its
/// stderr goes to the log, and its exit code says whether it succeeded.
public final class WasiCommand {
    public let ready: ReadyInfo
    private let plugin: String
    private let module: Module
    private let engine: Engine
    private let request: LoadRequest
    private let memoryLimit: Int
    /// Memory files for the program's stdin and stdout, made before lockdown and reused.
    private let stdin: Int32
    private let stdout: Int32
    private let trapped: [ModuleShape.Item]

    /// Memory files for a command's stdin and stdout. memfd_create is not in the seccomp
    /// allowlist: the worker makes them before it locks itself down.
    public static func makeStdio() throws(PluginError) -> (stdin: Int32, stdout: Int32) {
        let stdin = pv_memfd("plugvisor-stdin")
        let stdout = pv_memfd("plugvisor-stdout")
        guard stdin >= 0, stdout >= 0 else {
            throw PluginError(.loadFailed, "cannot create the program's stdin and stdout")
        }
        return (stdin, stdout)
    }

    /// Parses and checks the module; the worker calls this locked down, with `stdio` from `makeStdio`.
    public init(moduleBytes: [UInt8], request: LoadRequest, stdio: (stdin: Int32, stdout: Int32)) throws(PluginError) {
        plugin = request.plugin
        self.request = request
        precondition(request.abi == .wasiCommand, "a plugvisor-ABI plugin is a GuestHost")
        let prepared = try PreparedModule(bytes: moduleBytes, request: request)
        trapped = prepared.trapped
        memoryLimit = prepared.memoryLimit
        module = prepared.module
        engine = prepared.engine
        (stdin, stdout) = stdio
        ready = ReadyInfo(meta: ["name": .string(request.plugin)], memoryBytes: 0)
    }

    /// - Returns: the program's answer (its output, or the result object it printed), as JSON.
    public func execute(context: CallContext) -> Result<[UInt8], PluginError> {
        GuestAnswer.written(run(stdin: context.json), plugin: plugin)
    }

    private func run(stdin bytes: ArraySlice<UInt8>) -> Result<JSONValue, PluginError> {
        guard ftruncate(stdin, 0) == 0, ftruncate(stdout, 0) == 0,
            bytes.withUnsafeBytes({ pwrite(stdin, $0.baseAddress, $0.count, 0) }) == bytes.count,
            lseek(stdin, 0, SEEK_SET) == 0, lseek(stdout, 0, SEEK_SET) == 0
        else {
            return .failure(PluginError(.internalError, plugin: plugin, "cannot prepare the program's stdin"))
        }
        let exitCode: UInt32
        do {
            let wasi = try WASIBridgeToHost(
                args: request.args, environment: request.env,
                preopens: request.preopens.map { .init(guestPath: $0.guest, hostPath: $0.host) },
                stdin: stdin, stdout: stdout, stderr: 2)
            exitCode = try wasi.runAndClose { wasi in
                let store = Store(engine: engine)
                store.resourceLimiter = MemoryCap(bytes: memoryLimit)
                if let fuel = request.fuel { store.fuel = Fuel(remaining: fuel) }
                var imports = Imports()
                wasi.link(to: &imports, store: store)
                GrantErrors.define(in: &imports, store: store, wasi: wasi, preopens: request.preopens)
                HostModule.defineTrapping(trapped, in: &imports, store: store)
                let instance = try module.instantiate(store: store, imports: imports)
                return try wasi.start(instance)
            }
        } catch {
            return .failure(GuestHost.classify(error, plugin: plugin, fuel: request.fuel))
        }
        // The memfd's size is what the program wrote: check it before reading, and read no more
        // (a buffer of the whole limit would cost every call 8 MiB of zeroed, resident memory).
        let size = lseek(stdout, 0, SEEK_END)
        guard size >= 0 else {
            return .failure(PluginError(.internalError, plugin: plugin, "cannot read the program's stdout"))
        }
        guard size <= request.maxResultBytes else {
            return .failure(
                PluginError(
                    .invalidResult, plugin: plugin, "the program wrote more than \(request.maxResultBytes) bytes"))
        }
        var written = [UInt8](repeating: 0, count: Int(size))
        let count = written.withUnsafeMutableBytes { pread(stdout, $0.baseAddress, $0.count, 0) }
        guard count == Int(size) else {
            return .failure(PluginError(.internalError, plugin: plugin, "cannot read the program's stdout"))
        }
        let data: JSONValue?
        if written.allSatisfy({ $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }) {
            data = nil
        } else {
            switch GuestAnswer.decodeResult(written, plugin: plugin, what: "output on stdout") {
            case let .failure(error): return .failure(error)
            case let .success(value): data = value
            }
        }
        // A program that already prints a plugin result (an object with a boolean `success`) is
        // taken at its word, not wrapped as `data` again; a non-zero exit still fails the call.
        if case let .object(members)? = data, case .bool? = members["success"] {
            var answer = members
            if exitCode != 0 {
                answer["success"] = false
                if answer["error"]?.stringValue == nil {
                    answer["error"] = .string("the program exited with code \(exitCode)")
                }
            }
            return GuestAnswer.checkResultShape(.object(answer), plugin: plugin)
        }
        var answer: [String: JSONValue] = ["success": .bool(exitCode == 0)]
        if let data { answer["data"] = data }
        if exitCode != 0 { answer["error"] = .string("the program exited with code \(exitCode)") }
        return .success(.object(answer))
    }
}
