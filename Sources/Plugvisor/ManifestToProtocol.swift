import PlugvisorManifest
import PlugvisorProtocol

// The manifest's values as the worker protocol carries them: each mapping in this one place.

extension LoadRequest {
    /// What a worker needs to load `spec`'s plugin, dropping to `workerUser` when it starts as root.
    init(spec: PluginSpec, workerUser: WorkerUser?, sandboxDrill: Bool, logLevel: String = "info") {
        self.init(
            plugin: spec.name,
            abi: spec.abi,
            memoryLimit: spec.memory,
            fuel: spec.fuel,
            env: spec.env,
            config: spec.config,
            preopens: spec.filesystem.map(Preopen.init),
            workerUser: workerUser,
            sandboxDrill: sandboxDrill,
            args: spec.args.isEmpty ? [spec.name] : spec.args,
            trapUnknownImports: spec.trapUnknownImports,
            maxVarBytes: spec.maxVarBytes,
            logLevel: logLevel)
        hostFunctions = spec.hostFunctions
    }
}

extension Preopen {
    /// A directory grant: host directory `host` appears to the guest at `guest`.
    init(_ grant: PluginSpec.DirectoryGrant) {
        self.init(host: grant.host, guest: grant.guest, readOnly: grant.mode == .readOnly)
    }
}
