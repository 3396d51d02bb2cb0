// Plugvisor.swift — write a plugvisor plugin in Embedded Swift (wasm32-unknown-none-wasm).
//
// Compile this file together with yours; yours defines one global, `plugin`:
//
//     let plugin = Plugin(name: "greeter", version: "1.0.0") { context throws(PluginError) in   // Embedded Swift needs the typed throws
//         guard let name = context.parameter("name") else { throw PluginError("pass a \"name\" parameter") }
//         log(.info, "greeting \(name)")
//         return ["message": "\(config("greeting") ?? "Hello"), \(name)!"]
//     }
//
// The kit owns every pointer: it provides the exports (allocate, deallocate, execute, meta),
// reads the context JSON into a `Context`, answers {"success":true,"data":...} with what the
// handler returns or {"success":false,"error":...} with what it throws, and wraps the host's
// functions (`log`, `config`, `httpRequest`). Embedded Swift has no Foundation or Codable, so
// JSON is the small value type below, with its own parser and serializer.
// Build: `plugvisor new NAME --lang swift` writes a build.sh; scripts/build-fixtures.sh has the same commands.

// MARK: - What a plugin defines

/// A plugin: its name, version (shown by `plugvisor status`) and description, answered by the
/// `meta` export, and the function that answers each call.
public struct Plugin {
    public let name: String
    public let version: String
    public let description: String
    let handle: (Context) throws(PluginError) -> JSON

    public init(name: String = "", version: String, description: String = "",
                handle: @escaping (Context) throws(PluginError) -> JSON) {
        self.name = name
        self.version = version
        self.description = description
        self.handle = handle
    }
}

/// The plugin context of one call: `{"request_id", "headers", "parameters"}`.
public struct Context {
    public let requestID: String
    /// An object (empty when the caller sent none).
    public let headers: JSON
    /// An object (empty when the caller sent none).
    public let parameters: JSON
    /// The whole context as the host sent it.
    public let json: JSON

    init(_ json: JSON) throws(PluginError) {
        guard json.members != nil else { throw PluginError("the context is not a JSON object") }
        self.json = json
        requestID = json["request_id"]?.string ?? ""
        headers = json["headers"]?.members != nil ? json["headers"]! : [:]
        parameters = json["parameters"]?.members != nil ? json["parameters"]! : [:]
    }

    /// The string value of `parameters[name]`, or nil when absent or not a string.
    public func parameter(_ name: String) -> String? { parameters[name]?.string }

    /// The string value of a header, its name matched without regard to ASCII case.
    public func header(_ name: String) -> String? {
        let wanted = asciiLowercased(name)
        return headers.members?.last(where: { asciiLowercased($0.key) == wanted })?.value.string
    }
}

/// What a handler throws: the call is answered `{"success": false, "error": message}`.
public struct PluginError: Error {
    public var message: String
    public init(_ message: String) { self.message = message }
}

// MARK: - Host functions

public enum LogLevel: Int32 {
    case trace = 0, debug, info, notice, warning, error
}

/// A log line in the supervisor's log, with the plugin's name (at most 4 KiB a line, 100 lines a second).
public func log(_ level: LogLevel, _ message: String) {
    let bytes = Array(message.utf8)
    bytes.withUnsafeBufferPointer { hostLog(level.rawValue, $0.baseAddress, Int32($0.count)) }
}

/// The value of a `config` key from the manifest, or nil when it has none.
public func config(_ key: String) -> String? {
    let keyBytes = Array(key.utf8)
    var value = [UInt8](repeating: 0, count: 256)
    while true {
        let length = keyBytes.withUnsafeBufferPointer { keyBuffer in
            value.withUnsafeMutableBufferPointer { valueBuffer in
                hostConfigGet(keyBuffer.baseAddress, Int32(keyBuffer.count), valueBuffer.baseAddress, Int32(valueBuffer.count))
            }
        }
        if length < 0 { return nil }
        if Int(length) <= value.count { return String(decoding: value[0..<Int(length)], as: UTF8.self) }
        value = [UInt8](repeating: 0, count: Int(length))  // too small: ask again with room for all of it
    }
}

