import Foundation
import Glibc
import PlugvisorPosix
import PlugvisorProtocol

/// `plugvisor status --watch`: the status table again every interval. At a terminal it is
/// redrawn in place on the alternate screen (lines cut to the terminal's width, so nothing
/// wraps) and the keyboard is read without echo: q or Ctrl-C quits and gives the terminal back
/// as it was. Anywhere else (a pipe, a file) each frame is printed plainly after the last.
struct StatusWatch {
    let interval: Duration
    let json: Bool
    let fetch: () -> Result<StatusReport, PluginError>

    func run() -> Never {
        // The first answer decides whether there is anything to watch; later failures (a
        // supervisor restarting) are shown in the frame and the watch goes on.
        var status: StatusReport
        switch fetch() {
        case let .failure(error): Output.fail(error)
        case let .success(first): status = first
        }
        let interactive = isatty(STDOUT_FILENO) == 1 && !json
        let keyboard = isatty(STDIN_FILENO) == 1 && Terminal.enterRawMode()
        if interactive { Terminal.enterScreen() }
        signal(SIGPIPE, SIG_IGN)
        // A parent may have started us with these blocked (Foundation's Process does).
        var quitting = sigset_t()
        sigemptyset(&quitting)
        for signal in [SIGINT, SIGTERM, SIGHUP] {
            Glibc.signal(signal, Terminal.quitOnSignal)
            sigaddset(&quitting, signal)
        }
        pthread_sigmask(SIG_UNBLOCK, &quitting, nil)

        var previous: (status: StatusReport, at: ContinuousClock.Instant)?
        var problem: PluginError?
        var next = ContinuousClock.now
        while true {
            let now = ContinuousClock.now
            let rates = previous.map { Self.rates(from: $0.status, to: status, seconds: (now - $0.at).timeInterval) }
            let frame =
                json
                ? JSONCoding.compact(status)
                : Status.table(status, rates: rates ?? [:]) + (problem.map { "\n\nnot updating: \($0.message)" } ?? "")
            if interactive {
                Terminal.draw(header: "plugvisor status, every \(Self.describe(interval)); q quits", frame)
            } else if !Terminal.write(frame + (json ? "\n" : "\n\n")) {
                Terminal.quit(code: 0)  // the reader went away (`| head`)
            }
            if problem == nil { previous = (status, now) }

            next += interval
            if next < ContinuousClock.now { next = ContinuousClock.now + interval }
            if keyboard ? Terminal.quitKeyPressed(before: next) : Self.sleep(until: next) { Terminal.quit(code: 0) }
            switch fetch() {
            case let .success(latest):
                status = latest
                problem = nil
            case let .failure(error): problem = error
            }
        }
    }

    static func rates(from old: StatusReport, to new: StatusReport, seconds: Double) -> Status.Rates {
        guard seconds > 0 else { return [:] }
        var before: [String: PluginStatus] = [:]
        for plugin in old.plugins { before[plugin.name] = plugin }
        var rates: Status.Rates = [:]
        for plugin in new.plugins {
            guard let then = before[plugin.name] else { continue }
            rates[plugin.name] = (
                calls: Double(max(0, plugin.calls - then.calls)) / seconds,
                errors: Double(max(0, plugin.errors - then.errors)) / seconds
            )
        }
        return rates
    }

    static func describe(_ duration: Duration) -> String {
        let millis = duration.microseconds / 1000
        return millis % 1000 == 0 ? "\(millis / 1000)s" : "\(millis)ms"
    }

    /// Never quits early: without a keyboard only a signal ends the watch.
    static func sleep(until deadline: ContinuousClock.Instant) -> Bool {
        while ContinuousClock.now < deadline {
            var wait = timespec(seconds: (deadline - ContinuousClock.now))
            _ = nanosleep(&wait, nil)
        }
        return false
    }
}

