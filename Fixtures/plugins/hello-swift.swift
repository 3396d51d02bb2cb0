// hello-swift: a plugvisor plugin in Embedded Swift (wasm32-unknown-none-wasm).
// Answers {"success":true,"data":{"language":"embedded-swift","context_bytes":N,"vowels":V}}
// where V counts the vowels in the context it was given.

@_extern(wasm, module: "plugvisor", name: "log")
@_extern(c)
func plugvisorLog(_ level: Int32, _ message: UnsafePointer<UInt8>?, _ length: Int32)

/// Buffers the host reads from stay alive until it calls deallocate.
@_expose(wasm, "allocate")
@_cdecl("allocate")
func allocate(_ size: Int32) -> UnsafeMutableRawPointer? {
    UnsafeMutableRawPointer.allocate(byteCount: Int(max(size, 1)), alignment: 8)
}

@_expose(wasm, "deallocate")
@_cdecl("deallocate")
func deallocate(_ pointer: UnsafeMutableRawPointer?, _ size: Int32) {
    pointer?.deallocate()
}

/// Copies `text` into a fresh buffer and packs (pointer << 32) | length.
func answer(_ text: StaticString) -> Int64 {
    answer(UnsafeBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
}

func answer(_ bytes: UnsafeBufferPointer<UInt8>) -> Int64 {
    let buffer = UnsafeMutableRawPointer.allocate(byteCount: max(bytes.count, 1), alignment: 1)
    buffer.copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
    return Int64(Int(bitPattern: buffer)) << 32 | Int64(bytes.count)
}

@_expose(wasm, "meta")
@_cdecl("meta")
func meta() -> Int64 {
    answer("{\"name\":\"hello-swift\",\"version\":\"1.0.0\",\"description\":\"Counts vowels in Embedded Swift\",\"author\":\"plugvisor\"}")
}

func appendDecimal(_ value: Int, to bytes: inout [UInt8]) {
    if value >= 10 { appendDecimal(value / 10, to: &bytes) }
    bytes.append(UInt8(48 + value % 10))
}

@_expose(wasm, "execute")
@_cdecl("execute")
func execute(_ context: UnsafePointer<UInt8>?, _ length: Int32) -> Int64 {
    let input = UnsafeBufferPointer(start: context, count: Int(length))
    var vowels = 0
    for byte in input where [97, 101, 105, 111, 117].contains(byte) { vowels += 1 }
    let line: StaticString = "hello-swift counted vowels"
    plugvisorLog(2, line.utf8Start, Int32(line.utf8CodeUnitCount))
    var out: [UInt8] = Array("{\"success\":true,\"data\":{\"language\":\"embedded-swift\",\"context_bytes\":".utf8)
    appendDecimal(input.count, to: &out)
    out.append(contentsOf: ",\"vowels\":".utf8)
    appendDecimal(vowels, to: &out)
    out.append(contentsOf: "}}".utf8)
    return out.withUnsafeBufferPointer { answer($0) }
}
