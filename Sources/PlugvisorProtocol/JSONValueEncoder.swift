/// Encodes an `Encodable` into a `JSONValue` tree, and writes a tree as the bytes JSONEncoder
/// wrote with `[.sortedKeys, .withoutEscapingSlashes]`, in time linear in its size. JSONEncoder
/// spends O(depth) per value on coding paths, seconds for a megabyte nested 120 deep; here a
/// `JSONValue` member is stored as it is, in O(1).
final class JSONValueEncoder: Encoder {
    let codingPath: [CodingKey] = []
    var userInfo: [CodingUserInfoKey: Any] { [:] }
    fileprivate var node: Node = .value(.null)

    static func encode<T: Encodable>(_ value: T) throws -> JSONValue {
        if let value = value as? JSONValue { return value }
        let encoder = JSONValueEncoder()
        try value.encode(to: encoder)
        return encoder.node.json
    }

    /// Stores a whole subtree in O(1); for `JSONValue.encode(to:)`.
    func store(_ value: JSONValue) { node = .value(value) }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        // Several keyed containers for one value (an enum's type tag, then its payload) share one object.
        if case let .object(object) = node { return KeyedEncodingContainer(KeyedContainer(object: object)) }
        let object = ObjectNode()
        node = .object(object)
        return KeyedEncodingContainer(KeyedContainer(object: object))
    }

    func unkeyedContainer() -> UnkeyedEncodingContainer {
        if case let .array(array) = node { return UnkeyedContainer(array: array) }
        let array = ArrayNode()
        node = .array(array)
        return UnkeyedContainer(array: array)
    }

    func singleValueContainer() -> SingleValueEncodingContainer { SingleValueContainer(encoder: self) }

    /// What `value` encodes to, as a node of the tree under construction.
    fileprivate static func node<T: Encodable>(_ value: T) throws -> Node {
        if let value = value as? JSONValue { return .value(value) }
        let encoder = JSONValueEncoder()
        try value.encode(to: encoder)
        return encoder.node
    }
}

/// The tree while it is built: containers are references, as a nested container may be written
/// after its parent moved on.
private enum Node {
    case value(JSONValue)
    case object(ObjectNode)
    case array(ArrayNode)

    var json: JSONValue {
        switch self {
        case let .value(value): return value
        case let .object(object): return .object(object.members.mapValues(\.json))
        case let .array(array): return .array(array.elements.map(\.json))
        }
    }
}

private final class ObjectNode { var members: [String: Node] = [:] }
private final class ArrayNode { var elements: [Node] = [] }

private struct KeyedContainer<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let object: ObjectNode
    var codingPath: [CodingKey] { [] }

    mutating func encodeNil(forKey key: Key) { object.members[key.stringValue] = .value(.null) }
    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
        object.members[key.stringValue] = try JSONValueEncoder.node(value)
    }

    mutating func nestedContainer<NestedKey: CodingKey>(
        keyedBy type: NestedKey.Type, forKey key: Key
    )
        -> KeyedEncodingContainer<NestedKey>
    {
        let nested = ObjectNode()
        object.members[key.stringValue] = .object(nested)
        return KeyedEncodingContainer(KeyedContainer<NestedKey>(object: nested))
    }

    mutating func nestedUnkeyedContainer(forKey key: Key) -> UnkeyedEncodingContainer {
        let nested = ArrayNode()
        object.members[key.stringValue] = .array(nested)
        return UnkeyedContainer(array: nested)
    }

    mutating func superEncoder() -> Encoder { superEncoder(named: "super") }
    mutating func superEncoder(forKey key: Key) -> Encoder { superEncoder(named: key.stringValue) }

    private func superEncoder(named name: String) -> Encoder {
        let encoder = JSONValueEncoder()
        let nested = ObjectNode()
        encoder.node = .object(nested)
        object.members[name] = .object(nested)
        return encoder
    }
}

private struct UnkeyedContainer: UnkeyedEncodingContainer {
    let array: ArrayNode
    var codingPath: [CodingKey] { [] }
    var count: Int { array.elements.count }

    mutating func encodeNil() { array.elements.append(.value(.null)) }
    mutating func encode<T: Encodable>(_ value: T) throws { array.elements.append(try JSONValueEncoder.node(value)) }

    mutating func nestedContainer<NestedKey: CodingKey>(
        keyedBy type: NestedKey.Type
    ) -> KeyedEncodingContainer<NestedKey> {
        let nested = ObjectNode()
        array.elements.append(.object(nested))
        return KeyedEncodingContainer(KeyedContainer<NestedKey>(object: nested))
    }

