import Foundation
import PlugvisorPosix
import PlugvisorProtocol
import PlugvisorSandbox

/// The network broker process: performs guests' `plugvisor.http_request` for the supervisor, so
/// that FoundationNetworking and libcurl, which parse what remote servers send, never run in the
/// trusted supervisor.
///
/// It is started by the supervisor with fd 3 = its socketpair end, an empty environment, and
/// optionally `--user UID:GID` (the user to drop to when started as root). Tests add
/// `--drill N` to prove the lockdown. It locks itself down
/// before it reads its first request, then serves requests concurrently until the supervisor
/// hangs up.
public enum PlugvisorBroker {
    static let channelFD: Int32 = 3
    /// Requests in flight at once; past it a request is answered with an error at once.
    static let maxConcurrentRequests = 64
    /// What the broker may read (Landlock): the C library's name service and resolver
    /// configuration and CA certificates under /etc, shared libraries (libcurl, OpenSSL, NSS
    /// modules) and certificates under /usr and /lib. Nothing is writable.
    static let readableDirectories = ["/etc", "/usr", "/lib", "/lib64"]

    public static func main() -> Never {
        // Die with the supervisor; tell a person who runs this binary by hand what it is.
        SupervisedStart.begin(channel: channelFD, program: "plugvisor-broker")
        do { try lockDown(user: user(from: CommandLine.arguments)) } catch { fail("\(error)") }
        if let which = drill(from: CommandLine.arguments) {
            // Test-only: attempt one forbidden operation (see `pv_sandbox_drill`) after lockdown.
            // Under the filter the process dies of SIGSYS; surviving it exits 0.
            _ = Lockdown.drill(which)
            exit(0)
        }
        serve()
    }

    /// The worker's lockdown (`Lockdown.apply`), with descriptors and rlimits first, and without
    /// its namespaces: the broker connects through the host's network and resolver.
    static func lockDown(user: WorkerUser?) throws(SandboxError) {
        try Lockdown.atStart(keepingThrough: channelFD)
        try Lockdown.setResourceLimits(.broker)
        let directories = readableDirectories.filter { FileManager.default.fileExists(atPath: $0) }
        try Lockdown.apply(
            LockdownPlan(
                directories: directories.map { .init(path: $0, writable: false) }, user: user, policy: .broker,
                isolated: false))
    }

    static func user(from arguments: [String]) -> WorkerUser? {
        guard let flag = arguments.firstIndex(of: "--user"), flag + 1 < arguments.count else { return nil }
        guard let user = WorkerUser(argument: arguments[flag + 1]) else {
            fail("--user wants UID:GID, not \(arguments[flag + 1])")
        }
        return user
    }

    static func drill(from arguments: [String]) -> Int32? {
        guard let flag = arguments.firstIndex(of: "--drill"), flag + 1 < arguments.count else { return nil }
        return Int32(arguments[flag + 1])
    }

    /// Reads requests on the main thread and performs each on its own thread, which sends its
    /// answer on the same channel (full duplex: frames from several threads never interleave).
    private static func serve() -> Never {
        let channel = FrameChannel(descriptor: OwnedDescriptor(channelFD))
        let inFlight = InFlightLimit(maxConcurrentRequests)
        let answer: @Sendable (HostResult) -> Void = { result in
            do throws(ChannelError) { try channel.send(result) } catch .closed { exit(0) } catch { fail("\(error)") }
        }
        while true {
            let request: BrokerRequest
            do { request = try channel.receive(BrokerRequest.self) } catch .closed {
                exit(0)  // the supervisor hung up: it is shutting down (or gone)
            } catch {
                fail("\(error)")
            }
            guard inFlight.enter() else {
                answer(
                    HostResult(
                        id: request.id,
                        result: [
                            "error": .string(
                                "the network broker is busy (\(maxConcurrentRequests) requests in flight); try again")
                        ]))
                continue
            }
            let thread = Thread {
                let deadline = ContinuousClock.now + .milliseconds(max(0, request.timeoutMillis))
                let result = HTTPBroker.perform(request.request, allowedHosts: request.allowedHosts, deadline: deadline)
                answer(HostResult(id: request.id, result: result))
                inFlight.leave()
            }
            thread.name = "plugvisor-broker-\(request.id)"
            thread.stackSize = 1 << 20
            thread.start()
        }
    }

    static func fail(_ message: String) -> Never {
        Descriptors.writeToStandardError("plugvisor-broker: \(message)\n")
        exit(70)
    }
}

extension ResourceLimits {
    /// The broker's limits: no core dumps (set at start), no file writes, 256 descriptors (sockets
    /// for up to 64 requests at once), and 2 GiB of heap and private mappings: room for 64
    /// request threads and FoundationNetworking's own, and a bound on a response-driven leak.
    static let broker = ResourceLimits(dataBytes: 2 << 30, openFiles: 256, cpuSeconds: .max, fileBytes: 0)
}
