import Crypto
import Foundation
import Logging
import PlugvisorManifest
import PlugvisorPosix
import PlugvisorProtocol

/// A plugin given as Swift sources (`source:` in the manifest), built into its module with the
/// Swift kit (kits/swift/Plugvisor.swift, compiled into plugvisor) by the toolchain on PATH,
/// and cached by what went into it.
///
/// Plugin sources are as untrusted as plugin modules, so the supervisor only reads, hashes and
/// copies them; the compiler and the linker each run in a worker process that locks itself down
/// first (`CompileRequest`): namespaces of its own with nothing in its root but the toolchain,
/// the libraries and the copied sources (read-only) and its output folder, no network, the
/// plugin's worker uid when started as root, rlimits, and a wall-clock timeout. The frontend is
/// run directly, with no plugin search path, so no macro or other compiler plugin can load
/// (and the toolchain's plugin folder is not in the sandbox either).
public struct SwiftSourceBuilder: Sendable {
    /// A module built, or found in the cache.
    public struct Built: Sendable {
        /// The cached module.
        public var path: String
        public var bytes: [UInt8]
        public var sha256: String
    }

    /// The toolchain and the wasm32 libraries a build uses.
    struct Toolchain: Sendable {
        /// Holds `usr/bin/swift-frontend`.
        var root: String
        var frontend: String
        var linker: String
        /// The path, size and modification time of the frontend, the linker and the libraries
        /// it links: the toolchain's part of the cache key, known without running anything.
        var identity: String
        var embeddedLibrary: String
        var builtins: String
    }

    /// How long each step may take, and what it may use.
    static let compileTimeout: Duration = .seconds(120)
    static let limits = CompileRequest.Limits(cpuSeconds: 120, dataBytes: 4 << 30, fileBytes: 256 << 20)
    static let maxSourceFiles = 128
    static let maxSourceBytes = 4 << 20
    static let maxDiagnosticBytes = 64 << 10
    static let wasiLibc = "/usr/lib/wasm32-wasi"
    /// Changes when the flags below do, so that older cache entries are not used.
    static let recipe = "plugvisor-swift-source-1"

    let configuration: SupervisorConfiguration
    let logger: Logger

    public init(configuration: SupervisorConfiguration, logger: Logger = Logger(label: "plugvisor.build")) {
        self.configuration = configuration
        self.logger = logger
    }

    /// Where built modules are kept: `$CACHE_DIRECTORY` (systemd's CacheDirectory=), else
    /// `$XDG_CACHE_HOME/plugvisor`, else `~/.cache/plugvisor`.
    public static func defaultCacheDirectory() -> String {
        let environment = ProcessInfo.processInfo.environment
        if let systemd = environment["CACHE_DIRECTORY"]?.split(separator: ":").first, systemd.hasPrefix("/") {
            return String(systemd)
        }
        if let xdg = environment["XDG_CACHE_HOME"], xdg.hasPrefix("/") { return xdg + "/plugvisor" }
        let home = environment["HOME"].flatMap { $0.hasPrefix("/") ? $0 : nil } ?? NSHomeDirectory()
        return home + "/.cache/plugvisor"
    }

    var cacheDirectory: String { (configuration.cacheDirectory ?? Self.defaultCacheDirectory()) + "/swift" }