/// The answer of `httpRequest`. A body that is not UTF-8 comes base64-encoded in `bodyBase64`.
public struct HTTPResponse {
    public let status: Int
    /// An object of header names to values.
    public let headers: JSON
    public let body: String
    public let bodyBase64: String?
}

/// An HTTP request through the supervisor, to the hosts in the manifest's `network.allowed_hosts`.
/// - Throws: `PluginError` with the host's reason when the request was refused or failed.
public func httpRequest(_ url: String, method: String = "GET", headers: JSON = [:], body: String? = nil)
    throws(PluginError) -> HTTPResponse
{
    var request: JSON = ["method": .string(method), "url": .string(url), "headers": headers]
    if let body { request["body"] = .string(body) }
    let requestBytes = request.serialized()
    let packed = requestBytes.withUnsafeBufferPointer { hostHTTPRequest($0.baseAddress, Int32($0.count)) }
    let answerBytes = takeGuestBuffer(packed)
    let answer: JSON
    do throws(JSONError) { answer = try JSON.parse(answerBytes) } catch {
        throw PluginError("the host's HTTP answer is not valid JSON: \(error.description)")
    }
    if let error = answer["error"]?.string { throw PluginError(error) }
    guard let status = answer["status"]?.int else { throw PluginError("the host's HTTP answer has no status") }
    return HTTPResponse(status: status, headers: answer["headers"] ?? [:], body: answer["body"]?.string ?? "",
                        bodyBase64: answer["body_base64"]?.string)
}

/// Calls `name`, a host function of the program embedding plugvisor that the manifest grants
/// (`host_functions`), with `input`.
/// - Returns: the function's answer.
/// - Throws: `PluginError` with the host's reason (not granted, not provided, thrown, timed out).
public func hostCall(_ name: String, _ input: [UInt8]) throws(PluginError) -> [UInt8] {
    let nameBytes = Array(name.utf8)
    let packed = nameBytes.withUnsafeBufferPointer { nameBuffer in
        input.withUnsafeBufferPointer { inputBuffer in
            hostHostCall(nameBuffer.baseAddress, Int32(nameBuffer.count), inputBuffer.baseAddress, Int32(inputBuffer.count))
        }
    }
    // The top bit of the low word says the buffer holds the reason it failed.
    let failed = UInt64(bitPattern: packed) & 0x8000_0000 != 0
    let bytes = takeGuestBuffer(Int64(bitPattern: UInt64(bitPattern: packed) & ~UInt64(0x8000_0000)))
    if failed { throw PluginError(String(decoding: bytes, as: UTF8.self)) }
    return bytes
}

@_extern(wasm, module: "plugvisor", name: "host_call")
@_extern(c)
func hostHostCall(_ name: UnsafePointer<UInt8>?, _ nameLength: Int32, _ input: UnsafePointer<UInt8>?,
                  _ inputLength: Int32) -> Int64

@_extern(wasm, module: "plugvisor", name: "log")
@_extern(c)
func hostLog(_ level: Int32, _ message: UnsafePointer<UInt8>?, _ length: Int32)

@_extern(wasm, module: "plugvisor", name: "config_get")
@_extern(c)
func hostConfigGet(_ key: UnsafePointer<UInt8>?, _ keyLength: Int32, _ buffer: UnsafeMutablePointer<UInt8>?,
                   _ bufferLength: Int32) -> Int32

@_extern(wasm, module: "plugvisor", name: "http_request")
@_extern(c)
func hostHTTPRequest(_ request: UnsafePointer<UInt8>?, _ length: Int32) -> Int64

// MARK: - The exports (the guest ABI; nothing here is for plugin code)

/// Buffers handed to the host live until it calls deallocate.
@_expose(wasm, "allocate")
@_cdecl("allocate")
func plugvisorAllocate(_ size: Int32) -> UnsafeMutableRawPointer {
    UnsafeMutableRawPointer.allocate(byteCount: Int(max(size, 1)), alignment: 8)
}

@_expose(wasm, "deallocate")
@_cdecl("deallocate")
func plugvisorDeallocate(_ pointer: UnsafeMutableRawPointer?, _ size: Int32) {
    pointer?.deallocate()
}

