import PlugvisorProtocol

/// Decoding of what a guest returns, kept free of WasmKit so that every rule is unit-tested.
public enum GuestAnswer {
    /// Splits an i64 `(ptr << 32) | len`.
    public static func unpack(_ packed: UInt64) -> (pointer: UInt32, length: UInt32) {
        (UInt32(truncatingIfNeeded: packed >> 32), UInt32(truncatingIfNeeded: packed))
    }

    /// Checks that `[pointer, pointer + length)` lies inside a memory of `memorySize` bytes,
    /// without any arithmetic that could overflow.
    public static func checkBounds(pointer: UInt32, length: UInt32, memorySize: Int) -> Bool {
        let start = Int(pointer)
        let count = Int(length)
        return start <= memorySize && count <= memorySize - start
    }

    /// The length of the first complete JSON value in `bytes` (leading whitespace included), or
    /// nil when the bytes end before it does. Used for the Go pattern's bare i32 pointers, where
    /// the host must find where the answer ends.
    public static func lengthOfFirstJSONValue<C: Collection>(_ bytes: C) -> Int?
    where C.Element == UInt8, C.Index == Int {
        var index = bytes.startIndex
        let end = bytes.endIndex
        func isSpace(_ b: UInt8) -> Bool { b == 0x20 || b == 0x09 || b == 0x0A || b == 0x0D }
        while index < end && isSpace(bytes[index]) { index += 1 }
        guard index < end else { return nil }
        let first = bytes[index]
        if first == UInt8(ascii: "{") || first == UInt8(ascii: "[") || first == UInt8(ascii: "\"") {
            var depth = 0
            var inString = false
            var escaped = false
            while index < end {
                let b = bytes[index]
                index += 1
                if inString {
                    if escaped {
                        escaped = false
                    } else if b == UInt8(ascii: "\\") {
                        escaped = true
                    } else if b == UInt8(ascii: "\"") {
                        inString = false
                        if depth == 0 { return index - bytes.startIndex }
                    }
                    continue
                }
                switch b {
                case UInt8(ascii: "\""): inString = true
                case UInt8(ascii: "{"), UInt8(ascii: "["): depth += 1
                case UInt8(ascii: "}"), UInt8(ascii: "]"):
                    depth -= 1
                    if depth == 0 { return index - bytes.startIndex }
                    if depth < 0 { return nil }
                default: break
                }
            }
            return nil
        }
        // A bare scalar (number, true, false, null) ends at the first delimiter.
        while index < end {
            let b = bytes[index]
            if isSpace(b) || b == 0 || b == UInt8(ascii: ",") || b == UInt8(ascii: "}") || b == UInt8(ascii: "]") {
                break
            }
            index += 1
        }
        return index - bytes.startIndex
    }

    /// Turns the guest's answer bytes into a result object `{"success": bool, ...}`.
    /// - Returns: the parsed object, or an `invalid_result` error that says what is wrong.
    public static func decodeResult(
        _ bytes: [UInt8], plugin: String?, what: String = "result"
    )
        -> Result<JSONValue, PluginError>
    {
        func invalid(_ message: String) -> Result<JSONValue, PluginError> {
            .failure(PluginError(.invalidResult, plugin: plugin, message))
        }
        if bytes.isEmpty { return invalid("the guest returned an empty \(what)") }
        let value: JSONValue
        // The parser refuses invalid UTF-8 too; the answer is looked at as text only when it
        // failed, to say which of the two it is.
        do { value = try JSONValue(parsing: bytes) } catch {
            guard String(validating: bytes, as: UTF8.self) != nil else {
                return invalid("the guest's \(what) is not valid UTF-8 (\(bytes.count) bytes)")
            }
            let preview = String(decoding: bytes.prefix(80), as: UTF8.self)
            return invalid("the guest's \(what) is not JSON (\(error)): \(preview)\(bytes.count > 80 ? "…" : "")")
        }
        return .success(value)
    }

    /// `execute`'s answer checked once, where the guest wrote it: parsed (`decodeResult`), its
    /// shape checked (`checkResultShape`); the bytes then travel to the supervisor as they came,
    /// never written again.
    public static func checkedAnswer(_ bytes: [UInt8], plugin: String?) -> Result<[UInt8], PluginError> {
        decodeResult(bytes, plugin: plugin).flatMap { checkResultShape($0, plugin: plugin) }.map { _ in bytes }
    }

    /// An answer the worker built (an Extism call's, a WASI command's) as the JSON bytes a
    /// checked answer is.
    public static func written(
        _ answer: Result<JSONValue, PluginError>, plugin: String?
    ) -> Result<[UInt8], PluginError> {
        answer.flatMap { value in
            do { return .success(try JSONCoding.write(value)) } catch {
                return .failure(
                    PluginError(.invalidResult, plugin: plugin, "the answer cannot be written as JSON: \(error)"))
            }
        }
    }

    /// Checks the shape DESIGN §4 requires of `execute`'s answer.
    public static func checkResultShape(_ value: JSONValue, plugin: String?) -> Result<JSONValue, PluginError> {
        guard case let .object(members) = value else {
            return .failure(PluginError(.invalidResult, plugin: plugin, "the guest's result is not a JSON object"))
        }
        guard case .bool? = members["success"] else {
            return .failure(
                PluginError(
                    .invalidResult, plugin: plugin,
                    "the guest's result has no boolean \"success\" member"))
        }
        if let error = members["error"], error != .null, error.stringValue == nil {
            return .failure(PluginError(.invalidResult, plugin: plugin, "the guest's \"error\" member is not a string"))
        }
        return .success(value)
    }
}