    /// The module of `source`: from the cache when the same sources, kit and compiler built it
    /// before (no compiler runs then), else built now and cached.
    /// - Parameter user: who the compiler runs as when the supervisor runs as root.
    public func build(
        _ source: PluginSpec.SwiftSource, plugin: String, user: WorkerUser?
    ) throws(SupervisorError) -> Built {
        let toolchain = try Self.findToolchain()
        let files = try Self.readSources(source)
        let key = Self.cacheKey(toolchain: toolchain, kit: KitSources.swiftKit, files: files)
        let cached = cacheDirectory + "/\(key).wasm"
        if let built = try cachedModule(at: cached, plugin: plugin) { return built }
        // One build at a time: a compiler takes hundreds of MiB, and a manifest of many
        // plugins from source would otherwise start them all at once.
        Self.buildLock.lock()
        defer { Self.buildLock.unlock() }
        if let built = try cachedModule(at: cached, plugin: plugin) { return built }

        let started = ContinuousClock.now
        let work = try Self.makeWorkDirectory()
        defer { Self.remove(work) }
        let (src, kitDirectory, out) = (work + "/src", work + "/kit", work + "/out")
        do {
            // Only the compiler's user (and root) may read the copies or write the output.
            var written = [src, kitDirectory, out]
            for directory in written {
                try FileManager.default.createDirectory(
                    atPath: directory, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
            }
            for (path, bytes) in files.map({ (src + "/" + $0.name, $0.bytes) })
                + [(kitDirectory + "/Plugvisor.swift", KitSources.swiftKit)]
            {
                guard
                    FileManager.default.createFile(
                        atPath: path, contents: Data(bytes), attributes: [.posixPermissions: 0o600])
                else { throw SystemError("write \(path)") }
                written.append(path)
            }
            if let user, geteuid() == 0 {
                for path in written where chown(path, user.uid, user.gid) != 0 { throw SystemError("chown \(path)") }
            }
        } catch {
            throw SupervisorError("cannot prepare the build of \(source.written) in \(work): \(error)")
        }
        let rename = DiagnosticNames(
            replacing: [
                (src + "/", Self.displayFolder(of: source)),
                (kitDirectory + "/", "kits/swift/"),
                (out + "/", ""),
            ])
        var directories = Self.toolchainDirectories(toolchain)
        directories += [.init(src, .read), .init(kitDirectory, .read), .init(out, .write)]

        // No /proc in the sandbox, so the loader cannot expand the toolchain's $ORIGIN run paths.
        let environment = [
            "TMPDIR": out,
            "LD_LIBRARY_PATH": "\(toolchain.root)/usr/lib/swift/linux:\(toolchain.root)/usr/lib/swift/host/compiler",
        ]
        let compile = CompileRequest(
            program: toolchain.frontend,
            arguments: ["-frontend", "-c", kitDirectory + "/Plugvisor.swift"] + files.map { src + "/" + $0.name } + [
                "-target", "wasm32-unknown-none-wasm", "-disable-objc-interop", "-no-color-diagnostics",
                "-diagnostic-style", "llvm", "-Xcc", "-fno-color-diagnostics", "-Osize", "-disable-stack-protector",
                "-enable-experimental-feature", "Embedded", "-enable-experimental-feature", "Extern",
                // Named, since the frontend cannot find itself without /proc.
                "-resource-dir", toolchain.root + "/usr/lib/swift",
                "-empty-abi-descriptor", "-module-name", "Plugin", "-enable-default-cmo", "-parse-as-library",
                "-module-cache-path", out + "/module-cache", "-o", out + "/plugin.o",
            ],
            environment: environment, directories: directories, workerUser: user, limits: Self.limits)
        try run(compile, failure: "\(source.written) does not compile", rename: rename)
        let link = CompileRequest(
            program: toolchain.linker,
            arguments: [
                "--no-entry", "--strip-all", out + "/plugin.o", "-L\(Self.wasiLibc)", "-lc",
                "-L\(toolchain.embeddedLibrary)",
                "-lswiftUnicodeDataTables", toolchain.builtins, "-o", out + "/plugin.wasm",
            ],
            environment: environment, directories: directories, workerUser: user, limits: Self.limits)
        try run(link, failure: "\(source.written) does not link", rename: rename)

        // Written by the sandboxed linker: a link it left there would be followed by us.
        let module = try ModuleFile(path: out + "/plugin.wasm", followingLinks: false)
        try Self.store(module.bytes, at: cached)
        let milliseconds = (ContinuousClock.now - started).microseconds / 1000
        logger.info(
            "built from source", metadata: ["plugin": "\(plugin)", "module": "\(cached)", "ms": "\(milliseconds)"])
        return Built(path: cached, bytes: module.bytes, sha256: module.sha256)
    }

    /// For `plugvisor validate` and `inspect`, which print no log: built as `plugvisor
    /// inspect`'s user when run as root. (Untyped: a typed throw caught in the CLI's release
    /// build crashed Swift 6.3.1's LLVM verifier, "swifterror value can only be loaded and
    /// stored from".)
    public static func buildForInspection(
        _ source: PluginSpec.SwiftSource, configuration: SupervisorConfiguration
    ) throws -> Built {
        try SwiftSourceBuilder(configuration: configuration, logger: .silent("plugvisor.build")).build(
            source, plugin: (source.path as NSString).lastPathComponent,
            user: geteuid() == 0 ? configuration.inspectUser : nil)
    }

    private static let buildLock = NSLock()

    private func cachedModule(at path: String, plugin: String) throws(SupervisorError) -> Built? {
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        try Self.checkOwnership(of: (path as NSString).deletingLastPathComponent)
        let module = try ModuleFile(path: path, followingLinks: false)
        logger.info("module from the cache", metadata: ["plugin": "\(plugin)", "module": "\(path)"])
        return Built(path: path, bytes: module.bytes, sha256: module.sha256)
    }

    // MARK: Steps

    /// Runs one step in a locked-down worker; throws `failure` with its diagnostics unless it
    /// exits 0 within `compileTimeout`.
    private func run(_ request: CompileRequest, failure: String, rename: DiagnosticNames) throws(SupervisorError) {
        // Its stderr before the exec (a sandbox step that failed) goes into the error, not the log.
        let quiet = Logger.silent("plugvisor.build")
        let launched: LaunchedChild
        do {
            // It never outlives this call, so it is forked from this thread.
            launched = try ChildLauncher.launch(
                ChildRole(executable: configuration.workerExecutable, arguments: ["compile"], module: nil),
                logger: quiet, spawner: nil)
        } catch {
            throw SupervisorError("cannot start \(configuration.workerExecutable) to build: \(error)")
        }
        let process = launched.process
        process.monitor { _ in }
        defer {
            // The compiler is pid 1 of its own PID namespace, under this worker: what it
            // started dies with it.
            process.kill(because: .stopped)
            _ = process.awaitExit(timeout: .seconds(5))
        }
        let deadline = ContinuousClock.now + Self.compileTimeout
        let channel = FrameChannel(descriptor: launched.channel)
        let output: DiagnosticOutput
        do {
            guard case .hello = try channel.receive(WorkerMessage.self, deadline: deadline) else {
                throw SupervisorError("the worker did not start with hello")
            }
            try channel.send(SupervisorMessage.compile(request), deadline: deadline)
            // From here the channel carries the step's stdout and stderr, as bytes.
            // Until the step exits, not until the channel closes: a process it left behind may
            // hold the channel open (it dies with the step's process group, below).
            output = DiagnosticOutput.read(
                launched.channel.rawValue, limit: Self.maxDiagnosticBytes, until: deadline,
                finished: { process.hasExited })
        } catch {
            process.kill(because: .protocolViolation)
            _ = process.awaitExit(timeout: .seconds(5))
            throw SupervisorError(
                "\(failure): the build worker failed: \(error) \(process.crashReport.stderrTail.joined(separator: "\n"))"
            )
        }
        if output.timedOut {
            process.kill(because: .timeout)
            throw SupervisorError("\(failure): it took longer than \(Self.compileTimeout)")
        }
        let exit = process.awaitExit(timeout: .seconds(10))
        guard exit == .exited(code: 0) else {
            let stderr = process.crashReport.stderrTail.joined(separator: "\n")
            let diagnostics = rename.apply(output.text + stderr)
            throw SupervisorError("\(failure) (\(exit.map { "\($0)" } ?? "did not exit")):\n\(diagnostics)")
        }
    }

    // MARK: Inputs

    struct SourceFile: Sendable {
        var name: String
        var bytes: [UInt8]
    }

    /// The `.swift` files of `source`: the file itself, or the folder's own (not its
    /// subfolders'), each a regular file in it (a link could name any file the supervisor can
    /// read), with a name that cannot be mistaken for a compiler option.
    static func readSources(_ source: PluginSpec.SwiftSource) throws(SupervisorError) -> [SourceFile] {
        guard FileManager.default.fileExists(atPath: source.path) else {
            throw SupervisorError("\(source.written): no such file or folder")
        }
        let isFolder = source.isFolder
        let folder = source.folder
        var names: [String]
        if isFolder {
            do { names = try FileManager.default.contentsOfDirectory(atPath: folder) } catch {
                throw SupervisorError("cannot list \(source.written): \(error.localizedDescription)")
            }
            names = names.filter { $0.hasSuffix(".swift") }.sorted()
            guard !names.isEmpty else { throw SupervisorError("\(source.written) has no .swift files") }
            guard names.count <= maxSourceFiles else {
                throw SupervisorError("\(source.written) has \(names.count) .swift files; at most \(maxSourceFiles)")
            }
        } else {
            names = [(source.path as NSString).lastPathComponent]
        }
        // Each file is opened in the folder as opened now, never through a link: a source's
        // author could otherwise point it, or swap it, at any file the supervisor can read.
        let folderDescriptor = open(folder, O_RDONLY | O_DIRECTORY | O_CLOEXEC | (isFolder ? O_NOFOLLOW : 0))
        guard folderDescriptor >= 0 else {
            throw SupervisorError(
                errno == ELOOP || errno == ENOTDIR
                    ? "\(source.written) is a symbolic link: name the folder itself"
                    : "cannot open \(folder): \(String(cString: strerror(errno)))")
        }
        let opened = OwnedDescriptor(folderDescriptor)
        defer { opened.close() }
        var files: [SourceFile] = []
        var total = 0
        for name in names {
            let path = folder + "/" + name
            guard isPlainSourceName(name) else {
                throw SupervisorError(
                    "\(path): a source file's name must be letters, digits, '.', '_', '+' or '-', not starting with '-' or '.'"
                )
            }
            let file = try ModuleFile(
                path: path, limit: maxSourceBytes,
                kind: "a source is a .swift file in the plugin's folder, not a link to elsewhere",
                followingLinks: false, in: opened)
            total += file.bytes.count
            guard total <= maxSourceBytes else {
                throw SupervisorError("\(source.written): its sources are larger than \(maxSourceBytes >> 20) MiB")
            }
            files.append(SourceFile(name: name, bytes: file.bytes))
        }
        return files
    }

    static func isPlainSourceName(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, first != "-", first != "." else { return false }
        return name.unicodeScalars.allSatisfy {
            $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || "._+-".unicodeScalars.contains($0))
        }
    }