@_expose(wasm, "execute")
@_cdecl("execute")
func plugvisorExecute(_ pointer: UnsafePointer<UInt8>?, _ length: Int32) -> Int64 {
    let input = Array(UnsafeBufferPointer(start: pointer, count: pointer == nil ? 0 : Int(max(length, 0))))
    return giveToHost(answer(to: input).serialized())
}

/// The answer to one context: a malformed one is refused with an error result, never a trap.
func answer(to input: [UInt8]) -> JSON {
    let parsed: JSON
    do throws(JSONError) { parsed = try JSON.parse(input) } catch {
        return ["success": false, "error": "the context is not valid JSON: \(error.description)"]
    }
    do throws(PluginError) {
        return ["success": true, "data": try plugin.handle(try Context(parsed))]
    } catch {
        return ["success": false, "error": .string(error.message)]
    }
}

@_expose(wasm, "meta")
@_cdecl("meta")
func plugvisorMeta() -> Int64 {
    let meta: JSON = ["name": .string(plugin.name), "version": .string(plugin.version), "description": .string(plugin.description)]
    return giveToHost(meta.serialized())
}

/// Copies `bytes` into a buffer the host frees with deallocate, packed as (pointer << 32) | length.
func giveToHost(_ bytes: [UInt8]) -> Int64 {
    let buffer = plugvisorAllocate(Int32(bytes.count))
    bytes.withUnsafeBytes { buffer.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
    return Int64(UInt32(UInt(bitPattern: buffer))) << 32 | Int64(bytes.count)
}

/// Copies out, then frees, a buffer the host filled through our allocate.
func takeGuestBuffer(_ packed: Int64) -> [UInt8] {
    let address = UInt(UInt64(bitPattern: packed) >> 32)
    let length = Int(UInt32(truncatingIfNeeded: packed))
    guard let pointer = UnsafeMutableRawPointer(bitPattern: address) else { return [] }
    let bytes = Array(UnsafeRawBufferPointer(start: pointer, count: length))
    pointer.deallocate()
    return bytes
}

func asciiLowercased(_ text: String) -> [UInt8] {
    text.utf8.map { ($0 >= 65 && $0 <= 90) ? $0 + 32 : $0 }
}

// MARK: - JSON

/// A JSON value. Objects keep their members in order; numbers are Doubles, as in JavaScript
/// (integers are exact up to 2^53).
public enum JSON: Equatable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSON])
    case object([(key: String, value: JSON)])

    /// A member of an object (the last one with that key, as JavaScript does), or nil. Setting
    /// replaces that member or appends one, nil removes it; on anything but an object it does nothing.
    public subscript(key: String) -> JSON? {
        get { members?.last(where: { $0.key == key })?.value }
        set {
            guard case var .object(items) = self else { return }
            if let index = items.lastIndex(where: { $0.key == key }) {
                if let newValue { items[index].value = newValue } else { items.remove(at: index) }
            } else if let newValue {
                items.append((key: key, value: newValue))
            }
            self = .object(items)
        }
    }

    /// An element of an array, or nil when out of range or not an array.
    public subscript(index: Int) -> JSON? {
        guard case let .array(items) = self, items.indices.contains(index) else { return nil }
        return items[index]
    }

    public var string: String? { if case let .string(value) = self { value } else { nil } }
    public var bool: Bool? { if case let .bool(value) = self { value } else { nil } }
    public var double: Double? { if case let .number(value) = self { value } else { nil } }
    /// The number as an Int when it is a whole number that fits.
    public var int: Int? { double.flatMap { Int(exactly: $0) } }
    public var array: [JSON]? { if case let .array(items) = self { items } else { nil } }
    public var members: [(key: String, value: JSON)]? { if case let .object(items) = self { items } else { nil } }
    public var isNull: Bool { if case .null = self { true } else { false } }

    public static func == (left: JSON, right: JSON) -> Bool {
        switch (left, right) {
        case (.null, .null): return true
        case let (.bool(a), .bool(b)): return a == b
        case let (.number(a), .number(b)): return a == b
        case let (.string(a), .string(b)): return a == b
        case let (.array(a), .array(b)): return a == b
        case let (.object(a), .object(b)):
            return a.count == b.count && zip(a, b).allSatisfy { $0.key == $1.key && $0.value == $1.value }
        default: return false
        }
    }
}

