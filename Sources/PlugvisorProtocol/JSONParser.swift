/// Why bytes are not a JSON document, and where: `offset` is the zero-based position of the
/// offending byte in the input.
public struct JSONParseError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Reason: Sendable, Equatable {
        /// `found` is nil at the end of the input; `expected` says what would have been valid.
        case unexpected(found: UInt8?, expected: String)
        /// An array or object opens more than `limit` levels deep.
        case tooDeep(limit: Int)
        case invalidUTF8
        case controlCharacterInString(UInt8)
        case invalidEscape
        case unpairedSurrogate
        /// A number beyond the range of a double (1e400).
        case numberOutOfRange
        case duplicateKey(String)
        case byteOrderMark
    }

    public var reason: Reason
    public var offset: Int

    public init(_ reason: Reason, at offset: Int) {
        self.reason = reason
        self.offset = offset
    }

    public var description: String {
        let at = "at byte \(offset)"
        switch reason {
        case let .unexpected(nil, expected): return "unexpected end of input \(at), expected \(expected)"
        case let .unexpected(byte?, expected): return "unexpected \(Self.show(byte)) \(at), expected \(expected)"
        case let .tooDeep(limit): return "nesting deeper than \(limit) levels \(at)"
        case .invalidUTF8: return "invalid UTF-8 \(at)"
        case let .controlCharacterInString(byte):
            return "unescaped control character \(Self.show(byte)) in a string \(at)"
        case .invalidEscape: return "invalid escape sequence in a string \(at)"
        case .unpairedSurrogate: return "unpaired UTF-16 surrogate in a \\u escape \(at)"
        case .numberOutOfRange: return "number out of the range of a double \(at)"
        case let .duplicateKey(key):
            // The key is someone else's text: quoted with escapes, and cut short.
            let shown = key.count > 64 ? String(key.prefix(64)) + "…" : key
            return "duplicate key \(shown.debugDescription) \(at)"
        case .byteOrderMark: return "a byte order mark \(at) (JSON text must not start with one)"
        }
    }

    private static func show(_ byte: UInt8) -> String {
        (0x21...0x7e).contains(byte)
            ? "'\(Character(Unicode.Scalar(byte)))'" : "byte 0x\(String(byte, radix: 16, uppercase: true))"
    }
}

extension JSONValue {
    /// How deeply arrays and objects may nest in a document from outside (a request body, a
    /// guest's answer). See RATIONALE.md, "Why a hand-written JSON parser?".
    public static let maxDepth = 128

    /// Parses one RFC 8259 JSON text in time linear in its size, nesting at most `maxDepth`
    /// arrays and objects.
    ///
    /// Strict: no trailing commas, comments, byte order mark, duplicate keys, invalid UTF-8 or
    /// unpaired surrogates; whitespace around the value is allowed, anything else after it is
    /// not. A number written as an integer that fits Int64 is `.integer`; a fraction or exponent
    /// whose value is an integer in Int64's range is too (`1.0`, `1e3`, as JSONDecoder decoded
    /// them); any other number is `.double`.
    public init(parsing bytes: [UInt8], maxDepth: Int = JSONValue.maxDepth) throws(JSONParseError) {
        let result = bytes.withUnsafeBufferPointer { buffer -> Result<JSONValue, JSONParseError> in
            var parser = JSONParser(bytes: buffer, maxDepth: maxDepth)
            do throws(JSONParseError) { return .success(try parser.parseDocument()) } catch { return .failure(error) }
        }
        self = try result.get()
    }
}

/// A recursive-descent parser whose recursion is bounded by `maxDepth`, and which looks at each
/// byte a bounded number of times.
private struct JSONParser {
    let bytes: UnsafeBufferPointer<UInt8>
    let maxDepth: Int
    var index = 0
    /// Reused for strings with escapes.
    var scratch: [UInt8] = []

    init(bytes: UnsafeBufferPointer<UInt8>, maxDepth: Int) {
        self.bytes = bytes
        self.maxDepth = maxDepth
    }

    mutating func parseDocument() throws(JSONParseError) -> JSONValue {
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { throw JSONParseError(.byteOrderMark, at: 0) }
        skipWhitespace()
        let value = try parseValue(depth: 0)
        skipWhitespace()
        if index < bytes.count { throw unexpected("the end of the input") }
        return value
    }

    // MARK: Values

