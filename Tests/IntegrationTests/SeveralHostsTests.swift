import Foundation
import Glibc
import PlugvisorPosix
import PlugvisorProtocol
import PlugvisorTestSupport
import Testing

/// Three supervisors, each in a network namespace of its own, behind Debian's haproxy with the
/// shipped configuration (`scripts/hosts-lab.sh`, `dist/haproxy/plugvisor.cfg`): calls through
/// the balancer survive a host killed under load, and a reload rolled host by host.
@Suite(.serialized, .timeLimit(.minutes(3))) struct SeveralHostsTests {
    @Test func aHostKilledUnderLoadLosesNoCallAndIsTakenOut() throws {
        let lab = try HostsLab(manifests: ["plugins:\n  - {name: echo, wasm: \"{{plugins}}/echo.wasm\"}\n"])
        try lab.waitUntilServing(["host1", "host2", "host3"])
        let load = try BalancerLoad(lab: lab, path: "/v1/plugins/echo/execute", connections: 8)
        Thread.sleep(forTimeInterval: 1.5)
        let callsBefore = try (1...3).map { try lab.status(host: $0).calls }
        let killedAt = load.elapsed
        kill(try lab.supervisorPID(host: 2), SIGKILL)
        let takenOut = lab.eventually { lab.balancerStatus()["host2"]?.hasPrefix("DOWN") == true }
        let takenOutAfter = load.elapsed - killedAt
        Thread.sleep(forTimeInterval: 1.5)
        let samples = load.stop()
        let callsAfter = try [1, 3].map { try lab.status(host: $0).calls }
        let statistics = lab.balancerStatistics()

        #expect(takenOut, "haproxy never took host 2 out: \(lab.balancerStatus())")
        #expect(lab.balancerStatus()["host1"] == "UP" && lab.balancerStatus()["host3"] == "UP")
        let failed = samples.filter { $0.status != 200 }
        #expect(failed.isEmpty, "\(failed.count) of \(samples.count) calls failed: \(failed.prefix(3))")
        #expect(callsBefore.allSatisfy { $0 > 0 }, "every host served before the kill: \(callsBefore)")
        #expect(
            callsAfter[0] > callsBefore[0] && callsAfter[1] > callsBefore[2],
            "hosts 1 and 3 served after it: \(callsBefore) then \(callsAfter)")
        // The balancer's retry did it: calls that met the dead host (a refused connection, or
        // one closed with no answer) were sent to another one.
        let retried = (statistics["wretr"] ?? 0) + (statistics["wredis"] ?? 0)
        #expect(retried > 0, "no call was retried: \(statistics)")
        let after = samples.filter { $0.startedAt > killedAt }
        print(
            "several hosts: \(samples.count) calls through haproxy, \(failed.count) failed; host 2 killed at "
                + String(format: "%.1f s, taken out %.1f s later; ", killedAt, takenOutAfter)
                + "\(after.count) calls after the kill, "
                + "\(statistics["wretr"] ?? 0) retried, \(statistics["wredis"] ?? 0) redispatched; "
                + "p99 \(BalancerLoad.percentile(samples, 0.99)) µs overall")
    }

    /// What a rolling restart or a scale-down does to a host: SIGTERM, as systemd and
    /// Kubernetes send it. The gateway stops taking connections first, calls in flight finish.
    @Test func aHostStoppedUnderLoadLosesNoCall() throws {
        let lab = try HostsLab(manifests: ["plugins:\n  - {name: echo, wasm: \"{{plugins}}/echo.wasm\"}\n"])
        try lab.waitUntilServing(["host1", "host2", "host3"])
        let load = try BalancerLoad(lab: lab, path: "/v1/plugins/echo/execute", connections: 8)
        Thread.sleep(forTimeInterval: 1.5)
        let supervisor = try lab.supervisorPID(host: 3)
        kill(supervisor, SIGTERM)
        let exited = lab.eventually { !processIsAlive(supervisor) }
        let takenOut = lab.eventually { lab.balancerStatus()["host3"]?.hasPrefix("DOWN") == true }
        Thread.sleep(forTimeInterval: 1)
        let samples = load.stop()

        #expect(exited, "host 3 did not stop: \(lab.log(host: 3))")
        #expect(lab.log(host: 3).contains("stopped"), "\(lab.log(host: 3))")
        #expect(takenOut, "\(lab.balancerStatus())")
        let failed = samples.filter { $0.status != 200 }
        #expect(failed.isEmpty, "\(failed.count) of \(samples.count) calls failed: \(failed.prefix(3))")
    }

    @Test func aReloadRolledHostByHostThroughTheBalancerFailsNoCall() throws {
        let manifest = { (version: Int) in
            "plugins:\n  - {name: versioned, wasm: \"{{plugins}}/versioned-\(version).wasm\"}\n"
        }
        let lab = try HostsLab(manifests: [manifest(1), manifest(1), manifest(1)])
        try lab.waitUntilServing(["host1", "host2", "host3"])
        let load = try BalancerLoad(lab: lab, path: "/v1/plugins/versioned/execute", connections: 8)
        Thread.sleep(forTimeInterval: 2)
        let rollStarted = load.elapsed
        var reloads: [Double] = []
        for host in 1...3 {
            try lab.writeManifest(host: host, manifest(2))
            let started = ContinuousClock.now
            let reloaded = lab.cli(host: host, ["reload"])
            reloads.append((ContinuousClock.now - started).timeInterval)
            #expect(reloaded.status == 0, "host \(host): \(reloaded.stdout)\(reloaded.stderr)")
            #expect(try lab.status(host: host).version == "2.0.0")
            Thread.sleep(forTimeInterval: 1)
        }
        let rollEnded = load.elapsed
        Thread.sleep(forTimeInterval: 1.5)
        let samples = load.stop()

        let failed = samples.filter { $0.status != 200 }
        #expect(failed.isEmpty, "\(failed.count) of \(samples.count) calls failed: \(failed.prefix(3))")
        let before = samples.filter { $0.startedAt + $0.seconds < rollStarted }
        let during = samples.filter { $0.startedAt >= rollStarted && $0.startedAt + $0.seconds <= rollEnded }
        let afterwards = samples.filter { $0.startedAt > rollEnded }
        #expect(!before.isEmpty && before.allSatisfy { $0.body.contains(#""data":"v1""#) })
        #expect(Set(during.map(\.body)).count == 2, "both versions served during the roll")
        #expect(!afterwards.isEmpty && afterwards.allSatisfy { $0.body.contains(#""data":"v2""#) })
        let steadyRate = Double(before.count) / rollStarted
        let rollRate = Double(during.count) / (rollEnded - rollStarted)
        print(
            "rolling reload through haproxy: \(samples.count) calls, \(failed.count) failed; "
                + String(
                    format: "%.0f calls/s steady, %.0f during the roll (%.2f×); ", steadyRate, rollRate,
                    rollRate / steadyRate)
                + "p99 \(BalancerLoad.percentile(before, 0.99)) µs steady, \(BalancerLoad.percentile(during, 0.99)) µs during; "
                + "reloads took " + reloads.map { String(format: "%.0f ms", $0 * 1000) }.joined(separator: ", "))
    }
}