extension JSON: ExpressibleByNilLiteral, ExpressibleByBooleanLiteral, ExpressibleByIntegerLiteral,
    ExpressibleByFloatLiteral, ExpressibleByStringInterpolation, ExpressibleByArrayLiteral,
    ExpressibleByDictionaryLiteral
{
    public init(nilLiteral: ()) { self = .null }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(integerLiteral value: Int) { self = .number(Double(value)) }
    public init(floatLiteral value: Double) { self = .number(value) }
    public init(stringLiteral value: String) { self = .string(value) }
    public init(arrayLiteral elements: JSON...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, JSON)...) {
        self = .object(elements.map { (key: $0.0, value: $0.1) })
    }
}

/// Why a text is not JSON, and where (a byte offset).
public struct JSONError: Error, CustomStringConvertible {
    public let reason: String
    public let offset: Int
    public var description: String { "\(reason) at byte \(offset)" }
}

extension JSON {
    /// Parses one JSON value (RFC 8259), with nothing but whitespace around it.
    /// - Throws: `JSONError` for anything malformed, including invalid UTF-8, lone surrogates,
    ///   numbers beyond Double's range, and nesting deeper than 128 levels; never traps.
    public static func parse(_ text: String) throws(JSONError) -> JSON {
        try parse(Array(text.utf8))
    }

    public static func parse(_ bytes: [UInt8]) throws(JSONError) -> JSON {
        var parser = JSONParser(bytes: bytes)
        let value = try parser.parseValue(depth: 0)
        parser.skipWhitespace()
        if parser.position < bytes.count { throw parser.error("unexpected text after the JSON value") }
        return value
    }

    /// The value as compact JSON text, strings escaped (non-finite numbers become null).
    public func serialized() -> [UInt8] {
        var out: [UInt8] = []
        write(to: &out)
        return out
    }

    public var text: String { String(decoding: serialized(), as: UTF8.self) }

    func write(to out: inout [UInt8]) {
        switch self {
        case .null: out.append(contentsOf: "null".utf8)
        case let .bool(value): out.append(contentsOf: (value ? "true" : "false").utf8)
        case let .number(value): writeNumber(value, to: &out)
        case let .string(value): writeString(value, to: &out)
        case let .array(items):
            out.append(UInt8(ascii: "["))
            for (index, item) in items.enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                item.write(to: &out)
            }
            out.append(UInt8(ascii: "]"))
        case let .object(items):
            out.append(UInt8(ascii: "{"))
            for (index, item) in items.enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                writeString(item.key, to: &out)
                out.append(UInt8(ascii: ":"))
                item.value.write(to: &out)
            }
            out.append(UInt8(ascii: "}"))
        }
    }
}

func writeNumber(_ value: Double, to out: inout [UInt8]) {
    if !value.isFinite {
        out.append(contentsOf: "null".utf8)
    } else if let whole = Int64(exactly: value), abs(whole) < 1 << 53 {
        out.append(contentsOf: "\(whole)".utf8)  // 3, not 3.0
    } else {
        out.append(contentsOf: "\(value)".utf8)  // Swift's shortest round-trip form, valid JSON
    }
}

func writeString(_ value: String, to out: inout [UInt8]) {
    let hex: [UInt8] = Array("0123456789abcdef".utf8)
    out.append(UInt8(ascii: "\""))
    for byte in value.utf8 {
        switch byte {
        case UInt8(ascii: "\""): out.append(contentsOf: "\\\"".utf8)
        case UInt8(ascii: "\\"): out.append(contentsOf: "\\\\".utf8)
        case UInt8(ascii: "\n"): out.append(contentsOf: "\\n".utf8)
        case UInt8(ascii: "\r"): out.append(contentsOf: "\\r".utf8)
        case UInt8(ascii: "\t"): out.append(contentsOf: "\\t".utf8)
        case 0..<0x20: out.append(contentsOf: [92, 117, 48, 48, hex[Int(byte >> 4)], hex[Int(byte & 15)]])  // \u00XX
        default: out.append(byte)
        }
    }
    out.append(UInt8(ascii: "\""))
}

