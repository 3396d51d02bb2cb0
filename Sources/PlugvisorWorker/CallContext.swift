import PlugvisorProtocol

/// A call's context as the supervisor sent it: the tree (for an Extism call, which reads members
/// of it) and the JSON bytes it came as, which a guest of the plugvisor ABI or a WASI command gets
/// as they are, without writing the tree again.
public struct CallContext {
    public let value: JSONValue
    public let json: ArraySlice<UInt8>

    public init(value: JSONValue, json: ArraySlice<UInt8>) {
        self.value = value
        self.json = json
    }

    /// A context built in this process (tests, tools): written once here.
    public init(_ value: JSONValue) throws {
        self.init(value: value, json: ArraySlice(try JSONCoding.write(value)))
    }
}