/// `scripts/hosts-lab.sh` on manifests of fixture plugins (one for all three hosts, or one
/// each), in a process group of its own that goes with this.
final class HostsLab: @unchecked Sendable {
    let directory: URL
    let state: URL
    let pid: pid_t

    init(manifests: [String]) throws {
        _ = try Fixtures.plugin("echo")  // builds the fixtures once
        directory = try RunningSupervisor.makeTemporaryDirectory()
        state = directory.appendingPathComponent("lab")
        var paths: [String] = []
        for (index, manifest) in manifests.enumerated() {
            let path = directory.appendingPathComponent("plugins-\(index + 1).yaml").path
            try manifest.replacingOccurrences(of: "{{plugins}}", with: Fixtures.pluginsDirectory.path)
                .write(toFile: path, atomically: true, encoding: .utf8)
            paths.append(path)
        }
        let log = directory.appendingPathComponent("lab.log").path
        var environment = ProcessInfo.processInfo.environment
        environment["PLUGVISOR"] = try Fixtures.binary("plugvisor")
        pid = try spawnWithoutDescriptors(
            [Fixtures.root.appendingPathComponent("scripts/hosts-lab.sh").path, state.path] + paths,
            environment: environment, output: log, ownProcessGroup: true)
        let ready = state.appendingPathComponent("ready").path
        let deadline = ContinuousClock.now + .seconds(60)
        while !FileManager.default.fileExists(atPath: ready) {
            var status: Int32 = 0
            if waitpid(pid, &status, WNOHANG) == pid || ContinuousClock.now > deadline {
                throw FixtureError("hosts-lab.sh did not come up: \(Self.read(log))")
            }
            Thread.sleep(forTimeInterval: 0.05)
        }
    }

    deinit {
        kill(-pid, SIGKILL)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        try? FileManager.default.removeItem(at: directory)
    }