/// A recursive-descent parser over UTF-8 bytes; every error names its byte offset.
struct JSONParser {
    let bytes: [UInt8]
    var position = 0
    /// Each level costs stack in a recursive parser; the guest's stack is small.
    static let maximumDepth = 128

    init(bytes: [UInt8]) { self.bytes = bytes }

    func error(_ reason: String) -> JSONError { JSONError(reason: reason, offset: position) }

    var current: UInt8? { position < bytes.count ? bytes[position] : nil }

    mutating func skipWhitespace() {
        while let byte = current, byte == 0x20 || byte == 0x0A || byte == 0x0D || byte == 0x09 { position += 1 }
    }

    mutating func expect(_ byte: UInt8, _ what: String) throws(JSONError) {
        skipWhitespace()
        guard current == byte else { throw error(current == nil ? "unexpected end, expected \(what)" : "expected \(what)") }
        position += 1
    }

    mutating func parseValue(depth: Int) throws(JSONError) -> JSON {
        skipWhitespace()
        guard let byte = current else { throw error("unexpected end, expected a value") }
        switch byte {
        case UInt8(ascii: "{"): return try parseObject(depth: depth + 1)
        case UInt8(ascii: "["): return try parseArray(depth: depth + 1)
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "t"): try literal("true"); return .bool(true)
        case UInt8(ascii: "f"): try literal("false"); return .bool(false)
        case UInt8(ascii: "n"): try literal("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try parseNumber())
        default: throw error("unexpected character, expected a value")
        }
    }

    mutating func literal(_ word: StaticString) throws(JSONError) {
        let expected = UnsafeBufferPointer(start: word.utf8Start, count: word.utf8CodeUnitCount)
        guard position + expected.count <= bytes.count, bytes[position..<position + expected.count].elementsEqual(expected)
        else { throw error("unexpected character, expected a value") }
        position += expected.count
    }

    mutating func parseObject(depth: Int) throws(JSONError) -> JSON {
        guard depth <= Self.maximumDepth else { throw error("nested deeper than \(Self.maximumDepth) levels") }
        position += 1  // {
        var members: [(key: String, value: JSON)] = []
        skipWhitespace()
        if current == UInt8(ascii: "}") { position += 1; return .object(members) }
        while true {
            skipWhitespace()
            guard current == UInt8(ascii: "\"") else { throw error("expected a string key") }
            let key = try parseString()
            try expect(UInt8(ascii: ":"), "':'")
            members.append((key: key, value: try parseValue(depth: depth)))
            skipWhitespace()
            if current == UInt8(ascii: "}") { position += 1; return .object(members) }
            try expect(UInt8(ascii: ","), "',' or '}'")
        }
    }

    mutating func parseArray(depth: Int) throws(JSONError) -> JSON {
        guard depth <= Self.maximumDepth else { throw error("nested deeper than \(Self.maximumDepth) levels") }
        position += 1  // [
        var items: [JSON] = []
        skipWhitespace()
        if current == UInt8(ascii: "]") { position += 1; return .array(items) }
        while true {
            items.append(try parseValue(depth: depth))
            skipWhitespace()
            if current == UInt8(ascii: "]") { position += 1; return .array(items) }
            try expect(UInt8(ascii: ","), "',' or ']'")
        }
    }

    mutating func parseString() throws(JSONError) -> String {
        let start = position
        position += 1  // "
        var out: [UInt8] = []
        while true {
            guard let byte = current else { throw JSONError(reason: "unterminated string", offset: start) }
            position += 1
            switch byte {
            case UInt8(ascii: "\""):
                guard let text = String(validating: out, as: UTF8.self) else {
                    throw JSONError(reason: "invalid UTF-8 in string", offset: start)
                }
                return text
            case UInt8(ascii: "\\"):
                try parseEscape(into: &out)
            case 0..<0x20:
                position -= 1
                throw error("control character in string (escape it)")
            default:
                out.append(byte)
            }
        }
    }

