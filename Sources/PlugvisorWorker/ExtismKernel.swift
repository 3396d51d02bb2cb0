import WAT
@_spi(Fuzzing) import WasmKit

/// plugvisor's own implementation of the Extism kernel: the allocator, input, output and error
/// that an `abi: extism` plugin imports from `extism:host/env`, in its own linear memory.
///
/// It is WebAssembly, not Swift host functions, because a plugin calls these functions for every
/// byte it reads or writes (`load_u8`, `store_u64`, …): a call into another instance of the same
/// store costs the interpreter far less than a call out to the host. It is WAT text compiled at
/// worker start (about a millisecond), so the repository holds only source.
///
/// Memory layout (offsets are the u64 "handles" of Extism's ABI; 0 is never a block):
///
///     0 .. 7      unused, so that no block starts at 0
///     8 .. 135    heads of 32 free lists, one per power-of-two capacity class (i32 each)
///     136 ..      blocks: a 16-byte header, then the data the handle points at
///
/// Header of the block whose data is at `p`: `p-16` tag (active or free), `p-12` capacity (a
/// multiple of 8, at least 8), `p-8` used length (i64). A free block keeps the next free block of
/// its class in its first four data bytes. `reset` forgets every block at once. Blocks are
/// reused first-fit within their class (a bounded walk) or taken whole from a larger class and
/// split; new ones are bumped from the top, and memory grows geometrically, since WasmKit copies
/// a memory on every `memory.grow` under software bounds checks.
enum ExtismKernel {
    /// The 20 functions a plugin may import from `extism:host/env` that the kernel provides,
    /// with their signatures (Extism's ABI).
    static let functions: [String: ModuleShape.FunctionSignature] = {
        let i32 = ValueType.i32
        let i64 = ValueType.i64
        return [
            "alloc": .init(parameters: [i64], results: [i64]),
            "free": .init(parameters: [i64], results: []),
            "length": .init(parameters: [i64], results: [i64]),
            "length_unsafe": .init(parameters: [i64], results: [i64]),
            "load_u8": .init(parameters: [i64], results: [i32]),
            "load_u64": .init(parameters: [i64], results: [i64]),
            "store_u8": .init(parameters: [i64, i32], results: []),
            "store_u64": .init(parameters: [i64, i64], results: []),
            "input_load_u8": .init(parameters: [i64], results: [i32]),
            "input_load_u64": .init(parameters: [i64], results: [i64]),
            "input_length": .init(parameters: [], results: [i64]),
            "input_offset": .init(parameters: [], results: [i64]),
            "input_set": .init(parameters: [i64, i64], results: []),
            "output_set": .init(parameters: [i64, i64], results: []),
            "output_length": .init(parameters: [], results: [i64]),
            "output_offset": .init(parameters: [], results: [i64]),
            "reset": .init(parameters: [], results: []),
            "error_set": .init(parameters: [i64], results: []),
            "error_get": .init(parameters: [], results: [i64]),
            "memory_bytes": .init(parameters: [], results: [i64]),
        ]
    }()

    /// The kernel compiled once per process (every instance of a `_start` plugin reuses it);
    /// a `static let`, so that threads (parallel tests) share one compilation safely.
    static func module() throws -> Module { try compiled.get() }
    private static let compiled = Result<Module, any Error> { try parseWasm(bytes: try wat2wasm(text)) }

