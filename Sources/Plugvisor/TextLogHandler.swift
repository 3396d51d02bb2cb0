import Logging
import PlugvisorProtocol

/// swift-log's `StreamLogHandler` on stderr, with every message and metadata value passed
/// through `DisplayText.escaped`: log lines carry what guests and workers wrote (their log
/// lines, their stderr, their error messages), and a newline in one must not start a forged
/// line, nor an escape sequence reach the terminal that shows the log.
///
/// `plugvisor start` (`--log-format text`, the default) bootstraps it; an embedding program can
/// too: `LoggingSystem.bootstrap { TextLogHandler(label: $0) }`.
public struct TextLogHandler: LogHandler {
    private var stream: StreamLogHandler

    public init(label: String, metadataProvider: Logger.MetadataProvider? = LoggingSystem.metadataProvider) {
        stream = .standardError(label: label, metadataProvider: metadataProvider.map(Self.escaping))
    }

    public var logLevel: Logger.Level {
        get { stream.logLevel }
        set { stream.logLevel = newValue }
    }

    public var metadata: Logger.Metadata {
        get { stream.metadata }
        set { stream.metadata = newValue.mapValues(Self.escaped) }
    }

    public var metadataProvider: Logger.MetadataProvider? {
        get { stream.metadataProvider }
        set { stream.metadataProvider = newValue.map(Self.escaping) }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { stream[metadataKey: key] }
        set { stream[metadataKey: key] = newValue.map(Self.escaped) }
    }

    public func log(event: LogEvent) {
        var event = event
        event.message = "\(DisplayText.escaped(event.message.description))"
        event.metadata = event.metadata?.mapValues(Self.escaped)
        stream.log(event: event)
    }

    private static func escaping(_ provider: Logger.MetadataProvider) -> Logger.MetadataProvider {
        Logger.MetadataProvider { provider.get().mapValues(escaped) }
    }

    private static func escaped(_ value: Logger.Metadata.Value) -> Logger.Metadata.Value {
        switch value {
        case let .string(text): return .string(DisplayText.escaped(text))
        case let .stringConvertible(convertible): return .string(DisplayText.escaped(convertible.description))
        case let .array(values): return .array(values.map(escaped))
        case let .dictionary(entries): return .dictionary(entries.mapValues(escaped))
        }
    }
}
