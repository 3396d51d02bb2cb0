import Crypto
import Foundation
import Logging
import PlugvisorPosix
import PlugvisorProtocol

/// A module's bytes and their SHA-256, read once: the hash the supervisor checks is the hash of
/// exactly the bytes the worker gets (through a sealed memfd, not the path).
struct ModuleFile: Sendable {
    static let maxBytes = 256 << 20

    let bytes: [UInt8]
    let sha256: String

    /// - Throws: when `path` cannot be read, or is not a regular file: a FIFO, a device or a
    ///   directory is refused at once (opened without blocking, then checked), never waited on.
    /// - Parameters: `limit` is the most bytes it may have; `kind` what it must be, for the
    ///   error; `followingLinks: false` refuses a symbolic link (a file a sandboxed process
    ///   wrote); with `folder`, the file named `path`'s last component is opened in that open
    ///   folder (so a folder swapped since it was opened is not read).
    init(
        path: String, limit: Int = maxBytes, kind expected: String = "a module must be a .wasm file",
        followingLinks: Bool = true, in folder: OwnedDescriptor? = nil
    ) throws(SupervisorError) {
        let file: OwnedDescriptor
        do {
            file = try Descriptors.openForReading(
                folder == nil ? path : (path as NSString).lastPathComponent, followingLinks: followingLinks,
                in: folder?.rawValue ?? AT_FDCWD)
        } catch {
            if error.errno == ELOOP && !followingLinks {
                throw SupervisorError("\(path) is a symbolic link, not a file: \(expected)")
            }
            throw SupervisorError("\(SystemError("cannot open \(path)", errno: error.errno))")
        }
        defer { file.close() }
        let type: mode_t
        do { type = try Descriptors.fileType(file) } catch {
            throw SupervisorError("\(SystemError("cannot stat \(path)", errno: error.errno))")
        }
        guard type == S_IFREG else {
            throw SupervisorError("\(path) is \(Self.kind(type)), not a regular file: \(expected)")
        }
        do { bytes = try Descriptors.readAll(file.rawValue, limit: limit + 1) } catch {
            throw SupervisorError("cannot read \(path): \(error)")
        }
        if bytes.count > limit {
            let size = limit >= 1 << 20 ? "\(limit >> 20) MiB" : "\(limit >> 10) KiB"
            throw SupervisorError("\(path) is larger than \(size)")
        }
        sha256 = SHA256.hash(data: bytes).map { String(format: "%02x", $0) }.joined()
    }

    private static func kind(_ mode: mode_t) -> String {
        switch mode & S_IFMT {
        case S_IFIFO: "a FIFO"
        case S_IFDIR: "a directory"
        case S_IFCHR: "a character device"
        case S_IFBLK: "a block device"
        case S_IFSOCK: "a socket"
        default: "of another kind"
        }
    }
}

/// `plugvisor inspect`: a throwaway worker parses the module (the supervisor never does) and
/// reports its exports, imports, ABI and what it would need.
public enum ModuleInspector {
    /// `linked` names the modules an `abi: extism` plugin has linked beside it (it may import from them).
    public static func inspect(
        path: String, linked: [String] = [], configuration: SupervisorConfiguration = .init()
    ) throws -> InspectReport {
        let module = try ModuleFile(path: path)
        // The inspector's stderr goes into the error, not the log: `inspect` prints no log.
        let quiet = Logger.silent("plugvisor.inspect")
        // It never outlives this call, so it is forked from this thread, not the spawner's.
        let launched = try ChildLauncher.launch(
            .inspector(configuration.workerExecutable, module: module.bytes), logger: quiet, spawner: nil)
        let process = launched.process
        process.monitor { _ in }
        defer {
            process.kill(because: .stopped)
            _ = process.awaitExit(timeout: .seconds(5))
        }
        let channel = FrameChannel(descriptor: launched.channel)
        let deadline = ContinuousClock.now + .seconds(30)
        do {
            guard case .hello = try channel.receive(WorkerMessage.self, deadline: deadline) else {
                throw SupervisorError("the worker did not start with hello")
            }
            try channel.send(
                SupervisorMessage.inspect(
                    InspectRequest(workerUser: geteuid() == 0 ? configuration.inspectUser : nil, linked: linked)),
                deadline: deadline)
            guard case var .inspected(report) = try channel.receive(WorkerMessage.self, deadline: deadline) else {
                throw SupervisorError("the worker sent something other than a report")
            }
            report.sha256 = module.sha256
            return report
        } catch let error as ChannelError {
            // Its stderr says why; it has all been read once the monitor has reaped it.
            process.kill(because: error == .timedOut ? .timeout : .protocolViolation)
            _ = process.awaitExit(timeout: .seconds(5))
            let stderr = process.crashReport.stderrTail.joined(separator: "\n")
            throw SupervisorError("inspecting \(path) failed: \(error) \(stderr)")
        }
    }
}

extension Logger {
    /// A logger that drops everything: for a child whose stderr goes into an error instead.
    package static func silent(_ label: String) -> Logger { Logger(label: label) { _ in SwiftLogNoOpLogHandler() } }
}