    static let text = """
        (module
          (memory (export "memory") 1)
          (global $top (mut i32) (i32.const 136))
          (global $input_offset (mut i64) (i64.const 0))
          (global $input_length (mut i64) (i64.const 0))
          (global $output_offset (mut i64) (i64.const 0))
          (global $output_length (mut i64) (i64.const 0))
          (global $error (mut i64) (i64.const 0))
          ;; pages the kernel may grow to speculatively; the host sets it from the memory budget
          (global $grow_limit (mut i32) (i32.const 65536))

          (func $class_head (param $capacity i32) (result i32)
            (i32.add (i32.const 8) (i32.shl (i32.sub (i32.const 31) (i32.clz (local.get $capacity))) (i32.const 2))))

          ;; the data address of the active block at handle $p, or 0
          (func $active (param $p i64) (result i32)
            (local $q i32)
            (if (i64.lt_u (local.get $p) (i64.const 152)) (then (return (i32.const 0))))
            (if (i64.ge_u (local.get $p) (i64.extend_i32_u (global.get $top))) (then (return (i32.const 0))))
            (local.set $q (i32.wrap_i64 (local.get $p)))
            (if (i32.and (local.get $q) (i32.const 7)) (then (return (i32.const 0))))
            (if (i32.ne (i32.load (i32.sub (local.get $q) (i32.const 16))) (i32.const 0x7E5A0001))
              (then (return (i32.const 0))))
            (local.get $q))

          (func $push_free (param $q i32)
            (local $head i32)
            (local.set $head (call $class_head (i32.load (i32.sub (local.get $q) (i32.const 12)))))
            (i32.store (i32.sub (local.get $q) (i32.const 16)) (i32.const 0x7E5A0002))
            (i32.store (local.get $q) (i32.load (local.get $head)))
            (i32.store (local.get $head) (local.get $q)))

          ;; marks block $q used for $n bytes, splitting off what it has beyond $capacity
          (func $use (param $q i32) (param $capacity i32) (param $n i64) (result i64)
            (local $old i32) (local $rest i32)
            (local.set $old (i32.load (i32.sub (local.get $q) (i32.const 12))))
            (if (i32.ge_u (i32.sub (local.get $old) (local.get $capacity)) (i32.const 144))
              (then
                (local.set $rest (i32.add (i32.add (local.get $q) (local.get $capacity)) (i32.const 16)))
                (i32.store (i32.sub (local.get $rest) (i32.const 12))
                  (i32.sub (i32.sub (local.get $old) (local.get $capacity)) (i32.const 16)))
                (call $push_free (local.get $rest))
                (i32.store (i32.sub (local.get $q) (i32.const 12)) (local.get $capacity))))
            (i32.store (i32.sub (local.get $q) (i32.const 16)) (i32.const 0x7E5A0001))
            (i64.store (i32.sub (local.get $q) (i32.const 8)) (local.get $n))
            (i64.extend_i32_u (local.get $q)))

          (func $alloc (export "alloc") (param $n i64) (result i64)
            (local $capacity i32) (local $class i32) (local $link i32) (local $block i32) (local $steps i32)
            (local $end i64) (local $have i64) (local $missing i32) (local $want i32)
            (if (i64.eqz (local.get $n)) (then (return (i64.const 0))))
            (if (i64.gt_u (local.get $n) (i64.const 0xFFFF0000)) (then (return (i64.const 0))))
            (local.set $capacity (i32.and (i32.add (i32.wrap_i64 (local.get $n)) (i32.const 7)) (i32.const -8)))
            ;; first fit in its own class, a few blocks at most
            (local.set $class (call $class_head (local.get $capacity)))
            (local.set $link (local.get $class))
            (local.set $block (i32.load (local.get $link)))
            (block $searched
              (loop $walk
                (br_if $searched (i32.eqz (local.get $block)))
                (br_if $searched (i32.ge_u (local.get $steps) (i32.const 16)))
                (if (i32.ge_u (i32.load (i32.sub (local.get $block) (i32.const 12))) (local.get $capacity))
                  (then
                    (i32.store (local.get $link) (i32.load (local.get $block)))
                    (return (call $use (local.get $block) (local.get $capacity) (local.get $n)))))
                (local.set $link (local.get $block))
                (local.set $block (i32.load (local.get $block)))
                (local.set $steps (i32.add (local.get $steps) (i32.const 1)))
                (br $walk)))
            ;; any block of a larger class fits
            (local.set $link (i32.add (local.get $class) (i32.const 4)))
            (block $none
              (loop $scan
                (br_if $none (i32.ge_u (local.get $link) (i32.const 136)))
                (local.set $block (i32.load (local.get $link)))
                (if (local.get $block)
                  (then
                    (i32.store (local.get $link) (i32.load (local.get $block)))
                    (return (call $use (local.get $block) (local.get $capacity) (local.get $n)))))
                (local.set $link (i32.add (local.get $link) (i32.const 4)))
                (br $scan)))
            ;; a new block at the top
            (local.set $end (i64.add (i64.extend_i32_u (global.get $top))
              (i64.add (i64.extend_i32_u (local.get $capacity)) (i64.const 16))))
            (if (i64.ge_u (local.get $end) (i64.const 0x100000000)) (then (return (i64.const 0))))
            (local.set $have (i64.shl (i64.extend_i32_u (memory.size)) (i64.const 16)))
            (if (i64.gt_u (local.get $end) (local.get $have))
              (then
                (local.set $missing (i32.wrap_i64
                  (i64.shr_u (i64.add (i64.sub (local.get $end) (local.get $have)) (i64.const 65535)) (i64.const 16))))
                (local.set $want (select (memory.size) (local.get $missing) (i32.gt_u (memory.size) (local.get $missing))))
                (if (i32.gt_u (i32.add (memory.size) (local.get $want)) (global.get $grow_limit))
                  (then (local.set $want (local.get $missing))))
                (if (i32.eq (memory.grow (local.get $want)) (i32.const -1))
                  (then
                    (if (i32.eq (local.get $want) (local.get $missing)) (then (return (i64.const 0))))
                    (if (i32.eq (memory.grow (local.get $missing)) (i32.const -1)) (then (return (i64.const 0))))))))
            (local.set $block (i32.add (global.get $top) (i32.const 16)))
            (global.set $top (i32.wrap_i64 (local.get $end)))
            (i32.store (i32.sub (local.get $block) (i32.const 12)) (local.get $capacity))
            (call $use (local.get $block) (local.get $capacity) (local.get $n)))

          (func (export "free") (param $p i64)
            (local $q i32)
            (local.set $q (call $active (local.get $p)))
            (if (i32.eqz (local.get $q)) (then (return)))
            (call $push_free (local.get $q))
            (if (i64.eq (local.get $p) (global.get $input_offset)) (then (global.set $input_length (i64.const 0)))))

          (func $length (export "length") (param $p i64) (result i64)
            (local $q i32)
            (local.set $q (call $active (local.get $p)))
            (if (result i64) (local.get $q)
              (then (i64.load (i32.sub (local.get $q) (i32.const 8))))
              (else (i64.const 0))))
          (export "length_unsafe" (func $length))

          ;; an offset beyond 4 GiB traps rather than wrapping onto another byte
          (func $address (param $p i64) (result i32)
            (if (i64.gt_u (local.get $p) (i64.const 0xFFFFFFFF)) (then (unreachable)))
            (i32.wrap_i64 (local.get $p)))
          (func (export "load_u8") (param $p i64) (result i32) (i32.load8_u (call $address (local.get $p))))
          (func (export "load_u64") (param $p i64) (result i64) (i64.load (call $address (local.get $p))))
          (func (export "store_u8") (param $p i64) (param $x i32) (i32.store8 (call $address (local.get $p)) (local.get $x)))
          (func (export "store_u64") (param $p i64) (param $x i64) (i64.store (call $address (local.get $p)) (local.get $x)))

          (func (export "input_load_u8") (param $offset i64) (result i32)
            (if (i64.ge_u (local.get $offset) (global.get $input_length)) (then (return (i32.const 0))))
            (i32.load8_u (call $address (i64.add (global.get $input_offset) (local.get $offset)))))
          (func (export "input_load_u64") (param $offset i64) (result i64)
            (if (i64.gt_u (i64.add (local.get $offset) (i64.const 8)) (global.get $input_length)) (then (return (i64.const 0))))
            (i64.load (call $address (i64.add (global.get $input_offset) (local.get $offset)))))
          (func (export "input_length") (result i64) (global.get $input_length))
          (func (export "input_offset") (result i64) (global.get $input_offset))
          (func (export "input_set") (param $p i64) (param $n i64)
            (global.set $input_offset (local.get $p))
            (global.set $input_length (local.get $n)))
          (func (export "output_set") (param $p i64) (param $n i64)
            (global.set $output_offset (local.get $p))
            (global.set $output_length (local.get $n)))
          (func (export "output_length") (result i64) (global.get $output_length))
          (func (export "output_offset") (result i64) (global.get $output_offset))
          (func (export "error_set") (param $p i64) (global.set $error (local.get $p)))
          (func (export "error_get") (result i64) (global.get $error))
          (func (export "memory_bytes") (result i64)
            (i64.sub (i64.shl (i64.extend_i32_u (memory.size)) (i64.const 16)) (i64.const 136)))

          (func $reset (export "reset")
            (local $link i32)
            (local.set $link (i32.const 8))
            (block $cleared
              (loop $clear
                (br_if $cleared (i32.ge_u (local.get $link) (i32.const 136)))
                (i32.store (local.get $link) (i32.const 0))
                (local.set $link (i32.add (local.get $link) (i32.const 4)))
                (br $clear)))
            (global.set $top (i32.const 136))
            (global.set $input_offset (i64.const 0))
            (global.set $input_length (i64.const 0))
            (global.set $output_offset (i64.const 0))
            (global.set $output_length (i64.const 0))
            (global.set $error (i64.const 0)))

          ;; host only (a plugin is never linked to them)
          (func (export "plugvisor_set_grow_limit") (param $pages i32) (global.set $grow_limit (local.get $pages)))
          ;; a call's start in one invocation: reset, the grow limit, the input's block (0 when
          ;; it does not fit, and then no input)
          (func (export "plugvisor_begin") (param $pages i32) (param $n i64) (result i64)
            (local $block i64)
            (call $reset)
            (global.set $grow_limit (local.get $pages))
            (local.set $block (call $alloc (local.get $n)))
            (if (i64.ne (local.get $block) (i64.const 0))
              (then
                (global.set $input_offset (local.get $block))
                (global.set $input_length (local.get $n))))
            (local.get $block))
          ;; a call's end read without invocations
          (export "plugvisor_error" (global $error))
          (export "plugvisor_output_offset" (global $output_offset))
          (export "plugvisor_output_length" (global $output_length)))
        """
}

