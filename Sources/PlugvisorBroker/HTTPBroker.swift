import Foundation
import FoundationNetworking
import PlugvisorPosix
import PlugvisorProtocol

/// Performs a guest's `plugvisor.http_request` on its behalf: workers have no network syscalls,
/// so every request goes through here and is checked against the plugin's `allowed_hosts`.
///
/// The request is `{"method", "url", "headers", "body"}` (or `"body_base64"` for bytes); the answer is
/// `{"status", "headers", "body"}` or `{"error"}`. Responses are bounded in size and time.
enum HTTPBroker {
    static let maxResponseBytes = 1 << 20
    static let maxDuration: Duration = .seconds(30)
    static let methods: Set<String> = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
    static let timedOut = "the request timed out"

    static func perform(_ request: JSONValue, allowedHosts: [String], deadline: ContinuousClock.Instant) -> JSONValue {
        func refuse(_ message: String) -> JSONValue { ["error": .string(message)] }
        guard let text = request["url"]?.stringValue else {
            return refuse("the request needs an http or https \"url\"")
        }
        let target: RequestTarget
        switch RequestTarget.parse(text) {
        case let .success(parsed): target = parsed
        case let .failure(problem): return refuse(problem.description)
        }
        if allowedHosts.isEmpty { return refuse("network access is not granted to this plugin") }
        if let refusal = target.refusal(by: allowedHosts.compactMap { try? HostPattern.parse($0).get() }) {
            return refuse(refusal)
        }
        let url = target.url
        let method = (request["method"]?.stringValue ?? "GET").uppercased()
        guard methods.contains(method) else { return refuse("method \(method) is not supported") }
        let remaining = min(ContinuousClock.now.duration(to: deadline), maxDuration)
        guard remaining > .milliseconds(10) else { return refuse("no time left in this call for a request") }
        let givingUp = ContinuousClock.now + remaining

        var urlRequest = URLRequest(url: url)
        urlRequest.httpMethod = method
        // FoundationNetworking on Linux arms its timer with whole seconds
        // (`Int(timeoutInterval) * 1000`): 0.97 s would time out at once. Its timer gets the next
        // whole second, and `fetch.wait` keeps the exact deadline.
        urlRequest.timeoutInterval = remaining.timeInterval.rounded(.up)
        if case let .object(headers)? = request["headers"] {
            for (name, value) in headers where name.lowercased() != "host" {
                if let value = value.stringValue { urlRequest.setValue(value, forHTTPHeaderField: name) }
            }
        }
        if let body = request["body"]?.stringValue {
            urlRequest.httpBody = Data(body.utf8)
        } else if let encoded = request["body_base64"]?.stringValue {
            guard let body = Data(base64Encoded: encoded) else { return refuse("body_base64 is not base64") }
            urlRequest.httpBody = body
        }

        let fetch = BoundedFetch(allowedHosts: allowedHosts, limit: maxResponseBytes)
        let session = URLSession(configuration: .ephemeral, delegate: fetch, delegateQueue: nil)
        // Off the caller's thread: the call's answer must never wait on the session's teardown.
        defer { DispatchQueue.global().async { session.invalidateAndCancel() } }
        let task = session.dataTask(with: urlRequest)
        task.resume()
        guard fetch.wait(until: givingUp) else {
            task.cancel()
            // What FoundationNetworking's own timer answers, so a guest sees one error for one event.
            return refuse(timedOut)
        }
        return fetch.answer()
    }
}

/// Collects one response, cancelling it past `limit` bytes or on a redirect to a host that is
/// not allowed.
private final class BoundedFetch: NSObject, URLSessionDataDelegate, @unchecked Sendable {
    // SAFETY: mutable state is only touched under `lock`.
    private let allowedHosts: [String]
    private let limit: Int
    private let lock = NSCondition()
    private var body = Data()
    private var response: HTTPURLResponse?
    private var failure: String?
    private var done = false

    init(allowedHosts: [String], limit: Int) {
        self.allowedHosts = allowedHosts
        self.limit = limit
    }