    mutating func parseEscape(into out: inout [UInt8]) throws(JSONError) {
        guard let byte = current else { throw error("unterminated escape") }
        position += 1
        switch byte {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(byte)
        case UInt8(ascii: "b"): out.append(0x08)
        case UInt8(ascii: "f"): out.append(0x0C)
        case UInt8(ascii: "n"): out.append(0x0A)
        case UInt8(ascii: "r"): out.append(0x0D)
        case UInt8(ascii: "t"): out.append(0x09)
        case UInt8(ascii: "u"):
            var scalar = try parseHex4()
            if scalar >= 0xD800 && scalar < 0xDC00 {  // a high surrogate: its low half must follow
                guard current == UInt8(ascii: "\\"), position + 1 < bytes.count, bytes[position + 1] == UInt8(ascii: "u")
                else { throw error("lone surrogate in \\u escape") }
                position += 2
                let low = try parseHex4()
                guard low >= 0xDC00 && low < 0xE000 else { throw error("lone surrogate in \\u escape") }
                scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
            } else if scalar >= 0xDC00 && scalar < 0xE000 {
                throw error("lone surrogate in \\u escape")
            }
            appendUTF8(scalar, to: &out)
        default:
            position -= 1
            throw error("invalid escape")
        }
    }

    mutating func parseHex4() throws(JSONError) -> UInt32 {
        var value: UInt32 = 0
        for _ in 0..<4 {
            guard let byte = current else { throw error("unterminated \\u escape") }
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: throw error("invalid hex digit in \\u escape")
            }
            value = value << 4 | UInt32(digit)
            position += 1
        }
        return value
    }

    /// Checks the number's grammar (RFC 8259: stricter than strtod's), then converts it with
    /// wasi-libc's strtod, which rounds correctly. (Embedded Swift's own Double(String) needs a
    /// runtime hook that Embedded Swift does not ship; strtod brings three WASI imports along,
    /// fd_write, fd_seek and fd_close, for stdio it never uses.)
    mutating func parseNumber() throws(JSONError) -> Double {
        let start = position
        func isDigit(_ byte: UInt8?) -> Bool { byte.map { $0 >= 48 && $0 <= 57 } ?? false }
        func skipDigits() { while isDigit(current) { position += 1 } }
        if current == UInt8(ascii: "-") { position += 1 }
        guard isDigit(current) else { throw error("expected a digit") }
        if current == UInt8(ascii: "0") {
            position += 1
            if isDigit(current) { throw error("leading zero in a number") }
        } else {
            skipDigits()
        }
        if current == UInt8(ascii: ".") {
            position += 1
            guard isDigit(current) else { throw error("expected a digit after '.'") }
            skipDigits()
        }
        if current == UInt8(ascii: "e") || current == UInt8(ascii: "E") {
            position += 1
            if current == UInt8(ascii: "+") || current == UInt8(ascii: "-") { position += 1 }
            guard isDigit(current) else { throw error("expected a digit in the exponent") }
            skipDigits()
        }
        var literal = Array(bytes[start..<position])
        literal.append(0)
        let value = literal.withUnsafeBufferPointer { strtod($0.baseAddress!, nil) }
        guard value.isFinite else { throw JSONError(reason: "number out of range", offset: start) }
        return value
    }
}

@_extern(c, "strtod")
func strtod(_ text: UnsafePointer<UInt8>, _ end: UnsafeMutablePointer<UnsafeMutablePointer<UInt8>?>?) -> Double

func appendUTF8(_ scalar: UInt32, to out: inout [UInt8]) {
    switch scalar {
    case 0..<0x80:
        out.append(UInt8(scalar))
    case 0x80..<0x800:
        out.append(contentsOf: [UInt8(0xC0 | scalar >> 6), UInt8(0x80 | scalar & 0x3F)])
    case 0x800..<0x10000:
        out.append(contentsOf: [UInt8(0xE0 | scalar >> 12), UInt8(0x80 | scalar >> 6 & 0x3F), UInt8(0x80 | scalar & 0x3F)])
    default:
        out.append(contentsOf: [UInt8(0xF0 | scalar >> 18), UInt8(0x80 | scalar >> 12 & 0x3F),
                                UInt8(0x80 | scalar >> 6 & 0x3F), UInt8(0x80 | scalar & 0x3F)])
    }
}
