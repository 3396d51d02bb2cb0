// FoundationEssentials, not Foundation: the worker links this module, and Foundation's
// internationalisation libraries would cost every worker megabytes of memory and start-up time.
import FoundationEssentials

/// A JSON document as a value. Integers keep their exact value; other numbers are doubles.
public enum JSONValue: Sendable, Hashable {
    case null
    case bool(Bool)
    case integer(Int64)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public subscript(key: String) -> JSONValue? {
        if case let .object(members) = self { return members[key] }
        return nil
    }

    public var stringValue: String? {
        if case let .string(s) = self { return s }
        return nil
    }

    public var boolValue: Bool? {
        if case let .bool(b) = self { return b }
        return nil
    }

    public var objectValue: [String: JSONValue]? {
        if case let .object(o) = self { return o }
        return nil
    }
}

extension JSONValue: Codable {
    /// From JSONCoding.decode, the subtree the parser built, in O(1). From any other decoder,
    /// trial and error: each failed attempt costs that decoder an error with the coding path, so
    /// deep documents cost quadratic time. Untrusted bytes therefore never come this way.
    public init(from decoder: Decoder) throws {
        if let decoder = decoder as? JSONValueDecoder {
            self = decoder.value
            return
        }
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let b = try? container.decode(Bool.self) {
            self = .bool(b)
        } else if let i = try? container.decode(Int64.self) {
            self = .integer(i)
        } else if let d = try? container.decode(Double.self) {
            self = .double(d)
        } else if let s = try? container.decode(String.self) {
            self = .string(s)
        } else if let a = try? container.decode([JSONValue].self) {
            self = .array(a)
        } else if let o = try? container.decode([String: JSONValue].self) {
            self = .object(o)
        } else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "not a JSON value")
        }
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case let .bool(b): try container.encode(b)
        case let .integer(i): try container.encode(i)
        case let .double(d): try container.encode(d)
        case let .string(s): try container.encode(s)
        case let .array(a): try container.encode(a)
        case let .object(o): try container.encode(o)
        }
    }
}

extension JSONValue: ExpressibleByStringLiteral, ExpressibleByBooleanLiteral, ExpressibleByIntegerLiteral,
    ExpressibleByDictionaryLiteral, ExpressibleByArrayLiteral, ExpressibleByNilLiteral, ExpressibleByFloatLiteral
{
    public init(stringLiteral value: String) { self = .string(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(integerLiteral value: Int64) { self = .integer(value) }
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self = .object(Dictionary(elements, uniquingKeysWith: { _, last in last }))
    }
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
    public init(nilLiteral: ()) { self = .null }
    public init(floatLiteral value: Double) { self = .double(value) }
}

/// The one place JSON is turned into bytes and back, so that both sides agree on the dialect.
public enum JSONCoding {
    /// Compact JSON, keys sorted, slashes unescaped (JSONEncoder's output with
    /// `[.sortedKeys, .withoutEscapingSlashes]`), in time linear in the size of `value`.
    public static func encode<T: Encodable>(_ value: T) throws -> [UInt8] {
        try JSONWriter.write(try JSONValueEncoder.encode(value))
    }

    /// `value` as JSON in the same dialect, without going through Codable: for trees that are
    /// already built (a call's context, an answer the worker assembled).
    /// - Throws: `EncodingError` for a number JSON cannot spell (NaN, infinity).
    public static func write(_ value: JSONValue) throws -> [UInt8] { try JSONWriter.write(value) }

    /// How deeply a protocol message may nest: a value checked at `JSONValue.maxDepth` where it
    /// entered (a request body, a guest's answer), inside the few envelopes that carry it.
    public static let maxMessageDepth = JSONValue.maxDepth + 8

    /// Parses `bytes` once, in linear time and at most `maxDepth` deep, then decodes `T` from
    /// the tree.
    /// - Throws: `JSONParseError` for bytes that are not JSON (what, and at which byte), or
    ///   `DecodingError` for JSON that is not a `T`.
    public static func decode<T: Decodable>(
        _ type: T.Type, from bytes: [UInt8], maxDepth: Int = maxMessageDepth
    ) throws -> T {
        let value = try JSONValue(parsing: bytes, maxDepth: maxDepth)
        return try JSONValueDecoder(value).decode(type)
    }

    /// Decodes `T` from a tree already parsed (a frame whose messages are read from the tree first).
    public static func decode<T: Decodable>(_ type: T.Type, from value: JSONValue) throws -> T {
        try JSONValueDecoder(value).decode(type)
    }

    /// Human-readable rendering for terminals.
    public static func pretty<T: Encodable>(_ value: T) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        return (try? encoder.encode(value)).flatMap { String(data: $0, encoding: .utf8) } ?? "null"
    }

    public static func compact<T: Encodable>(_ value: T) -> String {
        (try? encode(value)).map { String(decoding: $0, as: UTF8.self) } ?? "null"
    }
}

extension JSONValue: CustomStringConvertible {
    /// The value as compact JSON, so that `print(result)` shows what a plugin answered.
    public var description: String { JSONCoding.compact(self) }
}
