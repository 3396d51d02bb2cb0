/// One `network.allowed_hosts` entry: a host, or every name under a suffix, and one port.
///
///     api.example.com            api.example.com, on the scheme's default port (80, 443)
///     api.example.com:8443       api.example.com, on port 8443 only
///     *.internal.example:8443    any name under internal.example (not itself), port 8443
///     10.0.0.1, [::1]:8080       IP addresses; IPv6 in brackets
///
/// The manifest parses each entry with `parse`, and the broker matches a request's host with
/// `matches`, after `normalize` gave both the same form: lower case, no trailing dot, ASCII
/// only (internationalised names in their `xn--` form), no percent-encoding.
public struct HostPattern: Sendable, Hashable, CustomStringConvertible {
    public enum Host: Sendable, Hashable {
        case exact(String)
        /// Names ending in `.suffix`, not `suffix` itself.
        case under(String)
    }

    public var host: Host
    /// nil: only the default port of the request's scheme.
    public var port: Int?

    public init(host: Host, port: Int? = nil) {
        self.host = host
        self.port = port
    }

    /// The canonical text of the entry, which `parse` reads back as the same pattern.
    public var description: String {
        let name: String
        switch host {
        case let .exact(host): name = host.contains(":") ? "[\(host)]" : host
        case let .under(suffix): name = "*.\(suffix)"
        }
        return port.map { "\(name):\($0)" } ?? name
    }

    /// Parses an entry as written in a manifest.
    /// - Returns: the pattern, or why the entry is not one.
    public static func parse(_ text: String) -> Result<HostPattern, HostProblem> {
        var rest = Substring(text)
        var port: Int?
        let name: Substring
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]") else { return .failure(HostProblem("'[' without ']'")) }
            name = rest[rest.index(after: rest.startIndex)..<close]
            rest = rest[rest.index(after: close)...]
            if !rest.isEmpty {
                guard rest.hasPrefix(":") else { return .failure(HostProblem("only ':port' may follow ']'")) }
                switch parsePort(rest.dropFirst()) {
                case let .success(number): port = number
                case let .failure(problem): return .failure(problem)
                }
            }
            guard name.contains(":") else { return .failure(HostProblem("brackets are for IPv6 addresses")) }
        } else if let colon = rest.firstIndex(of: ":") {
            guard rest[rest.index(after: colon)...].allSatisfy({ $0 != ":" }) else {
                return .failure(HostProblem("an IPv6 address goes in brackets, e.g. [::1]:8080"))
            }
            name = rest[..<colon]
            switch parsePort(rest[rest.index(after: colon)...]) {
            case let .success(number): port = number
            case let .failure(problem): return .failure(problem)
            }
        } else {
            name = rest
        }
        if name.hasPrefix("*.") {
            switch normalize(String(name.dropFirst(2))) {
            case let .success(suffix) where !suffix.contains(":"):
                return .success(HostPattern(host: .under(suffix), port: port))
            case .success: return .failure(HostProblem("'*.' goes before a host name, not an address"))
            case let .failure(problem): return .failure(problem)
            }
        }
        if name.contains("*") { return .failure(HostProblem("'*' may only start a pattern, as in '*.example.com'")) }
        return normalize(String(name)).map { HostPattern(host: .exact($0), port: port) }
    }

    /// Whether a request to `host` (already normalised) on `port` is allowed, `port` being the
    /// one the connection will use: given in the URL, or the scheme's default.
    public func matches(host candidate: String, port candidatePort: Int, scheme: String) -> Bool {
        guard let wanted = port ?? Self.defaultPort(scheme: scheme), wanted == candidatePort else { return false }
        return matches(host: candidate)
    }

    /// Whether `candidate` (already normalised) is this pattern's host, whatever the port.
    public func matches(host candidate: String) -> Bool {
        switch host {
        case let .exact(name): candidate == name
        case let .under(suffix): candidate.hasSuffix("." + suffix)
        }
    }

    public static func defaultPort(scheme: String) -> Int? {
        switch scheme.lowercased() {
        case "http": 80
        case "https": 443
        default: nil
        }
    }

    /// A host in the one form patterns and requests are compared in: lower case, without a
    /// trailing dot or IPv6 brackets. Refused: non-ASCII (write the `xn--` form),
    /// percent-encoding and IPv6 zones (`%`), and anything but DNS labels or an IP address.
    public static func normalize(_ text: String) -> Result<String, HostProblem> {
        var host = Substring(text)
        if host.hasPrefix("[") && host.hasSuffix("]") { host = host.dropFirst().dropLast() }
        guard !host.isEmpty else { return .failure(HostProblem("empty host")) }
        guard !host.contains("%") else {
            return .failure(HostProblem("'%' in a host (percent-encoding or an IPv6 zone) is not allowed"))
        }
        guard host.unicodeScalars.allSatisfy(\.isASCII) else {
            return .failure(HostProblem("non-ASCII host: write it in its ASCII form (IDNA, 'xn--...')"))
        }
        var lower = host.lowercased()
        if lower.contains(":") {
            let valid = lower.unicodeScalars.allSatisfy {
                ("0"..."9").contains($0) || ("a"..."f").contains($0) || $0 == ":" || $0 == "."
            }
            return valid && lower.count <= 45 ? .success(lower) : .failure(HostProblem("not an IPv6 address"))
        }
        if lower.hasSuffix(".") { lower.removeLast() }
        let labels = lower.split(separator: ".", omittingEmptySubsequences: false)
        guard lower.count <= 253 else { return .failure(HostProblem("longer than 253 characters")) }
        for label in labels {
            guard !label.isEmpty else { return .failure(HostProblem("empty label")) }
            guard label.count <= 63 else { return .failure(HostProblem("a label longer than 63 characters")) }
            guard label.first != "-" && label.last != "-" else {
                return .failure(HostProblem("a label starts or ends with '-'"))
            }
            guard label.unicodeScalars.allSatisfy({ ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "-" })
            else {
                return .failure(HostProblem("only letters, digits, '-' and '.' may make a host name"))
            }
        }
        return .success(lower)
    }

    private static func parsePort(_ text: Substring) -> Result<Int, HostProblem> {
        guard !text.isEmpty, text.count <= 5, text.allSatisfy({ $0.isASCII && $0.isNumber }), let port = Int(text),
            (1...65535).contains(port)
        else { return .failure(HostProblem("the port must be a number from 1 to 65535")) }
        return .success(port)
    }
}

/// Why a host or an `allowed_hosts` entry was refused.
public struct HostProblem: Error, Sendable, Hashable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
