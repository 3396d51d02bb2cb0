import Foundation
import PlugvisorProtocol

/// A validated plugin manifest (DESIGN §5). Every capability defaults to denied.
///
/// Values are plain and already checked: code that holds a `Manifest` never re-validates it.
public struct Manifest: Sendable, Equatable {
    public var plugins: [PluginSpec]
    /// The manifest's own path; relative paths inside it were resolved against its directory.
    public var path: String

    public init(plugins: [PluginSpec], path: String) {
        self.plugins = plugins
        self.path = path
    }
}

public struct PluginSpec: Sendable, Equatable {
    /// The protocol's own type: a manifest's `abi:` reaches the worker unmapped.
    public typealias ABI = GuestABI

    public enum AccessMode: String, Sendable, Equatable, CaseIterable {
        case readOnly = "ro"
        case readWrite = "rw"
    }

    public struct DirectoryGrant: Sendable, Equatable {
        /// Absolute host path.
        public var host: String
        /// Absolute path inside the guest.
        public var guest: String
        public var mode: AccessMode
        public init(host: String, guest: String, mode: AccessMode) {
            self.host = host
            self.guest = guest
            self.mode = mode
        }
    }

    public struct RestartPolicy: Sendable, Equatable {
        /// Restarts allowed within `within` before the plugin is marked failed.
        public var max: Int
        public var within: Duration
        public var backoffMin: Duration
        public var backoffMax: Duration
        public static let `default` = RestartPolicy(
            max: 5, within: .seconds(60), backoffMin: .milliseconds(100), backoffMax: .seconds(5))
        public init(max: Int, within: Duration, backoffMin: Duration, backoffMax: Duration) {
            self.max = max
            self.within = within
            self.backoffMin = backoffMin
            self.backoffMax = backoffMax
        }
    }

    public struct CircuitPolicy: Sendable, Equatable {
        /// Consecutive failed calls that open the circuit.
        public var failures: Int
        /// How long it stays open before one call is let through.
        public var reset: Duration
        public init(failures: Int, reset: Duration) {
            self.failures = failures
            self.reset = reset
        }
    }

    public var name: String
    /// Absolute path of the module; empty for a plugin built from `source`.
    public var wasm: String
    /// Swift sources the supervisor builds into the module (with the Swift kit), instead of `wasm`.
    public var source: SwiftSource?

    /// A `.swift` file, or a folder whose `.swift` files are the plugin (one module, with the kit).
    public struct SwiftSource: Sendable, Equatable, Codable {
        /// Absolute.
        public var path: String
        /// As the manifest gives it: diagnostics name the sources this way.
        public var written: String
        public init(path: String, written: String) {
            self.path = path
            self.written = written
        }

        /// Whether `path` is a folder of sources (else one file), as it is now.
        public var isFolder: Bool {
            var isDirectory: ObjCBool = false
            return FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && isDirectory.boolValue
        }

        /// The folder the sources are in: `path` itself, or the one file's.
        public var folder: String { isFolder ? path : (path as NSString).deletingLastPathComponent }
    }
    /// Lower-case hex; when set, a module with another hash is refused.
    public var sha256: String?
    public var abi: ABI = .plugvisor
    public var instances: Int = 1
    /// Spare workers kept loaded and locked down, which take a lost worker's place at once.
    public var standby: Int = 0
    public var maxQueue: Int = 64
    public var timeout: Duration = .seconds(5)
    public var fuel: UInt64?
    /// Linear memory cap in bytes.
    public var memory: Int?
    public var filesystem: [DirectoryGrant] = []
    /// `HostPattern`s in their canonical text (`api.example.com`, `*.internal.example:8443`,
    /// `[::1]:8080`); empty means no network.
    public var allowedHosts: [String] = []
    public var env: [String: String] = [:]
    public var config: [String: String] = [:]
    /// Link function imports that nothing grants as functions that trap when called, instead
    /// of refusing the module (for real-world WASI programs with optional host hooks).
    public var trapUnknownImports = false
    /// For `abi: wasi-command`: argv, the first being the program's name (default: the plugin's).
    public var args: [String] = []
    /// For `abi: extism`: the most bytes its vars may hold (Extism's `max_var_bytes`); 0 disables them.
    public var maxVarBytes: Int = LoadRequest.defaultMaxVarBytes
    /// Host functions of the embedding program the plugin may call (`extism:host/user` imports).
    public var hostFunctions: [String] = []
    /// For `abi: extism`: modules the plugin imports from by name, in the manifest's order.
    public var modules: [NamedModule] = []

    /// A module linked under `name` (its absolute path in `wasm`).
    public struct NamedModule: Sendable, Equatable, Codable {
        public var name: String
        public var wasm: String
        public init(name: String, wasm: String) {
            self.name = name
            self.wasm = wasm
        }
    }
    public var restart: RestartPolicy = .default
    public var circuit: CircuitPolicy?

    public init(name: String, wasm: String) {
        self.name = name
        self.wasm = wasm
    }
}

/// One problem found in a manifest, located as precisely as the source allows.
public struct ManifestProblem: Error, Sendable, Equatable, CustomStringConvertible {
    public var file: String
    public var line: Int?
    public var column: Int?
    /// Where in the document, e.g. `plugins[1].timeout`.
    public var keyPath: String?
    public var message: String

    public init(file: String, line: Int?, column: Int?, keyPath: String?, message: String) {
        self.file = file
        self.line = line
        self.column = column
        self.keyPath = keyPath
        self.message = message
    }

    /// `file:line:column: key: message`, the form editors and terminals link to.
    public var description: String {
        var location = file
        if let line { location += ":\(line)" }
        if let column { location += ":\(column)" }
        if let keyPath { return "\(location): \(keyPath): \(message)" }
        return "\(location): \(message)"
    }
}

/// Every problem of a manifest at once.
public struct ManifestErrors: Error, Sendable, CustomStringConvertible {
    public var problems: [ManifestProblem]
    public init(_ problems: [ManifestProblem]) { self.problems = problems }
    public var description: String { problems.map(\.description).joined(separator: "\n") }
}