    /// A value inside `depth` enclosing arrays and objects.
    private mutating func parseValue(depth: Int) throws(JSONParseError) -> JSONValue {
        guard index < bytes.count else { throw unexpected("a value") }
        switch bytes[index] {
        case UInt8(ascii: "{"): return try parseObject(depth: depth + 1)
        case UInt8(ascii: "["): return try parseArray(depth: depth + 1)
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "t"):
            try parseLiteral("true")
            return .bool(true)
        case UInt8(ascii: "f"):
            try parseLiteral("false")
            return .bool(false)
        case UInt8(ascii: "n"):
            try parseLiteral("null")
            return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try parseNumber()
        default: throw unexpected("a value")
        }
    }

    private mutating func parseArray(depth: Int) throws(JSONParseError) -> JSONValue {
        if depth > maxDepth { throw JSONParseError(.tooDeep(limit: maxDepth), at: index) }
        index += 1
        skipWhitespace()
        if consume(UInt8(ascii: "]")) { return .array([]) }
        var elements: [JSONValue] = []
        while true {
            elements.append(try parseValue(depth: depth))
            skipWhitespace()
            if consume(UInt8(ascii: "]")) { return .array(elements) }
            guard consume(UInt8(ascii: ",")) else { throw unexpected("',' or ']'") }
            skipWhitespace()
        }
    }

    private mutating func parseObject(depth: Int) throws(JSONParseError) -> JSONValue {
        if depth > maxDepth { throw JSONParseError(.tooDeep(limit: maxDepth), at: index) }
        index += 1
        skipWhitespace()
        if consume(UInt8(ascii: "}")) { return .object([:]) }
        var members: [String: JSONValue] = [:]
        while true {
            guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { throw unexpected("a string key") }
            let keyOffset = index
            let key = try parseString()
            skipWhitespace()
            guard consume(UInt8(ascii: ":")) else { throw unexpected("':'") }
            skipWhitespace()
            let value = try parseValue(depth: depth)
            // Refused rather than first or last wins: two readers of the same bytes must never
            // see different values.
            if members.updateValue(value, forKey: key) != nil {
                throw JSONParseError(.duplicateKey(key), at: keyOffset)
            }
            skipWhitespace()
            if consume(UInt8(ascii: "}")) { return .object(members) }
            guard consume(UInt8(ascii: ",")) else { throw unexpected("',' or '}'") }
            skipWhitespace()
        }
    }

    private mutating func parseLiteral(_ literal: StaticString) throws(JSONParseError) {
        let text = UnsafeBufferPointer(start: literal.utf8Start, count: literal.utf8CodeUnitCount)
        for expected in text {
            guard index < bytes.count, bytes[index] == expected else { throw unexpected("'\(literal)'") }
            index += 1
        }
    }

    // MARK: Numbers

    private mutating func parseNumber() throws(JSONParseError) -> JSONValue {
        let start = index
        _ = consume(UInt8(ascii: "-"))
        if consume(UInt8(ascii: "0")) {
            // A leading zero stands alone: "01" ends the number after "0" and fails where it is used.
        } else {
            try digits()
        }
        var isIntegerLiteral = true
        if consume(UInt8(ascii: ".")) {
            isIntegerLiteral = false
            try digits()
        }
        if consume(UInt8(ascii: "e")) || consume(UInt8(ascii: "E")) {
            isIntegerLiteral = false
            if !consume(UInt8(ascii: "+")) { _ = consume(UInt8(ascii: "-")) }
            try digits()
        }
        let literal = UnsafeBufferPointer(rebasing: bytes[start..<index])
        if isIntegerLiteral, let integer = Self.int64(literal) { return .integer(integer) }
        guard let double = Double(String(decoding: literal, as: UTF8.self)), double.isFinite else {
            throw JSONParseError(.numberOutOfRange, at: start)
        }
        if !isIntegerLiteral, let integer = Int64(exactly: double) { return .integer(integer) }
        return .double(double)
    }

    /// One or more decimal digits.
    private mutating func digits() throws(JSONParseError) {
        guard index < bytes.count, Self.isDigit(bytes[index]) else { throw unexpected("a digit") }
        while index < bytes.count && Self.isDigit(bytes[index]) { index += 1 }
    }

    /// The value of an integer literal (already checked against the grammar), nil past Int64.
    private static func int64(_ literal: UnsafeBufferPointer<UInt8>) -> Int64? {
        let negative = literal.first == UInt8(ascii: "-")
        // Accumulated negatively, so that Int64.min fits.
        var value: Int64 = 0
        for byte in literal.dropFirst(negative ? 1 : 0) {
            let (times10, overflow1) = value.multipliedReportingOverflow(by: 10)
            let (next, overflow2) = times10.subtractingReportingOverflow(Int64(byte &- UInt8(ascii: "0")))
            if overflow1 || overflow2 { return nil }
            value = next
        }
        if negative { return value }
        return value == .min ? nil : -value
    }

    private static func isDigit(_ byte: UInt8) -> Bool { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) }

    // MARK: Strings

    /// The string starting at the opening quote under `index`.
    private mutating func parseString() throws(JSONParseError) -> String {
        index += 1
        let start = index
        var segment = index
        var escaped = false
        scratch.removeAll(keepingCapacity: true)
        while index < bytes.count {
            let byte = bytes[index]
            switch byte {
            case UInt8(ascii: "\""):
                defer { index += 1 }
                if !escaped {
                    return String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
                }
                scratch.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[segment..<index]))
                return String(decoding: scratch, as: UTF8.self)
            case UInt8(ascii: "\\"):
                escaped = true
                scratch.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[segment..<index]))
                try parseEscape()
                segment = index
            case 0..<0x20:
                throw JSONParseError(.controlCharacterInString(byte), at: index)
            case 0x80...:
                try skipUTF8Sequence()
            default:
                index += 1
            }
        }
        throw unexpected("'\"' closing the string")
    }

    /// The escape under `index`, appended to `scratch` as UTF-8.
    private mutating func parseEscape() throws(JSONParseError) {
        let start = index
        index += 1
        guard index < bytes.count else { throw unexpected("an escaped character") }
        let byte = bytes[index]
        index += 1
        let simple: UInt8?
        switch byte {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): simple = byte
        case UInt8(ascii: "b"): simple = 0x08
        case UInt8(ascii: "f"): simple = 0x0C
        case UInt8(ascii: "n"): simple = 0x0A
        case UInt8(ascii: "r"): simple = 0x0D
        case UInt8(ascii: "t"): simple = 0x09
        case UInt8(ascii: "u"): simple = nil
        default: throw JSONParseError(.invalidEscape, at: start)
        }
        if let simple {
            scratch.append(simple)
            return
        }
        let unit = try hex4(escapeAt: start)
        var scalar: Unicode.Scalar?
        switch unit {
        case 0xD800...0xDBFF:
            // A high surrogate must be followed at once by an escaped low one.
            guard index + 1 < bytes.count, bytes[index] == UInt8(ascii: "\\"), bytes[index + 1] == UInt8(ascii: "u")
            else {
                throw JSONParseError(.unpairedSurrogate, at: start)
            }
            index += 2
            let low = try hex4(escapeAt: index - 2)
            guard (0xDC00...0xDFFF).contains(low) else { throw JSONParseError(.unpairedSurrogate, at: start) }
            scalar = Unicode.Scalar(0x10000 + ((UInt32(unit) - 0xD800) << 10) + (UInt32(low) - 0xDC00))
        case 0xDC00...0xDFFF:
            throw JSONParseError(.unpairedSurrogate, at: start)
        default:
            scalar = Unicode.Scalar(unit)
        }
        guard let scalar else { throw JSONParseError(.invalidEscape, at: start) }
        UTF8.encode(scalar) { scratch.append($0) }
    }

    /// Four hex digits under `index`, for the `\u` escape that starts at `escapeAt`.
    private mutating func hex4(escapeAt start: Int) throws(JSONParseError) -> UInt16 {
        guard index + 4 <= bytes.count else { throw JSONParseError(.invalidEscape, at: start) }
        var unit: UInt16 = 0
        for _ in 0..<4 {
            let byte = bytes[index]
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: throw JSONParseError(.invalidEscape, at: start)
            }
            unit = unit << 4 | UInt16(digit)
            index += 1
        }
        return unit
    }

    /// Steps over one well-formed multi-byte UTF-8 sequence (Unicode Table 3-7): no overlong
    /// forms, no surrogates, nothing past U+10FFFF.
    private mutating func skipUTF8Sequence() throws(JSONParseError) {
        let lead = bytes[index]
        let second: ClosedRange<UInt8>
        let length: Int
        switch lead {
        case 0xC2...0xDF: (second, length) = (0x80...0xBF, 2)
        case 0xE0: (second, length) = (0xA0...0xBF, 3)
        case 0xE1...0xEC, 0xEE...0xEF: (second, length) = (0x80...0xBF, 3)
        case 0xED: (second, length) = (0x80...0x9F, 3)
        case 0xF0: (second, length) = (0x90...0xBF, 4)
        case 0xF1...0xF3: (second, length) = (0x80...0xBF, 4)
        case 0xF4: (second, length) = (0x80...0x8F, 4)
        default: throw JSONParseError(.invalidUTF8, at: index)
        }
        guard index + length <= bytes.count, second.contains(bytes[index + 1]) else {
            throw JSONParseError(.invalidUTF8, at: index)
        }
        for offset in 2..<length where !(0x80...0xBF).contains(bytes[index + offset]) {
            throw JSONParseError(.invalidUTF8, at: index)
        }
        index += length
    }

    // MARK: Bytes

    private mutating func skipWhitespace() {
        while index < bytes.count {
            switch bytes[index] {
            case 0x20, 0x09, 0x0A, 0x0D: index += 1
            default: return
            }
        }
    }

    private mutating func consume(_ byte: UInt8) -> Bool {
        guard index < bytes.count, bytes[index] == byte else { return false }
        index += 1
        return true
    }

    /// What is under `index` (or the end of input) where `expected` should have been.
    private func unexpected(_ expected: String) -> JSONParseError {
        JSONParseError(.unexpected(found: index < bytes.count ? bytes[index] : nil, expected: expected), at: index)
    }
}