/// One instance of an Extism kernel (plugvisor's, or in a test Extism's own) and the calls the
/// host makes on it. Every offset and length the kernel answers is checked against its memory
/// before the host touches a byte: the kernel's memory is the plugin's to corrupt.
struct ExtismKernelInstance {
    let instance: Instance
    let memory: Memory

    init(module: Module, store: Store) throws {
        instance = try module.instantiate(store: store, imports: Imports())
        guard let memory = instance.exports[memory: "memory"] else {
            throw HostModule.GuestFault(description: "the Extism kernel exports no memory")
        }
        self.memory = memory
    }

    /// The kernel's export `name` for a plugin to import; nil if it has none.
    func function(_ name: String) -> Function? { instance.exports[function: name] }

    /// Calls `name`, each argument narrowed to its parameter's type; an i32 answer is widened.
    /// Nil for a function without one.
    @discardableResult
    func call(_ name: String, _ arguments: UInt64...) throws -> UInt64? {
        guard let function = function(name) else {
            throw HostModule.GuestFault(description: "the Extism kernel has no \(name)")
        }
        let values: [Value] = zip(arguments, function.type.parameters).map { argument, type in
            type == .i32 ? .i32(UInt32(truncatingIfNeeded: argument)) : .i64(argument)
        }
        switch try function.invoke(values).first {
        case let .i64(value)?: return value
        case let .i32(value)?: return UInt64(value)
        default: return nil
        }
    }

