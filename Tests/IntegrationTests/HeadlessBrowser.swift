import Foundation
import Glibc
import PlugvisorPosix
import PlugvisorTestSupport

/// Debian's Chromium, headless, driven through the DevTools protocol over
/// `--remote-debugging-pipe` (JSON messages ending in a NUL byte: the browser reads fd 3 and
/// writes fd 4), so a test sees a page as a person would: after its scripts ran, with real
/// mouse clicks, dialogs answered, a screenshot.
final class HeadlessBrowser {
    static let executable = "/usr/bin/chromium"

    private let process: ChildProcess
    private let commands: OwnedDescriptor
    private let replies: OwnedDescriptor
    private let profile: URL
    private var pending: [UInt8] = []
    private var nextID = 1
    private var session: String?
    /// What `prompt()` dialogs are answered with.
    var promptAnswer: String?
    /// Every dialog the page opened, as "type: message".
    private(set) var dialogs: [String] = []

    init() throws {
        guard FileManager.default.isExecutableFile(atPath: Self.executable) else {
            throw FixtureError("no \(Self.executable): scripts/bootstrap.sh installs Debian's chromium")
        }
        profile = try RunningSupervisor.makeTemporaryDirectory()
        let (browserReads, testWrites) = try Descriptors.pipe()
        let (testReads, browserWrites) = try Descriptors.pipe()
        let logFD = Glibc.open(
            profile.appendingPathComponent("chromium.log").path, O_WRONLY | O_CREAT | O_CLOEXEC, 0o600)
        guard logFD >= 0 else { throw FixtureError("cannot create chromium.log in \(profile.path)") }
        let log = OwnedDescriptor(logFD)
        // --no-sandbox: the browser only loads this test's own gateway, and its sandbox needs
        // privileges (or a setuid helper) that the suite's run as root does not give it.
        process = try ChildProcess.spawn(
            executable: Self.executable,
            arguments: [
                "--headless", "--remote-debugging-pipe", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--disable-extensions", "--disable-background-networking", "--disable-crash-reporter",
                "--password-store=basic", "--window-size=1600,700", "--user-data-dir=\(profile.path)/data",
                "about:blank",
            ],
            environment: [
                "HOME": profile.path, "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8",
                "XDG_CONFIG_HOME": profile.path + "/config", "XDG_CACHE_HOME": profile.path + "/cache",
            ],
            channel: browserReads, extra: browserWrites, stdout: log, stderr: log)
        commands = testWrites
        replies = testReads
    }

    deinit {
        kill(-process.pid, SIGKILL)  // its whole process group: renderers, zygotes, utilities
        _ = process.waitForExit()
        try? FileManager.default.removeItem(at: profile)
    }

    var log: String {
        (try? String(contentsOf: profile.appendingPathComponent("chromium.log"), encoding: .utf8)) ?? ""
    }

    /// A new tab at `url`, which the other methods then act on.
    func open(_ url: String) throws {
        let target = try send("Target.createTarget", ["url": "about:blank"], inPage: false)
        guard let targetID = target["targetId"] as? String else { throw FixtureError("no target: \(target)") }
        let attached = try send("Target.attachToTarget", ["targetId": targetID, "flatten": true], inPage: false)
        session = attached["sessionId"] as? String
        _ = try send("Page.enable")
        _ = try send("Runtime.enable")
        _ = try send("Page.navigate", ["url": url])
    }

    /// `expression`'s value (promises awaited), as JSON values: String, NSNumber, arrays, dictionaries.
    func evaluate(_ expression: String) throws -> Any? {
        let answer = try send(
            "Runtime.evaluate", ["expression": expression, "returnByValue": true, "awaitPromise": true])
        if let exception = answer["exceptionDetails"] { throw FixtureError("\(expression) threw: \(exception)") }
        return (answer["result"] as? [String: Any])?["value"]
    }

    func string(_ expression: String) throws -> String? { try evaluate(expression) as? String }

