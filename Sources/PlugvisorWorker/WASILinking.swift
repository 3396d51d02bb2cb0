import PlugvisorProtocol
import WASI
@_spi(Fuzzing) import WasmKit
import WasmKitWASI

/// WASI as every reactor-style guest gets it (plugvisor ABI and Extism alike): the plugin's
/// environment and grants, stdout and stderr into the log, no file system without a grant.
enum WASILinking {
    /// The WASI state of one instance of `request`'s plugin; close it before it goes away.
    static func bridge(for request: LoadRequest) throws(PluginError) -> WASIBridgeToHost {
        do {
            return try WASIBridgeToHost(
                args: [request.plugin], environment: request.env,
                preopens: request.preopens.map { .init(guestPath: $0.guest, hostPath: $0.host) },
                stdin: 0, stdout: 2, stderr: 2)
        } catch {
            throw PluginError(.loadFailed, plugin: request.plugin, "cannot set up WASI: \(error)")
        }
    }

    /// Defines `wasi_snapshot_preview1` in `imports`: the file system only with `preopens`.
    static func define(_ wasi: WASIBridgeToHost, in imports: inout Imports, store: Store, preopens: [Preopen]) {
        var capabilities: [WasmKitWASI.WASICapability] = [.environment, .clocks, .random, .process, .stdio]
        if !preopens.isEmpty { capabilities.append(.fileSystem) }
        wasi.link(to: &imports, store: store, capabilities: capabilities, stubUnlinked: true)
        if preopens.isEmpty { defineNoPreopens(in: &imports, store: store) }
        GrantErrors.define(in: &imports, store: store, wasi: wasi, preopens: preopens)
    }

    /// Without a grant the file-system functions are stubs answering ENOSYS, and wasi-libc's
    /// start-up exits (proc_exit(71)) when its preopen scan gets anything but EBADF. Answer as a
    /// runtime with no preopened directories does, so the module loads and `fopen` fails at call
    /// time (ENOTCAPABLE); the answer comes from here, not from the kernel: no `openat` is allowed.
    private static func defineNoPreopens(in imports: inout Imports, store: Store) {
        let badDescriptor = Value.i32(8)  // WASI's errno EBADF: "not an open descriptor"
        for (name, parameters) in [("fd_prestat_get", 2), ("fd_prestat_dir_name", 3)] {
            imports.define(
                module: "wasi_snapshot_preview1", name: name,
                Function(
                    store: store,
                    type: FunctionType(parameters: Array(repeating: .i32, count: parameters), results: [.i32]),
                    body: { _, _ in [badDescriptor] }))
        }
    }
}