    mutating func nestedUnkeyedContainer() -> UnkeyedEncodingContainer {
        let nested = ArrayNode()
        array.elements.append(.array(nested))
        return UnkeyedContainer(array: nested)
    }

    mutating func superEncoder() -> Encoder {
        let encoder = JSONValueEncoder()
        let nested = ObjectNode()
        encoder.node = .object(nested)
        array.elements.append(.object(nested))
        return encoder
    }
}

private struct SingleValueContainer: SingleValueEncodingContainer {
    let encoder: JSONValueEncoder
    var codingPath: [CodingKey] { [] }

    func encodeNil() { encoder.store(.null) }
    func encode(_ value: Bool) { encoder.store(.bool(value)) }
    func encode(_ value: String) { encoder.store(.string(value)) }
    func encode(_ value: Double) { encoder.store(.double(value)) }
    func encode(_ value: Float) { encoder.store(.double(Double(value))) }
    func encode(_ value: Int) throws { try integer(value) }
    func encode(_ value: Int8) throws { try integer(value) }
    func encode(_ value: Int16) throws { try integer(value) }
    func encode(_ value: Int32) throws { try integer(value) }
    func encode(_ value: Int64) throws { try integer(value) }
    func encode(_ value: UInt) throws { try integer(value) }
    func encode(_ value: UInt8) throws { try integer(value) }
    func encode(_ value: UInt16) throws { try integer(value) }
    func encode(_ value: UInt32) throws { try integer(value) }
    func encode(_ value: UInt64) throws { try integer(value) }
    func encode<T: Encodable>(_ value: T) throws { encoder.node = try JSONValueEncoder.node(value) }

    private func integer<T: FixedWidthInteger>(_ value: T) throws {
        guard let exact = Int64(exactly: value) else {
            throw EncodingError.invalidValue(
                value, .init(codingPath: [], debugDescription: "\(value) does not fit in Int64"))
        }
        encoder.store(.integer(exact))
    }

}

/// Writes a tree as JSONEncoder did with `[.sortedKeys, .withoutEscapingSlashes]`.
enum JSONWriter {
    static func write(_ value: JSONValue) throws -> [UInt8] {
        var out: [UInt8] = []
        try write(value, into: &out)
        return out
    }

    static func write(_ value: JSONValue, into out: inout [UInt8]) throws {
        switch value {
        case .null: out += "null".utf8
        case let .bool(bool): out += (bool ? "true" : "false").utf8
        case let .integer(integer): out += String(integer).utf8
        case let .double(double):
            guard double.isFinite else {
                throw EncodingError.invalidValue(
                    double, .init(codingPath: [], debugDescription: "\(double) is not a JSON number"))
            }
            // JSONEncoder's form: Swift's shortest description, "2.0" as "2".
            var text = double.description
            if text.hasSuffix(".0") { text.removeLast(2) }
            out += text.utf8
        case let .string(string): writeString(string, into: &out)
        case let .array(elements):
            out.append(UInt8(ascii: "["))
            for (index, element) in elements.enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                try write(element, into: &out)
            }
            out.append(UInt8(ascii: "]"))
        case let .object(members):
            out.append(UInt8(ascii: "{"))
            for (index, member) in members.sorted(by: { $0.key < $1.key }).enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                writeString(member.key, into: &out)
                out.append(UInt8(ascii: ":"))
                try write(member.value, into: &out)
            }
            out.append(UInt8(ascii: "}"))
        }
    }

    private static func writeString(_ string: String, into out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        defer { out.append(UInt8(ascii: "\"")) }
        // Most strings (keys, ids) need no escape: copied whole.
        guard string.utf8.contains(where: { $0 < 0x20 || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") })
        else {
            out += string.utf8
            return
        }
        for byte in string.utf8 {
            switch byte {
            case UInt8(ascii: "\""): out += #"\""#.utf8
            case UInt8(ascii: "\\"): out += #"\\"#.utf8
            case 0x0A: out += #"\n"#.utf8
            case 0x0D: out += #"\r"#.utf8
            case 0x09: out += #"\t"#.utf8
            case 0x08: out += #"\b"#.utf8
            case 0x0C: out += #"\f"#.utf8
            case 0..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                out += #"\u00"#.utf8
                out.append(hex[Int(byte >> 4)])
                out.append(hex[Int(byte & 0xF)])
            default: out.append(byte)
            }
        }
    }
}
