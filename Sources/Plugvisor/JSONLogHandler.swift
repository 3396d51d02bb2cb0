import Foundation
import Logging
import PlugvisorPosix
import PlugvisorProtocol

/// A swift-log handler that writes one JSON object per line (JSON Lines) to stderr, for log
/// shippers: `{"time", "level", "label", "message", ...metadata}`. The supervisor's metadata
/// (`plugin`, `generation`, `pid`, `source`: guest or stderr) become top-level keys.
///
/// `plugvisor start --log-format json` bootstraps it; an embedding program can too:
/// `LoggingSystem.bootstrap { JSONLogHandler(label: $0) }`.
public struct JSONLogHandler: LogHandler {
    public var logLevel: Logger.Level = .info
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    private let label: String

    public init(label: String, metadataProvider: Logger.MetadataProvider? = LoggingSystem.metadataProvider) {
        self.label = label
        self.metadataProvider = metadataProvider
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var fields: [String: JSONValue] = [:]
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { $1 } }
        if let extra = event.metadata { merged.merge(extra) { $1 } }
        for (key, value) in merged { fields[key] = Self.json(value) }
        // The fixed keys win over metadata of the same name.
        fields["time"] = .string(Self.timestamp())
        fields["level"] = .string(event.level.rawValue)
        fields["label"] = .string(label)
        fields["message"] = .string(event.message.description)
        if let error = event.error { fields["error"] = .string("\(error)") }
        Self.output.write(JSONCoding.compact(JSONValue.object(fields)) + "\n")
    }

    private static func json(_ value: Logger.Metadata.Value) -> JSONValue {
        switch value {
        case let .string(text): return .string(text)
        case let .stringConvertible(convertible): return .string(convertible.description)
        case let .array(values): return .array(values.map(json))
        case let .dictionary(entries): return .object(entries.mapValues(json))
        }
    }

    private static func timestamp() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var parts = tm()
        var seconds = now.tv_sec
        gmtime_r(&seconds, &parts)
        return String(
            format: "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", parts.tm_year + 1900, parts.tm_mon + 1, parts.tm_mday,
            parts.tm_hour, parts.tm_min, parts.tm_sec, now.tv_nsec / 1_000_000)
    }

    /// Lines from many threads must not interleave: one write(2) per line, under a lock.
    private static let output = LineWriter(descriptor: STDERR_FILENO)
}

final class LineWriter: Sendable {
    private let descriptor: Int32
    private let lock = Lock()

    init(descriptor: Int32) { self.descriptor = descriptor }

    func write(_ line: String) {
        let bytes = Array(line.utf8)
        // A line that cannot be written is dropped: there is nowhere to say so.
        lock.withLock { try? Descriptors.writeAll(descriptor, bytes) }
    }
}
