import Foundation
import Logging
import PlugvisorPosix
import PlugvisorProtocol

/// Serves the control socket: one thread per client connection (bounded), frames as on the
/// worker channel, and only for clients running as the supervisor's own uid (or root).
public final class ControlServer: @unchecked Sendable {
    // SAFETY: `connections` and `stopping` are only touched under `lock`; the rest is immutable.
    public let path: String
    private let control: ControlProtocol
    private let listener: OwnedDescriptor
    private let logger: Logger
    private let onStop: @Sendable () -> Void
    private let lock = Lock()
    private var connections = 0
    private var stopping = false

    public static let maxConnections = 256

    /// Binds `path` (mode 0600) inside a directory only this uid can write to (created 0700 if missing).
    /// - Throws: `SupervisorError` when the directory is unsafe, another supervisor is
    ///   already listening there, or the socket cannot be bound.
    public init(path: String, supervisor: Supervisor, logger: Logger, onStop: @escaping @Sendable () -> Void) throws {
        self.path = path
        control = ControlProtocol(supervisor.core)
        self.logger = logger
        self.onStop = onStop
        try Self.prepareDirectory((path as NSString).deletingLastPathComponent)
        if FileManager.default.fileExists(atPath: path) {
            if (try? Descriptors.connectUnix(path: path)) != nil {
                throw SupervisorError("another supervisor is already listening on \(path); stop it or pass --control")
            }
            unlink(path)  // stale socket of a supervisor that died
        }
        let previous = umask(0o177)
        defer { umask(previous) }
        do { listener = try Descriptors.listenUnix(path: path) } catch {
            throw SupervisorError("\(error)")
        }
        chmod(path, 0o600)
    }

    /// Creates `directory` (0700) or checks the one that is there: a directory another user
    /// owns or can write to is refused, never used (it may be squatted to intercept the CLI).
    static func prepareDirectory(_ directory: String) throws {
        if mkdir(directory, 0o700) != 0 && errno != EEXIST {
            throw SupervisorError("cannot create \(directory): \(SystemError("mkdir"))")
        }
        do throws(ControlSocketTrust.Problem) { try ControlSocketTrust.checkDirectory(directory) } catch {
            throw SupervisorError("refusing to listen: \(error)")
        }
    }

    /// Accepts connections on a thread of its own until `close()`.
    public func serve() {
        let thread = Thread { [self] in
            while true {
                let client: OwnedDescriptor
                do throws(SystemError) { client = try Descriptors.accept(listener) } catch {
                    if lock.withLock({ stopping }) { return }
                    logger.error("control socket: \(error)")
                    if error.errno == EMFILE || error.errno == ENFILE { Thread.sleep(forTimeInterval: 0.05) }
                    continue
                }
                handle(client)
            }
        }
        thread.name = "plugvisor-control"
        thread.start()
    }

    /// Stops accepting and removes the socket file.
    public func close() {
        lock.withLock { stopping = true }
        listener.shutdown()
        unlink(path)
    }

    private func handle(_ client: OwnedDescriptor) {
        let channel = FrameChannel(descriptor: client, maxFrameLength: 64 << 20)
        guard let uid = try? Descriptors.peerUID(client), ControlSocketTrust.isTrusted(uid) else {
            try? channel.send(
                ControlResponse(error: PluginError(.badRequest, "permission denied: not the supervisor's user")))
            client.close()
            return
        }
        let admitted = lock.withLock { () -> Bool in
            guard connections < Self.maxConnections else { return false }
            connections += 1
            return true
        }
        guard admitted else {
            try? channel.send(ControlResponse(error: PluginError(.overloaded, "too many control connections")))
            client.close()
            return
        }
        let thread = Thread { [self] in
            defer {
                client.close()
                lock.withLock { connections -= 1 }
            }
            while true {
                let request: ControlRequest
                do throws(ChannelError) { request = try channel.receive(ControlRequest.self) } catch .closed {
                    return
                } catch {
                    try? channel.send(ControlResponse(error: PluginError(.badRequest, "\(error)")))
                    return
                }
                let response = control.respond(to: request)
                do { try channel.send(response) } catch { return }
                if request.op == .stop {
                    onStop()
                    return
                }
            }
        }
        thread.name = "plugvisor-control-client"
        thread.start()
    }
}

/// The supervisor could not do its own job (bind its socket, read a module, spawn a worker).
public struct SupervisorError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