    static func read(_ path: String) -> String { (try? String(contentsOfFile: path, encoding: .utf8)) ?? "" }

    func control(host: Int) -> String { state.appendingPathComponent("h\(host)/control.sock").path }

    func log(host: Int) -> String { Self.read(state.appendingPathComponent("h\(host)/log").path) }

    func supervisorPID(host: Int) throws -> pid_t {
        let text = Self.read(state.appendingPathComponent("h\(host)/pid").path)
        guard let pid = pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw FixtureError("no pid for host \(host)")
        }
        return pid
    }

    func writeManifest(host: Int, _ manifest: String) throws {
        try manifest.replacingOccurrences(of: "{{plugins}}", with: Fixtures.pluginsDirectory.path)
            .write(to: directory.appendingPathComponent("plugins-\(host).yaml"), atomically: true, encoding: .utf8)
    }

    func cli(host: Int, _ arguments: [String]) -> ProcessRunner.Output {
        ProcessRunner.run(
            [(try? Fixtures.binary("plugvisor")) ?? "plugvisor"] + arguments + ["--control", control(host: host)])
    }

    func status(host: Int) throws -> PluginStatus {
        let output = cli(host: host, ["status", "--json"])
        guard output.status == 0,
            let plugin = try JSONCoding.decode(StatusReport.self, from: Array(output.stdout.utf8)).plugins.first
        else { throw FixtureError("host \(host): status failed: \(output.stderr)") }
        return plugin
    }

    /// haproxy's `show stat` on its stats socket, as rows of the CSV keyed by its header.
    func balancerRows() -> [[String: String]] {
        guard let socket = try? Descriptors.connectUnix(path: state.appendingPathComponent("haproxy.sock").path) else {
            return []
        }
        defer { socket.close() }
        let command = Array("show stat\n".utf8)
        guard write(socket.rawValue, command, command.count) == command.count else { return [] }
        var text: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 16384)
        while true {
            let count = Glibc.read(socket.rawValue, &buffer, buffer.count)
            if count <= 0 { break }
            text += buffer[..<count]
        }
        let lines = String(decoding: text, as: UTF8.self).split(separator: "\n")
        guard let header = lines.first, header.hasPrefix("# ") else { return [] }
        let names = header.dropFirst(2).split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        return lines.dropFirst().map { line in
            let fields = line.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            return Dictionary(zip(names, fields), uniquingKeysWith: { first, _ in first })
        }
    }

    /// Each host's state as the balancer sees it: "UP", "DOWN", "UP 1/2" while it changes.
    func balancerStatus() -> [String: String] {
        var states: [String: String] = [:]
        for row in balancerRows() where row["pxname"] == "plugvisor" && row["svname"]?.hasPrefix("host") == true {
            states[row["svname"]!] = row["status"]
        }
        return states
    }

    /// The backend's counters: `wretr` (retries), `wredis` (redispatches), `econ`, `eresp`.
    func balancerStatistics() -> [String: Int] {
        guard let backend = balancerRows().first(where: { $0["pxname"] == "plugvisor" && $0["svname"] == "BACKEND" })
        else { return [:] }
        return backend.filter { ["wretr", "wredis", "econ", "eresp"].contains($0.key) }.compactMapValues(Int.init)
    }

    func waitUntilServing(_ hosts: [String]) throws {
        guard eventually({ hosts.allSatisfy { self.balancerStatus()[$0] == "UP" } }) else {
            throw FixtureError("the balancer does not see every host up: \(balancerStatus())")
        }
    }

    func eventually(_ condition: () -> Bool) -> Bool { pollUntil(timeout: .seconds(15), condition) }
}

/// `connections` callers, each on a keep-alive HTTP/1.1 connection of its own to the
/// balancer's Unix socket, posting `{}` to `path` one call after the other until `stop`.
final class BalancerLoad: @unchecked Sendable {
    struct Sample: CustomStringConvertible {
        var startedAt: Double  // seconds since the load began
        var seconds: Double
        var status: Int  // 0: no answer at all
        var body: String
        var description: String { "\(status) after \(String(format: "%.3f", seconds)) s: \(body.prefix(300))" }
    }

    private let lock = Lock()
    // SAFETY: both are only touched under `lock`.
    private var stopping = false
    private var samples: [Sample] = []
    private let group = DispatchGroup()
    private let began = ContinuousClock.now

