/// Decodes a `Decodable` type from an already parsed `JSONValue`, with the errors (and their
/// coding paths) JSONDecoder would have thrown for the same bytes. A `JSONValue` member is the
/// subtree itself, taken in O(1) (see `JSONValue.init(from:)`).
struct JSONValueDecoder: Decoder, SingleValueDecodingContainer {
    let value: JSONValue
    private let path: CodingPath

    init(_ value: JSONValue) { self.init(value, path: .root) }

    private init(_ value: JSONValue, path: CodingPath) {
        self.value = value
        self.path = path
    }

    /// The decoder for a member or element of this value.
    fileprivate func child(_ value: JSONValue, _ key: CodingKey) -> JSONValueDecoder {
        JSONValueDecoder(value, path: .child(key, parent: path))
    }

    var codingPath: [CodingKey] { path.keys }
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        guard case let .object(members) = value else { throw mismatch([String: Any].self) }
        return KeyedDecodingContainer(KeyedContainer<Key>(members: members, decoder: self))
    }

    func unkeyedContainer() throws -> UnkeyedDecodingContainer {
        guard case let .array(elements) = value else { throw mismatch([Any].self) }
        return UnkeyedContainer(elements: elements, decoder: self)
    }

    func singleValueContainer() throws -> SingleValueDecodingContainer { self }

    // MARK: SingleValueDecodingContainer

    func decodeNil() -> Bool { value == .null }

    func decode(_ type: Bool.Type) throws -> Bool {
        guard case let .bool(bool) = value else { throw mismatch(type) }
        return bool
    }

    func decode(_ type: String.Type) throws -> String {
        guard case let .string(string) = value else { throw mismatch(type) }
        return string
    }

    func decode(_ type: Double.Type) throws -> Double {
        switch value {
        case let .integer(integer): return Double(integer)
        case let .double(double): return double
        default: throw mismatch(type)
        }
    }

    func decode(_ type: Float.Type) throws -> Float {
        let double = try decode(Double.self)
        let float = Float(double)
        guard float.isFinite else { throw doesNotFit(type) }
        return float
    }

    func decode(_ type: Int.Type) throws -> Int { try integer(type) }
    func decode(_ type: Int8.Type) throws -> Int8 { try integer(type) }
    func decode(_ type: Int16.Type) throws -> Int16 { try integer(type) }
    func decode(_ type: Int32.Type) throws -> Int32 { try integer(type) }
    func decode(_ type: Int64.Type) throws -> Int64 { try integer(type) }
    func decode(_ type: UInt.Type) throws -> UInt { try integer(type) }
    func decode(_ type: UInt8.Type) throws -> UInt8 { try integer(type) }
    func decode(_ type: UInt16.Type) throws -> UInt16 { try integer(type) }
    func decode(_ type: UInt32.Type) throws -> UInt32 { try integer(type) }
    func decode(_ type: UInt64.Type) throws -> UInt64 { try integer(type) }

    func decode<T: Decodable>(_ type: T.Type) throws -> T { try T(from: self) }

    private func integer<T: FixedWidthInteger>(_ type: T.Type) throws -> T {
        switch value {
        case let .integer(integer):
            guard let exact = T(exactly: integer) else { throw doesNotFit(type) }
            return exact
        // A fraction, or a whole number past Int64 that the parser could keep only rounded: never
        // silently an integer. So a UInt64 decodes up to Int64.max (every one on the wire fits).
        case .double: throw doesNotFit(type)
        default: throw mismatch(type)
        }
    }

    // MARK: Members by hand

    /// Member `key` of this object, for decoders written by hand (the messages every call
    /// carries, `CallFrames.swift`), with the errors KeyedDecodingContainer would give.
    func member(_ key: String) throws -> JSONValueDecoder {
        guard case let .object(members) = value else { throw mismatch([String: Any].self) }
        guard let member = members[key] else {
            throw DecodingError.keyNotFound(
                AnyKey(stringValue: key),
                .init(codingPath: codingPath, debugDescription: "No value associated with key \"\(key)\"."))
        }
        return child(member, AnyKey(stringValue: key))
    }

    /// Member `key`, or nil when it is missing or null (`decodeIfPresent`'s rule).
    func optionalMember(_ key: String) throws -> JSONValueDecoder? {
        guard case let .object(members) = value else { throw mismatch([String: Any].self) }
        guard let member = members[key], member != .null else { return nil }
        return child(member, AnyKey(stringValue: key))
    }

    // MARK: Errors, worded as JSONDecoder's

    fileprivate func mismatch(_ type: Any.Type) -> DecodingError {
        if value == .null {
            return .valueNotFound(
                type,
                .init(
                    codingPath: codingPath,
                    debugDescription: "Cannot get value of type \(type) -- found null value instead"))
        }
        let found: String
        switch value {
        case .null: found = "null"
        case .bool: found = "bool"
        case .integer, .double: found = "number"
        case .string: found = "a string"
        case .array: found = "an array"
        case .object: found = "a dictionary"
        }
        return .typeMismatch(
            type,
            .init(codingPath: codingPath, debugDescription: "Expected to decode \(type) but found \(found) instead."))
    }

    private func doesNotFit(_ type: Any.Type) -> DecodingError {
        .dataCorrupted(
            .init(codingPath: codingPath, debugDescription: "Parsed JSON number <\(value)> does not fit in \(type)."))
    }
}

