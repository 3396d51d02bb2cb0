import PlugvisorProtocol

/// A call's context as the supervisor sent it: the JSON bytes it came as, which a guest of the
/// plugvisor ABI or a WASI command gets as they are, and the tree only where it is asked for
/// (an Extism call reads members of it).
public struct CallContext {
    public let json: ArraySlice<UInt8>
    private let tree: JSONValue?

    public init(json: ArraySlice<UInt8>) {
        self.json = json
        tree = nil
    }

    /// A context built in this process (tests, tools): written once here.
    public init(_ value: JSONValue) throws {
        json = ArraySlice(try JSONCoding.write(value))
        tree = value
    }

    /// The context as a tree, parsed from its bytes on each use.
    public func value() throws(JSONParseError) -> JSONValue {
        if let tree { return tree }
        return try JSONValue(parsing: Array(json), maxDepth: JSONCoding.maxMessageDepth)
    }
}
