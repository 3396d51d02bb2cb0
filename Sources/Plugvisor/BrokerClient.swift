import Foundation
import Logging
import PlugvisorPosix
import PlugvisorProtocol

/// The supervisor's side of `plugvisor-broker`, the sandboxed process that performs guests'
/// `plugvisor.http_request`: FoundationNetworking and libcurl, which parse what remote servers
/// send, never run in the trusted supervisor.
///
/// One broker serves the whole supervisor. It is started on the first request and again on the
/// first request after it died. Callers on any thread send under a lock; one reader thread per
/// broker hands answers to the waiting callers by id. Every byte from the broker is treated as
/// hostile: an answer nobody waits for is dropped, a malformed frame gets the broker killed, and
/// a caller never waits past its call's deadline (plus a short grace).
final class BrokerClient: @unchecked Sendable {
    // SAFETY: `current`, `nextID`, `stopped` and each connection's `waiting`, `answers` and
    // `death` are only touched under `lock`; the rest is immutable.
    private let lock = Lock()
    private let logger: Logger
    private let maxFrameLength: Int
    private let launch: @Sendable (Logger) throws(SystemError) -> LaunchedChild
    private var current: Connection?
    private var nextID: UInt64 = 1
    private var stopped = false

    /// The broker gives up on a request after 30 s or its call's deadline, whichever is first;
    /// a broker that has not answered `grace` after that is wedged and gets killed.
    static let longestRequest: Duration = .seconds(30)
    static let grace: Duration = .seconds(2)
    /// What a request leaves of its call's `remaining` time for the plugin to read the answer
    /// (a timeout error too) and answer its call: a tenth, at most 100 ms. Without it, a server
    /// slower than the call would get the worker killed for the call's timeout.
    static func answerReserve(of remaining: Duration) -> Duration {
        max(.zero, min(remaining / 10, .milliseconds(100)))
    }
    /// A broker that stops reading cannot block a caller's send for longer than this.
    static let sendTimeout: Duration = .seconds(5)

    /// One broker process and the requests waiting on it.
    private final class Connection: @unchecked Sendable {
        // SAFETY: `process` and `channel` are immutable (callers send on the channel, the reader
        // thread alone receives: it is full duplex); the rest is under the client's lock.
        let process: SupervisedProcess
        let channel: FrameChannel
        var waiting: Set<UInt64> = []
        var answers: [UInt64: JSONValue] = [:]
        var death: String?

        init(process: SupervisedProcess, channel: FrameChannel) {
            self.process = process
            self.channel = channel
        }
    }

    /// - Parameter launch: starts a broker whose stderr is logged with the logger it is given.
    init(logger: Logger, maxFrameLength: Int, launch: @escaping @Sendable (Logger) throws(SystemError) -> LaunchedChild)
    {
        var logger = logger
        logger[metadataKey: "process"] = "plugvisor-broker"
        self.logger = logger
        self.maxFrameLength = maxFrameLength
        self.launch = launch
    }