    /// The sha256 of everything a build depends on: the recipe, the compiler, the kit, and each
    /// source file's name and bytes.
    static func cacheKey(toolchain: Toolchain, kit: [UInt8], files: [SourceFile]) -> String {
        var hash = SHA256()
        func add(_ bytes: some Sequence<UInt8>) {
            let array = Array(bytes)
            hash.update(data: Array("\(array.count):".utf8))
            hash.update(data: array)
        }
        add(recipe.utf8)
        add(toolchain.identity.utf8)
        add(kit)
        for file in files {
            add(file.name.utf8)
            add(file.bytes)
        }
        return hash.finalize().map { String(format: "%02x", $0) }.joined()
    }

    /// The folder diagnostics name a source file by: as the manifest wrote it.
    static func displayFolder(of source: PluginSpec.SwiftSource) -> String {
        let folder = source.isFolder ? source.written : (source.written as NSString).deletingLastPathComponent
        return folder.isEmpty ? "" : folder.hasSuffix("/") ? folder : folder + "/"
    }

    /// The `swiftc` on PATH, resolved to its toolchain, with the wasm32 libraries beside it.
    static func findToolchain() throws(SupervisorError) -> Toolchain {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        guard
            let swiftc = path.split(separator: ":").map({ String($0) + "/swiftc" }).first(where: {
                access($0, X_OK) == 0
            })
        else {
            throw SupervisorError(
                "no swiftc on PATH (\(path)): a plugin built from source needs a Swift 6.3 toolchain with Embedded Swift"
            )
        }
        let bin = (URL(fileURLWithPath: swiftc).resolvingSymlinksInPath().path as NSString).deletingLastPathComponent
        let root = ((bin as NSString).deletingLastPathComponent as NSString).deletingLastPathComponent
        let frontend = bin + "/swift-frontend"
        let linker = bin + "/wasm-ld"
        var info = stat()
        guard stat(frontend, &info) == 0, access(linker, X_OK) == 0 else {
            throw SupervisorError("\(swiftc) has no swift-frontend and wasm-ld beside it in \(bin)")
        }
        let embedded = root + "/usr/lib/swift/embedded/wasm32-unknown-none-wasm"
        guard FileManager.default.fileExists(atPath: embedded) else {
            throw SupervisorError("the toolchain in \(root) has no Embedded Swift for wasm32 (\(embedded))")
        }
        guard FileManager.default.fileExists(atPath: wasiLibc + "/libc.a") else {
            throw SupervisorError("\(wasiLibc)/libc.a is missing: install Debian's wasi-libc")
        }
        var found = glob_t()
        defer { globfree(&found) }
        let pattern = "/usr/lib/llvm-*/lib/clang/*/lib/wasi/libclang_rt.builtins-wasm32.a"
        let builtins: [String] =
            glob(pattern, 0, nil, &found) == 0
            ? (0..<Int(found.gl_pathc)).compactMap { found.gl_pathv[$0].map { String(cString: $0) } } : []
        guard let newest = builtins.max(by: { $0.compare($1, options: .numeric) == .orderedAscending }) else {
            throw SupervisorError("no \(pattern): install Debian's libclang-rt-dev-wasm32")
        }
        // Every program and library a build uses, by path, size and modification time.
        let identity = [
            frontend, linker, newest, wasiLibc + "/libc.a", embedded + "/libswiftUnicodeDataTables.a",
        ].map { path in
            var file = stat()
            _ = stat(path, &file)
            return "\(path) \(file.st_size) \(file.st_mtim.tv_sec).\(file.st_mtim.tv_nsec)"
        }.joined(separator: "\n")
        return Toolchain(
            root: root, frontend: frontend, linker: linker, identity: identity, embeddedLibrary: embedded,
            builtins: newest)
    }