    /// Whether the response is complete by `deadline`. NSCondition waits on the wall clock: each
    /// wait is short and measured again on the monotonic one, so a clock step cannot stretch it.
    func wait(until deadline: ContinuousClock.Instant) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        while !done {
            let left = ContinuousClock.now.duration(to: deadline)
            guard left > .zero else { return false }
            _ = lock.wait(until: Date(timeIntervalSinceNow: min(left, .milliseconds(100)).timeInterval))
        }
        return true
    }

    func answer() -> JSONValue {
        lock.lock()
        defer { lock.unlock() }
        if let failure { return ["error": .string(failure)] }
        guard let response else { return ["error": "no response"] }
        var headers: [String: JSONValue] = [:]
        for (name, value) in response.allHeaderFields {
            if let name = name as? String, let value = value as? String { headers[name.lowercased()] = .string(value) }
        }
        var answer: [String: JSONValue] = ["status": .integer(Int64(response.statusCode)), "headers": .object(headers)]
        if let text = String(data: body, encoding: .utf8) {
            answer["body"] = .string(text)
        } else {
            answer["body_base64"] = .string(body.base64EncodedString())
        }
        return .object(answer)
    }

    private func finish(_ update: () -> Void) {
        lock.lock()
        if !done { update() }
        done = true
        lock.broadcast()
        lock.unlock()
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive data: Data) {
        lock.lock()
        body.append(data)
        let tooLarge = body.count > limit
        lock.unlock()
        if tooLarge {
            finish { failure = "the response is larger than \(limit) bytes" }
            dataTask.cancel()
        }
    }

    func urlSession(_ session: URLSession, task: URLSessionTask, didCompleteWithError error: Error?) {
        finish {
            response = task.response as? HTTPURLResponse
            if let error {
                let code = (error as NSError).code
                failure =
                    code == NSURLErrorTimedOut
                    ? HTTPBroker.timedOut
                    : code == NSURLErrorCannotConnectToHost
                        ? "cannot connect to \(task.originalRequest?.url?.host ?? "the host")"
                        : "request failed: \(error.localizedDescription)"
            }
        }
    }

    func urlSession(
        _ session: URLSession, task: URLSessionTask, willPerformHTTPRedirection response: HTTPURLResponse,
        newRequest request: URLRequest, completionHandler: @escaping (URLRequest?) -> Void
    ) {
        let patterns = allowedHosts.compactMap { try? HostPattern.parse($0).get() }
        let target = request.url.flatMap { try? RequestTarget.parse($0.absoluteString).get() }
        if let target, target.refusal(by: patterns) == nil {
            var redirected = request
            redirected.url = target.url
            completionHandler(redirected)
        } else {
            // Answer FoundationNetworking first: once `finish` wakes the caller, the session may
            // be torn down, and a redirect answered after that is a fatal error in
            // FoundationNetworking (it crashed the supervisor).
            completionHandler(nil)
            finish { failure = "redirect to \(request.url?.host ?? "?") refused: not in allowed_hosts" }
        }
    }
}

/// Where a request goes, read once from its URL: the host and port checked against
/// `allowed_hosts` are those of `url`, which is rebuilt from them (and the path and query), so
/// that libcurl, parsing it again, connects to exactly what was checked. User names and
/// passwords in URLs are refused: where the authority ends is where URL parsers disagree.
struct RequestTarget {
    let scheme: String
    /// Normalised (`HostPattern.normalize`): lower case, no trailing dot, IPv6 without brackets.
    let host: String
    /// The port the connection uses: the URL's, or the scheme's default.
    let port: Int
    let url: URL

    static func parse(_ text: String) -> Result<RequestTarget, HostProblem> {
        guard let components = URLComponents(string: text), let scheme = components.scheme?.lowercased(),
            let defaultPort = HostPattern.defaultPort(scheme: scheme)
        else { return .failure(HostProblem("the request needs an http or https \"url\"")) }
        guard components.percentEncodedUser == nil && components.percentEncodedPassword == nil else {
            return .failure(
                HostProblem("a user name or password in the URL is not supported; send an Authorization header"))
        }
        guard let rawHost = components.percentEncodedHost, !rawHost.isEmpty else {
            return .failure(HostProblem("the URL has no host"))
        }
        let host: String
        switch HostPattern.normalize(rawHost) {
        case let .success(normalized): host = normalized
        case let .failure(problem): return .failure(HostProblem("host '\(rawHost)' refused: \(problem)"))
        }
        let port = components.port ?? defaultPort
        guard (1...65535).contains(port) else { return .failure(HostProblem("port \(port) is not a TCP port")) }

        let authority = (host.contains(":") ? "[\(host)]" : host) + (port == defaultPort ? "" : ":\(port)")
        let path = components.percentEncodedPath.isEmpty ? "/" : components.percentEncodedPath
        let query = components.percentEncodedQuery.map { "?" + $0 } ?? ""
        let rebuilt = "\(scheme)://\(authority)\(path)\(query)"
        // The rebuilt URL must read back as the same host and port, or it is not sent.
        guard path.hasPrefix("/"), let url = URL(string: rebuilt), let again = URLComponents(string: rebuilt),
            again.percentEncodedHost.map({ try? HostPattern.normalize($0).get() }) == host,
            (again.port ?? defaultPort) == port, again.percentEncodedUser == nil
        else { return .failure(HostProblem("the URL \(text) cannot be sent unambiguously")) }
        return .success(RequestTarget(scheme: scheme, host: host, port: port, url: url))
    }

    /// Why `patterns` do not allow this target, or nil when one does.
    func refusal(by patterns: [HostPattern]) -> String? {
        if patterns.contains(where: { $0.matches(host: host, port: port, scheme: scheme) }) { return nil }
        let shown = host.contains(":") ? "[\(host)]" : host
        guard !patterns.contains(where: { $0.matches(host: host) }) else {
            return
                "port \(port) of \(shown) is not in this plugin's allowed_hosts (an entry without ':port' allows only \(scheme)'s default port; add '\(shown):\(port)')"
        }
        return "host \(shown) is not in this plugin's allowed_hosts"
    }
}