    /// Polls `expression` until it is true, as a page updates itself.
    func waitUntil(_ expression: String, timeout: Duration = .seconds(10)) throws -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if (try? evaluate(expression) as? Bool) == true { return true }
            Thread.sleep(forTimeInterval: 0.1)
        }
        return try evaluate(expression) as? Bool == true
    }

    /// A mouse click in the middle of the element `selector` finds, as a person would click:
    /// an element that is hidden or has no size cannot be clicked.
    func click(_ selector: String) throws {
        let literal = String(decoding: try JSONSerialization.data(withJSONObject: [selector]), as: UTF8.self)
        let box = try evaluate(
            """
            (function(){var e=document.querySelector(\(literal)[0]);if(!e)return null;
            var r=e.getBoundingClientRect();return [r.x+r.width/2,r.y+r.height/2,r.width*r.height];})()
            """)
        guard let point = box as? [Double], point.count == 3, point[2] > 0 else {
            throw FixtureError("nothing visible to click at \(selector)")
        }
        for type in ["mousePressed", "mouseReleased"] {
            _ = try send(
                "Input.dispatchMouseEvent",
                ["type": type, "x": point[0], "y": point[1], "button": "left", "clickCount": 1])
        }
    }

    func screenshot(to path: String) throws {
        let answer = try send("Page.captureScreenshot", ["format": "png"])
        guard let base64 = answer["data"] as? String, let png = Data(base64Encoded: base64) else {
            throw FixtureError("no screenshot")
        }
        try png.write(to: URL(fileURLWithPath: path))
    }

    /// One command and its result; events that come before it are handled on the way
    /// (dialogs are answered, or the page would wait for a person forever).
    @discardableResult
    func send(
        _ method: String, _ parameters: [String: Any] = [:], inPage: Bool = true, timeout: Duration = .seconds(30)
    ) throws -> [String: Any] {
        let id = nextID
        nextID += 1
        var message: [String: Any] = ["id": id, "method": method, "params": parameters]
        if inPage, let session { message["sessionId"] = session }
        try Descriptors.writeAll(commands.rawValue, Array(try JSONSerialization.data(withJSONObject: message)) + [0])
        let deadline = ContinuousClock.now + timeout
        while true {
            let incoming = try nextMessage(deadline: deadline, waitingFor: method)
            if incoming["id"] as? Int == id {
                if let error = incoming["error"] { throw FixtureError("\(method): \(error)") }
                return incoming["result"] as? [String: Any] ?? [:]
            }
            if incoming["method"] as? String == "Page.javascriptDialogOpening",
                let dialog = incoming["params"] as? [String: Any]
            {
                let type = dialog["type"] as? String ?? "?"
                dialogs.append("\(type): \(dialog["message"] as? String ?? "")")
                var answer: [String: Any] = ["id": nextID, "method": "Page.handleJavaScriptDialog"]
                nextID += 1
                answer["params"] = [
                    "accept": type == "prompt" && promptAnswer != nil, "promptText": promptAnswer ?? "",
                ]
                answer["sessionId"] = incoming["sessionId"]
                try Descriptors.writeAll(
                    commands.rawValue, Array(try JSONSerialization.data(withJSONObject: answer)) + [0])
            }
        }
    }

    private func nextMessage(deadline: ContinuousClock.Instant, waitingFor method: String) throws -> [String: Any] {
        while true {
            if let end = pending.firstIndex(of: 0) {
                let body = Data(pending[..<end])
                pending.removeSubrange(...end)
                guard let message = try JSONSerialization.jsonObject(with: body) as? [String: Any] else {
                    throw FixtureError("not a DevTools message: \(String(decoding: body, as: UTF8.self))")
                }
                return message
            }
            let left = deadline - ContinuousClock.now
            guard left > .zero else { throw FixtureError("chromium did not answer \(method) in time: \(log)") }
            var descriptor = pollfd(fd: replies.rawValue, events: Int16(POLLIN), revents: 0)
            guard poll(&descriptor, 1, Int32(clamping: left.microseconds / 1000 + 1)) > 0 else { continue }
            var chunk = [UInt8](repeating: 0, count: 1 << 16)
            let count = try Descriptors.read(replies.rawValue, into: &chunk)
            if count == 0 { throw FixtureError("chromium exited: \(log)") }
            pending += chunk[..<count]
        }
    }
}