    /// Whether `[offset, offset + count)` lies inside the kernel's memory.
    func contains(_ offset: UInt64, count: UInt64) -> Bool {
        let size = UInt64(memory.byteCount)
        return offset <= size && count <= size - offset
    }

    /// A new block holding `bytes`; 0 when the kernel cannot allocate it (its memory would pass
    /// the plugin's budget) or `bytes` is empty.
    func allocate(_ bytes: [UInt8]) throws -> UInt64 {
        guard !bytes.isEmpty, let handle = try call("alloc", UInt64(bytes.count)), handle != 0 else { return 0 }
        guard contains(handle, count: UInt64(bytes.count)) else {
            throw HostModule.GuestFault(description: "the Extism kernel's alloc answered \(handle), outside its memory")
        }
        memory.withUnsafeMutableBufferPointer(offset: UInt(handle), count: bytes.count) { $0.copyBytes(from: bytes) }
        return handle
    }

    /// Readies plugvisor's kernel for a call in one invocation: every block forgotten, the grow
    /// limit set, `input` in a new block that is the call's input. Its handle; 0 when it does
    /// not fit the budget (or `input` is empty).
    func begin(input: [UInt8], growLimitPages: UInt64) throws -> UInt64 {
        guard let handle = try call("plugvisor_begin", growLimitPages, UInt64(input.count)), handle != 0 else {
            return 0
        }
        guard contains(handle, count: UInt64(input.count)) else {
            throw HostModule.GuestFault(description: "the Extism kernel's alloc answered \(handle), outside its memory")
        }
        memory.withUnsafeMutableBufferPointer(offset: UInt(handle), count: input.count) { $0.copyBytes(from: input) }
        return handle
    }

    /// One of plugvisor's kernel's exported i64 globals (`plugvisor_error`, …), read without a call.
    func global(_ name: String) throws -> UInt64 {
        guard case let .i64(value)? = instance.exports[global: name]?.value else {
            throw HostModule.GuestFault(description: "the Extism kernel has no i64 global \(name)")
        }
        return value
    }

    /// The first `limit` bytes of `[offset, offset + count)`, or nil when the range is not in memory.
    func bytes(at offset: UInt64, count: UInt64, limit: Int = .max) -> [UInt8]? {
        guard contains(offset, count: count) else { return nil }
        let shown = Int(min(count, UInt64(limit)))
        if shown == 0 { return [] }
        return memory.withUnsafeBufferPointer(offset: UInt(offset), count: shown) { Array($0) }
    }

    /// The block at `handle` (its first `limit` bytes, and its whole length); nil when `handle`
    /// is not an allocated block.
    func block(_ handle: UInt64, limit: Int = .max) throws -> (bytes: [UInt8], length: UInt64)? {
        guard handle != 0, let length = try call("length", handle), length != 0 else { return nil }
        guard let bytes = bytes(at: handle, count: length, limit: limit) else { return nil }
        return (bytes, length)
    }
}