    /// What the sandboxed compiler and linker see: the toolchain's binaries (executable) and
    /// libraries without its compiler plugins, the system's shared libraries, and the wasm32 libraries.
    static func toolchainDirectories(_ toolchain: Toolchain) -> [CompileRequest.Directory] {
        let swiftLibraries = toolchain.root + "/usr/lib/swift"
        // The compiler lists the library folder for module maps; only these entries are in it.
        var directories: [CompileRequest.Directory] = [
            .init(toolchain.root + "/usr/bin", .execute), .init(swiftLibraries, .list),
        ]
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: swiftLibraries)) ?? []
        for entry in entries.sorted() where entry != "host" {
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: swiftLibraries + "/" + entry, isDirectory: &isDirectory),
                isDirectory.boolValue
            {
                directories.append(.init(swiftLibraries + "/" + entry, .read))
            }
        }
        // The frontend's own shared libraries; not `host/plugins`, the macro implementations.
        directories.append(.init(swiftLibraries + "/host/compiler", .read))
        #if arch(x86_64)
        let multiarch = "x86_64-linux-gnu"
        #elseif arch(arm64)
        let multiarch = "aarch64-linux-gnu"
        #else
        let multiarch = "unknown"
        #endif
        // The dynamic loader is executed with each program, so its folders need execute.
        for folder in ["/lib64", "/lib/\(multiarch)", "/usr/lib/\(multiarch)"]
        where FileManager.default.fileExists(atPath: folder) {
            directories.append(.init(folder, .execute))
        }
        directories.append(.init(wasiLibc, .read))
        directories.append(.init((toolchain.builtins as NSString).deletingLastPathComponent, .read))
        return directories.filter { FileManager.default.fileExists(atPath: $0.path) }
    }

    private static func makeWorkDirectory() throws(SupervisorError) -> String {
        var template = Array((NSTemporaryDirectory() + "/plugvisor-build-XXXXXX").utf8CString)
        guard let made = mkdtemp(&template) else {
            throw SupervisorError(
                "cannot make a build folder in \(NSTemporaryDirectory()): \(String(cString: strerror(errno)))")
        }
        let path = String(cString: made)
        // The compiler may run as another uid (the plugin's): it must reach src, kit and out,
        // which are its own, but list nothing here.
        chmod(path, 0o711)
        return path
    }

    /// Removes a build folder whatever the compiler left in it: folders it made unreadable or
    /// unwritable are given back to their owner first (links are removed, never followed).
    static func remove(_ path: String) {
        func reopen(_ folder: String) {
            var info = stat()
            guard lstat(folder, &info) == 0, info.st_mode & S_IFMT == S_IFDIR else { return }
            chmod(folder, 0o700)
            for entry in (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? [] {
                reopen(folder + "/" + entry)
            }
        }
        reopen(path)
        try? FileManager.default.removeItem(atPath: path)
    }

    /// A cache folder someone else could write is not trusted: a module planted there would
    /// be served, and a link followed.
    static func checkOwnership(of folder: String) throws(SupervisorError) {
        var info = stat()
        guard lstat(folder, &info) == 0 else {
            throw SupervisorError("cannot use the cache \(folder): \(String(cString: strerror(errno)))")
        }
        guard info.st_mode & S_IFMT == S_IFDIR, info.st_uid == geteuid(), info.st_mode & 0o022 == 0 else {
            throw SupervisorError(
                "the cache \(folder) is not a folder of this user's that only it can write: give another with --cache-dir"
            )
        }
    }

    /// Writes `bytes` to `path` whole or not at all (a temporary file renamed over it). The
    /// cache is the supervisor's user's alone (0700, 0600), as the sources may be private.
    private static func store(_ bytes: [UInt8], at path: String) throws(SupervisorError) {
        let folder = (path as NSString).deletingLastPathComponent
        do {
            try FileManager.default.createDirectory(
                atPath: folder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            try checkOwnership(of: folder)
            let temporary = path + ".\(getpid()).tmp"
            guard
                FileManager.default.createFile(
                    atPath: temporary, contents: Data(bytes), attributes: [.posixPermissions: 0o600])
            else { throw SystemError("write \(temporary)") }
            guard rename(temporary, path) == 0 else {
                unlink(temporary)
                throw SystemError("rename \(temporary)")
            }
        } catch {
            throw SupervisorError(
                "cannot keep the built module in \(folder): \(error) (give another with --cache-dir)"
            )
        }
    }
}

/// Compiler output names the sandbox's copies: these replacements name the user's files instead.
struct DiagnosticNames {
    var replacing: [(String, String)]

    /// The text, with control characters other than newline and tab dropped, and paths renamed.
    func apply(_ text: String) -> String {
        var clean = String(
            String.UnicodeScalarView(
                text.unicodeScalars.filter { $0 == "\n" || $0 == "\t" || $0.value >= 0x20 && $0.value != 0x7f }))
        for (from, to) in replacing { clean = clean.replacingOccurrences(of: from, with: to) }
        return clean.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

/// What a build step wrote, read until it closes its end or `finished` says it exited (and
/// nothing more is waiting), or until the deadline; at most `limit` bytes are kept (the rest is
/// read and dropped, so the step never blocks on a full socket).
struct DiagnosticOutput {
    var text: String
    var timedOut: Bool

    static func read(
        _ descriptor: Int32, limit: Int, until deadline: ContinuousClock.Instant, finished: () -> Bool
    ) -> DiagnosticOutput {
        var kept: [UInt8] = []
        var dropped = 0
        var chunk = [UInt8](repeating: 0, count: 16 << 10)
        while true {
            let left = deadline - ContinuousClock.now
            guard left > .zero else { return DiagnosticOutput(text: "", timedOut: true) }
            // Checked before the poll, so that what it wrote before it exited is still read.
            let exited = finished()
            var poll = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
            let ready = Glibc.poll(&poll, 1, exited ? 0 : Int32(min(left.microseconds / 1000 + 1, 50)))
            if ready < 0 && errno != EINTR { break }
            if ready == 0 && exited { break }
            if ready <= 0 { continue }
            let count = Glibc.read(descriptor, &chunk, chunk.count)
            if count < 0 && (errno == EINTR || errno == EAGAIN) { continue }
            if count <= 0 { break }
            let room = max(0, limit - kept.count)
            kept += chunk[0..<min(count, room)]
            dropped += count - min(count, room)
        }
        var text = String(decoding: kept, as: UTF8.self)
        if dropped > 0 { text += "\n(\(dropped) more bytes of diagnostics dropped)" }
        return DiagnosticOutput(text: text, timedOut: false)
    }
}