/// A coding path built only when an error asks for it: each level costs O(1), not O(depth).
private indirect enum CodingPath {
    case root
    case child(CodingKey, parent: CodingPath)

    var keys: [CodingKey] {
        var keys: [CodingKey] = []
        var node = self
        while case let .child(key, parent) = node {
            keys.append(key)
            node = parent
        }
        return keys.reversed()
    }
}

/// A member's or element's key; an element is named "Index N", as JSONDecoder names it.
private struct AnyKey: CodingKey {
    let stringValue: String
    let intValue: Int?
    init(stringValue: String) {
        self.stringValue = stringValue
        intValue = nil
    }
    init(intValue: Int) {
        stringValue = "Index \(intValue)"
        self.intValue = intValue
    }
}

private struct KeyedContainer<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let members: [String: JSONValue]
    let decoder: JSONValueDecoder

    var codingPath: [CodingKey] { decoder.codingPath }
    var allKeys: [Key] { members.keys.compactMap { Key(stringValue: $0) } }

    func contains(_ key: Key) -> Bool { members[key.stringValue] != nil }

    private func child(_ key: Key) throws -> JSONValueDecoder {
        guard let value = members[key.stringValue] else {
            throw DecodingError.keyNotFound(
                key,
                .init(
                    codingPath: codingPath,
                    debugDescription: "No value associated with key \(key) (\"\(key.stringValue)\")."))
        }
        return decoder.child(value, key)
    }

    func decodeNil(forKey key: Key) throws -> Bool { try child(key).decodeNil() }
    func decode(_ type: Bool.Type, forKey key: Key) throws -> Bool { try child(key).decode(type) }
    func decode(_ type: String.Type, forKey key: Key) throws -> String { try child(key).decode(type) }
    func decode(_ type: Double.Type, forKey key: Key) throws -> Double { try child(key).decode(type) }
    func decode(_ type: Float.Type, forKey key: Key) throws -> Float { try child(key).decode(type) }
    func decode(_ type: Int.Type, forKey key: Key) throws -> Int { try child(key).decode(type) }
    func decode(_ type: Int8.Type, forKey key: Key) throws -> Int8 { try child(key).decode(type) }
    func decode(_ type: Int16.Type, forKey key: Key) throws -> Int16 { try child(key).decode(type) }
    func decode(_ type: Int32.Type, forKey key: Key) throws -> Int32 { try child(key).decode(type) }
    func decode(_ type: Int64.Type, forKey key: Key) throws -> Int64 { try child(key).decode(type) }
    func decode(_ type: UInt.Type, forKey key: Key) throws -> UInt { try child(key).decode(type) }
    func decode(_ type: UInt8.Type, forKey key: Key) throws -> UInt8 { try child(key).decode(type) }
    func decode(_ type: UInt16.Type, forKey key: Key) throws -> UInt16 { try child(key).decode(type) }
    func decode(_ type: UInt32.Type, forKey key: Key) throws -> UInt32 { try child(key).decode(type) }
    func decode(_ type: UInt64.Type, forKey key: Key) throws -> UInt64 { try child(key).decode(type) }
    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T { try child(key).decode(type) }

    func nestedContainer<NestedKey: CodingKey>(
        keyedBy type: NestedKey.Type, forKey key: Key
    ) throws
        -> KeyedDecodingContainer<NestedKey>
    {
        try child(key).container(keyedBy: type)
    }

    func nestedUnkeyedContainer(forKey key: Key) throws -> UnkeyedDecodingContainer {
        try child(key).unkeyedContainer()
    }

    func superDecoder() throws -> Decoder {
        decoder.child(members["super"] ?? .null, AnyKey(stringValue: "super"))
    }

    func superDecoder(forKey key: Key) throws -> Decoder {
        decoder.child(members[key.stringValue] ?? .null, key)
    }
}