/// The controlling terminal's state, kept where a signal handler can restore it.
enum Terminal {
    nonisolated(unsafe) private static var saved = termios()
    nonisolated(unsafe) private static var rawMode = false
    nonisolated(unsafe) private static var onScreen = false

    /// No echo, no line buffering, and Ctrl-C as a key (it quits like q) rather than SIGINT.
    static func enterRawMode() -> Bool {
        guard tcgetattr(STDIN_FILENO, &saved) == 0 else { return false }
        var raw = saved
        raw.c_lflag &= ~tcflag_t(ICANON | ECHO | ISIG)
        raw.c_cc.6 = 1  // VMIN
        raw.c_cc.5 = 0  // VTIME
        guard tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0 else { return false }
        rawMode = true
        return true
    }

    /// The alternate screen (what was on the terminal comes back on quit), cursor hidden.
    static func enterScreen() {
        onScreen = true
        _ = write("\u{1b}[?1049h\u{1b}[?25l")
    }

    static func draw(header: String, _ frame: String) {
        var size = winsize()
        let columns = ioctl(STDOUT_FILENO, UInt(TIOCGWINSZ), &size) == 0 && size.ws_col > 0 ? Int(size.ws_col) : 200
        let rows = size.ws_row > 0 ? Int(size.ws_row) : 1000
        let time = Date.now.formatted(date: .omitted, time: .standard)
        let lines =
            ([header + "  " + time, ""]
            + frame.split(separator: "\n", omittingEmptySubsequences: false).map(String.init))
            .prefix(rows)
            .map { String($0.prefix(columns)) + "\u{1b}[K" }
        _ = write("\u{1b}[H" + lines.joined(separator: "\r\n") + "\u{1b}[J")
    }

    /// Waits for a key until `deadline`: true for q, Q or Ctrl-C (or a keyboard that is gone).
    static func quitKeyPressed(before deadline: ContinuousClock.Instant) -> Bool {
        while true {
            let left = deadline - ContinuousClock.now
            if left <= .zero { return false }
            var descriptor = pollfd(fd: STDIN_FILENO, events: Int16(POLLIN), revents: 0)
            let ready = poll(&descriptor, 1, Int32(clamping: max(1, left.microseconds / 1000)))
            if ready < 0 && errno == EINTR { continue }
            guard ready > 0 else { return false }
            var key: UInt8 = 0
            let count = read(STDIN_FILENO, &key, 1)
            if count == 0 { return true }
            if count == 1, key == UInt8(ascii: "q") || key == UInt8(ascii: "Q") || key == 3 { return true }
        }
    }

    /// False when the reader has gone.
    static func write(_ text: String) -> Bool {
        var bytes = Array(text.utf8)[...]
        while !bytes.isEmpty {
            let written = bytes.withUnsafeBytes { Glibc.write(STDOUT_FILENO, $0.baseAddress, $0.count) }
            if written < 0 && errno == EINTR { continue }
            guard written > 0 else { return false }
            bytes = bytes.dropFirst(written)
        }
        return true
    }

    /// Only async-signal-safe calls: tcsetattr, write, _exit.
    static func restore() {
        if onScreen {
            let sequence: StaticString = "\u{1b}[?25h\u{1b}[?1049l"
            _ = Glibc.write(STDOUT_FILENO, sequence.utf8Start, sequence.utf8CodeUnitCount)
        }
        if rawMode { _ = tcsetattr(STDIN_FILENO, TCSANOW, &saved) }
    }

    static func quit(code: Int32) -> Never {
        restore()
        _exit(code)
    }

    static let quitOnSignal: @convention(c) (Int32) -> Void = { signal in
        Terminal.quit(code: signal == SIGINT ? 0 : 128 + signal)
    }
}

extension timespec {
    fileprivate init(seconds duration: Duration) {
        let micros = max(0, duration.microseconds)
        self.init(tv_sec: Int(micros / 1_000_000), tv_nsec: Int(micros % 1_000_000) * 1000)
    }
}