    /// Performs `request` in the broker: the answer is what the broker sent, or an error object
    /// when it could not be started, died, broke the protocol or did not answer in time.
    func perform(_ request: JSONValue, allowedHosts: [String], deadline: ContinuousClock.Instant) -> JSONValue {
        let now = ContinuousClock.now
        let waitUntil = min(deadline, now + Self.longestRequest) + Self.grace
        let connection: Connection
        let id: UInt64
        do throws(SystemError) {
            (connection, id) = try lock.withLock { () throws(SystemError) in
                guard !stopped else { throw SystemError("the supervisor is shutting down", errno: ESHUTDOWN) }
                let connection: Connection
                if let running = current { connection = running } else { connection = try start() }
                defer { nextID += 1 }
                connection.waiting.insert(nextID)
                return (connection, nextID)
            }
        } catch {
            logger.error("cannot start the network broker: \(error)")
            // A missing or unrunnable broker stays so: "try again" would send the author in circles.
            let retry = error.errno == ENOENT || error.errno == EACCES ? "" : "; try again"
            return ["error": .string("the network broker is unavailable (\(error))\(retry)")]
        }
        let callTimeLeft = now.duration(to: deadline)
        let requestTime = callTimeLeft - Self.answerReserve(of: callTimeLeft)
        let millis = max(0, requestTime.microseconds / 1000)
        let message = BrokerRequest(id: id, request: request, allowedHosts: allowedHosts, timeoutMillis: millis)
        do throws(ChannelError) {
            try connection.channel.send(message, deadline: .now + Self.sendTimeout)
        } catch {
            logger.error("cannot send to the network broker (\(error)); killing it")
            // A broker that stops reading is as wedged as one that stops answering.
            connection.process.kill(because: error == .timedOut ? .timeout : .protocolViolation)
        }
        return lock.withLock {
            defer {
                connection.waiting.remove(id)
                connection.answers[id] = nil
            }
            while true {
                if let answer = connection.answers[id] { return answer }
                if let death = connection.death {
                    return ["error": .string("the network broker died (\(death)); try again")]
                }
                if !lock.wait(until: waitUntil), connection.answers[id] == nil, connection.death == nil {
                    logger.error("the network broker did not answer request \(id) in time; killing it")
                    connection.process.kill(because: .timeout)
                    return ["error": "the network broker did not answer in time; try again"]
                }
            }
        }
    }

    /// Kills the broker, if one runs, and waits until it is reaped. Requests after this are refused.
    func stop() {
        let connection = lock.withLock {
            stopped = true
            defer { current = nil }
            return current
        }
        guard let connection else { return }
        connection.process.kill(because: .stopped)
        if connection.process.awaitExit(timeout: .seconds(5)) == nil {
            logger.error("the network broker \(connection.process.pid) was not reaped within 5 s")
        }
    }

    /// The pid of the running broker, if any (tests and status).
    var pid: pid_t? { lock.withLock { current?.process.pid } }

    // MARK: One broker

    /// Spawns a broker and its reader and monitor threads. Called under `lock`.
    private func start() throws(SystemError) -> Connection {
        let launched = try launch(logger)
        let connection = Connection(
            process: launched.process,
            channel: FrameChannel(descriptor: launched.channel, maxFrameLength: maxFrameLength))
        current = connection
        logger.info("network broker started", metadata: ["pid": "\(connection.process.pid)"])
        connection.process.monitor { [self] exit in ended(connection, exit: exit) }
        let reader = Thread { [self] in read(connection) }
        reader.name = "plugvisor-broker-reader-\(connection.process.pid)"
        reader.start()
        return connection
    }

    /// Hands answers to their callers until the broker hangs up or breaks the protocol.
    private func read(_ connection: Connection) {
        let channel = connection.channel
        while true {
            let answer: HostResult
            do { answer = try channel.receive(HostResult.self) } catch .closed {
                break
            } catch {
                logger.error("the network broker broke the protocol (\(error)); killing it")
                connection.process.kill(because: .protocolViolation)
                return
            }
            lock.withLock {
                // An id nobody waits for (unknown, or its caller gave up) is dropped.
                guard connection.waiting.contains(answer.id) else { return }
                connection.answers[answer.id] = answer.result
                lock.broadcast()
            }
        }
        // The broker closed its end: it is exiting, or must.
        connection.process.signal(SIGKILL)
    }

    /// The monitor reaped the broker: fail whatever waits on it; the next request starts another.
    private func ended(_ connection: Connection, exit: ProcessExit) {
        let reason = connection.process.killedReason()
        let description =
            "pid \(connection.process.pid) "
            + (reason == .protocolViolation
                ? "was killed for breaking the protocol"
                : reason == .timeout ? "was killed for not answering in time" : "\(exit)")
        let (inFlight, stopping) = lock.withLock {
            connection.death = description
            if current === connection { current = nil }
            lock.broadcast()
            return (connection.waiting.count, stopped)
        }
        if stopping && reason == .stopped {
            logger.info("network broker stopped", metadata: ["pid": "\(connection.process.pid)"])
        } else {
            logger.error(
                "the network broker died (\(description)); \(inFlight) request(s) in flight failed; the next request starts a new one"
            )
        }
    }
}