private struct UnkeyedContainer: UnkeyedDecodingContainer {
    let elements: [JSONValue]
    let decoder: JSONValueDecoder
    private(set) var currentIndex = 0

    init(elements: [JSONValue], decoder: JSONValueDecoder) {
        self.elements = elements
        self.decoder = decoder
    }

    var codingPath: [CodingKey] { decoder.codingPath }
    var count: Int? { elements.count }
    var isAtEnd: Bool { currentIndex >= elements.count }

    /// The next element's decoder; the index moves on only once it decoded.
    private func next(_ type: Any.Type) throws -> JSONValueDecoder {
        guard !isAtEnd else {
            throw DecodingError.valueNotFound(
                type,
                .init(
                    codingPath: codingPath + [AnyKey(intValue: currentIndex)],
                    debugDescription: "Unkeyed container is at end."))
        }
        return decoder.child(elements[currentIndex], AnyKey(intValue: currentIndex))
    }

    private mutating func decodeNext<T>(_ decode: (JSONValueDecoder) throws -> T) throws -> T {
        let value = try decode(next(T.self))
        currentIndex += 1
        return value
    }

    mutating func decodeNil() throws -> Bool {
        if try next(Never?.self).decodeNil() {
            currentIndex += 1
            return true
        }
        return false
    }

    mutating func decode(_ type: Bool.Type) throws -> Bool { try decodeNext { try $0.decode(type) } }
    mutating func decode(_ type: String.Type) throws -> String { try decodeNext { try $0.decode(type) } }
    mutating func decode(_ type: Double.Type) throws -> Double { try decodeNext { try $0.decode(type) } }
    mutating func decode(_ type: Float.Type) throws -> Float { try decodeNext { try $0.decode(type) } }
    mutating func decode(_ type: Int.Type) throws -> Int { try decodeNext { try $0.decode(type) } }
    mutating func decode(_ type: Int8.Type) throws -> Int8 { try decodeNext { try $0.decode(type) } }
    mutating func decode(_ type: Int16.Type) throws -> Int16 { try decodeNext { try $0.decode(type) } }
    mutating func decode(_ type: Int32.Type) throws -> Int32 { try decodeNext { try $0.decode(type) } }
    mutating func decode(_ type: Int64.Type) throws -> Int64 { try decodeNext { try $0.decode(type) } }
    mutating func decode(_ type: UInt.Type) throws -> UInt { try decodeNext { try $0.decode(type) } }
    mutating func decode(_ type: UInt8.Type) throws -> UInt8 { try decodeNext { try $0.decode(type) } }
    mutating func decode(_ type: UInt16.Type) throws -> UInt16 { try decodeNext { try $0.decode(type) } }
    mutating func decode(_ type: UInt32.Type) throws -> UInt32 { try decodeNext { try $0.decode(type) } }
    mutating func decode(_ type: UInt64.Type) throws -> UInt64 { try decodeNext { try $0.decode(type) } }
    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T { try decodeNext { try $0.decode(type) } }

    mutating func nestedContainer<NestedKey: CodingKey>(
        keyedBy type: NestedKey.Type
    ) throws
        -> KeyedDecodingContainer<NestedKey>
    {
        try decodeNext { try $0.container(keyedBy: type) }
    }

    mutating func nestedUnkeyedContainer() throws -> UnkeyedDecodingContainer {
        try decodeNext { try $0.unkeyedContainer() }
    }

    mutating func superDecoder() throws -> Decoder { try decodeNext { $0 } }
}
