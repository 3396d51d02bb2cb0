import Crypto
import Foundation
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
    init(path: String) throws(SupervisorError) {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY)
        guard fd >= 0 else { throw SupervisorError("\(SystemError("cannot open \(path)"))") }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw SupervisorError("\(SystemError("cannot stat \(path)"))") }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            throw SupervisorError("\(path) is \(Self.kind(info.st_mode)), not a regular file: a module must be a .wasm file")
        }
        do { bytes = try Descriptors.readAll(fd, limit: Self.maxBytes + 1) } catch {
            throw SupervisorError("cannot read \(path): \(error)")
        }
        if bytes.count > Self.maxBytes { throw SupervisorError("\(path) is larger than 256 MiB") }
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
    public static func inspect(path: String, configuration: SupervisorConfiguration = .init()) throws -> InspectReport {
        let module = try ModuleFile(path: path)
        let (ours, theirs) = try Descriptors.socketPair()
        let moduleFile = try Descriptors.sealedMemoryFile(name: "plugvisor-inspect", contents: module.bytes)
        let (stderrRead, stderrWrite) = try Descriptors.pipe()
        let process = try ChildProcess.spawn(
            executable: configuration.workerExecutable, arguments: ["inspect"],
            environment: ["SWIFT_BACKTRACE": "enable=no", "PLUGVISOR_SUPERVISOR_PID": "\(getpid())"],
            channel: theirs, extra: moduleFile, stderr: stderrWrite)
        theirs.close()
        moduleFile.close()
        stderrWrite.close()
        defer {
            process.signal(SIGKILL)
            _ = process.waitForExit()
        }
        let channel = FrameChannel(descriptor: ours)
        let deadline = ContinuousClock.now + .seconds(30)
        do {
            guard case .hello = try channel.receive(WorkerMessage.self, deadline: deadline) else {
                throw SupervisorError("the worker did not start with hello")
            }
            try channel.send(SupervisorMessage.inspect(InspectRequest(
                workerUser: geteuid() == 0 ? configuration.inspectUser : nil)))
            guard case var .inspected(report) = try channel.receive(WorkerMessage.self, deadline: deadline) else {
                throw SupervisorError("the worker sent something other than a report")
            }
            report.sha256 = module.sha256
            return report
        } catch let error as ChannelError {
            process.signal(SIGKILL)
            let stderr = (try? Descriptors.readAll(stderrRead.rawValue, limit: 4096)).map { String(decoding: $0, as: UTF8.self) } ?? ""
            throw SupervisorError("inspecting \(path) failed: \(error) \(stderr)")
        }
    }
}