    init(lab: HostsLab, path: String, connections: Int) throws {
        let socket = lab.state.appendingPathComponent("lb.sock").path
        for _ in 0..<connections {
            group.enter()
            Thread.detachNewThread { [self] in
                defer { group.leave() }
                var connection: UnixHTTPConnection?
                var mine: [Sample] = []
                while !lock.withLock({ stopping }) {
                    let started = ContinuousClock.now
                    var sample = Sample(startedAt: (started - began).timeInterval, seconds: 0, status: 0, body: "")
                    do {
                        if connection == nil { connection = try UnixHTTPConnection(path: socket) }
                        (sample.status, sample.body) = try connection!.post(path, body: "{}")
                    } catch {
                        sample.body = "\(error)"
                        connection = nil
                    }
                    sample.seconds = (ContinuousClock.now - started).timeInterval
                    mine.append(sample)
                }
                lock.withLock { samples += mine }
            }
        }
    }

    var elapsed: Double { (ContinuousClock.now - began).timeInterval }

    func stop() -> [Sample] {
        lock.withLock { stopping = true }
        group.wait()
        return lock.withLock { samples.sorted { $0.startedAt < $1.startedAt } }
    }

    static func percentile(_ samples: [Sample], _ fraction: Double) -> Int {
        let sorted = samples.map(\.seconds).sorted()
        guard !sorted.isEmpty else { return 0 }
        return Int(sorted[min(sorted.count - 1, Int(Double(sorted.count) * fraction))] * 1_000_000)
    }
}

/// HTTP/1.1 over a Unix socket (URLSession has none), as much as answers from haproxy need:
/// a status line, headers, and a body by Content-Length or chunked.
final class UnixHTTPConnection {
    private let socket: OwnedDescriptor
    private var buffer: [UInt8] = []

    init(path: String) throws {
        socket = try Descriptors.connectUnix(path: path)
        var timeout = timeval(tv_sec: 30, tv_usec: 0)
        setsockopt(socket.rawValue, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { socket.close() }

    func post(_ path: String, body: String) throws -> (Int, String) {
        let request = Array(
            "POST \(path) HTTP/1.1\r\nHost: lb\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
                .utf8)
        var sent = 0
        while sent < request.count {
            let count = request[sent...].withUnsafeBytes {
                send(socket.rawValue, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL))
            }
            guard count > 0 else { throw FixtureError("send: \(String(cString: strerror(errno)))") }
            sent += count
        }
        let head = String(decoding: try readUntil(Array("\r\n\r\n".utf8)), as: UTF8.self)
        let lines = head.split(separator: "\r\n")
        guard let statusLine = lines.first, let status = Int(statusLine.split(separator: " ").dropFirst().first ?? "")
        else { throw FixtureError("not an HTTP answer: \(head)") }
        var headers: [String: String] = [:]
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(
                in: .whitespaces)
        }
        var answer: [UInt8] = []
        if headers["transfer-encoding"]?.lowercased() == "chunked" {
            while true {
                let size = String(decoding: try readUntil(Array("\r\n".utf8)), as: UTF8.self)
                guard let length = Int(size.split(separator: ";").first ?? "", radix: 16) else {
                    throw FixtureError("bad chunk size \(size)")
                }
                answer += try readExactly(length + 2).dropLast(2)
                if length == 0 { break }
            }
        } else {
            answer = try readExactly(Int(headers["content-length"] ?? "0") ?? 0)
        }
        return (status, String(decoding: answer, as: UTF8.self))
    }

    private func fill() throws {
        var chunk = [UInt8](repeating: 0, count: 65536)
        let count = recv(socket.rawValue, &chunk, chunk.count, 0)
        guard count > 0 else {
            throw FixtureError(count == 0 ? "closed by the balancer" : "recv: \(String(cString: strerror(errno)))")
        }
        buffer += chunk[..<count]
    }

    /// Up to and without `delimiter`, which is consumed.
    private func readUntil(_ delimiter: [UInt8]) throws -> [UInt8] {
        var searched = 0
        while true {
            if buffer.count >= delimiter.count {
                for start in searched...(buffer.count - delimiter.count)
                where buffer[start..<start + delimiter.count].elementsEqual(delimiter) {
                    let found = Array(buffer[..<start])
                    buffer.removeFirst(start + delimiter.count)
                    return found
                }
                searched = buffer.count - delimiter.count + 1
            }
            guard buffer.count < 1 << 20 else { throw FixtureError("no \(delimiter) in 1 MiB") }
            try fill()
        }
    }

    private func readExactly(_ count: Int) throws -> [UInt8] {
        while buffer.count < count { try fill() }
        let taken = Array(buffer[..<count])
        buffer.removeFirst(count)
        return taken
    }
}
