import Foundation
import PlugvisorTestSupport
import Testing
import WasmKit

@testable import PlugvisorWorker

/// plugvisor's Extism kernel against Extism's own (`../shared/extism/kernel/extism-runtime.wasm`),
/// both run in WasmKit: the same operations must give the same answers, whatever offsets each
/// allocator picks.
@Suite struct ExtismKernelTests {
    static let extismKernelPath = Fixtures.extismDirectory.appendingPathComponent("kernel/extism-runtime.wasm").path

    func kernels() throws -> (ours: ExtismKernelInstance, theirs: ExtismKernelInstance) {
        let ours = try ExtismKernelInstance(module: ExtismKernel.module(), store: Store(engine: Engine()))
        let bytes = try #require(
            FileManager.default.contents(atPath: Self.extismKernelPath),
            "Extism's kernel is read from \(Self.extismKernelPath) (../shared beside the checkout)")
        let theirs = try ExtismKernelInstance(module: parseWasm(bytes: Array(bytes)), store: Store(engine: Engine()))
        return (ours, theirs)
    }

    @Test func ourKernelExportsEveryFunctionAPluginMayImportWithItsSignature() throws {
        let (ours, theirs) = try kernels()
        for (name, signature) in ExtismKernel.functions {
            let mine = try #require(ours.function(name), "\(name)")
            #expect(mine.type.parameters == signature.parameters && mine.type.results == signature.results, "\(name)")
            // Extism's kernel has every one of them but length_unsafe's twin, with the same type.
            if let extism = theirs.function(name) { #expect(extism.type == mine.type, "\(name)") }
        }
    }

    /// The same script on both kernels: allocations of many sizes, with a third of them freed
    /// and reallocated; every block keeps its own bytes and length.
    @Test func blocksKeepTheirBytesAndLengthsThroughAllocationAndFree() throws {
        let (ours, theirs) = try kernels()
        for kernel in [ours, theirs] {
            try kernel.call("reset")
            var live: [(handle: UInt64, bytes: [UInt8])] = []
            for round in 0..<600 {
                let size = 1 + (round * 37) % 3000
                let bytes = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ round) }
                let handle = try kernel.allocate(bytes)
                #expect(handle != 0)
                live.append((handle, bytes))
                if round % 3 == 2 {
                    let freed = live.remove(at: live.count / 2)
                    try kernel.call("free", freed.handle)
                    #expect(try kernel.call("length", freed.handle) == 0, "a freed block has no length")
                }
            }
            for (handle, bytes) in live {
                #expect(try kernel.call("length", handle) == UInt64(bytes.count))
                #expect(try kernel.block(handle)?.bytes == bytes)
            }
        }
    }

    @Test func bothKernelsAnswerTheEdgeCasesAlike() throws {
        let (ours, theirs) = try kernels()
        func script(_ kernel: ExtismKernelInstance) throws -> [UInt64?] {
            try kernel.call("reset")
            let a = try kernel.allocate(Array("hello, world".utf8))
            var answers: [UInt64?] = [
                try kernel.call("alloc", 0),  // nothing to allocate: 0
                try kernel.call("length", 0),
                try kernel.call("length", a + 1),  // inside a block, not a block
                try kernel.call("length", a),
                try kernel.call("load_u8", a + 4),
            ]
            try kernel.call("store_u64", a, 0x0102_0304_0506_0708)
            answers.append(try kernel.call("load_u64", a))
            answers.append(try kernel.call("load_u8", a))
            try kernel.call("input_set", a, 12)
            answers += [
                try kernel.call("input_length"), try kernel.call("input_offset") == a ? 1 : 0,
                try kernel.call("input_load_u8", 11), try kernel.call("input_load_u64", 0),
            ]
            try kernel.call("output_set", a, 5)
            answers += [try kernel.call("output_length"), try kernel.call("output_offset") == a ? 1 : 0]
            try kernel.call("error_set", a)
            answers.append(try kernel.call("error_get") == a ? 1 : 0)
            try kernel.call("free", a)
            answers.append(try kernel.call("input_length"))  // freeing the input forgets its length
            try kernel.call("reset")
            answers += [
                try kernel.call("error_get"), try kernel.call("input_length"), try kernel.call("output_length"),
                try kernel.call("length", a),
            ]
            return answers
        }
        #expect(try script(ours) == script(theirs))
    }

    /// c/allocations.wasm's pattern (10,000 blocks of 10..10009 bytes, a third freed): WasmKit
    /// copies a memory on every grow, so a kernel that grows by the missing pages only spends
    /// seconds in copies; ours grows geometrically.
    @Test func tenThousandAllocationsGrowTheMemoryLogarithmicallyOften() throws {
        let kernel = try ExtismKernelInstance(module: ExtismKernel.module(), store: Store(engine: Engine()))
        try kernel.call("reset")
        var pages: [Int] = []
        for index in 0..<10_000 {
            let handle = try kernel.call("alloc", UInt64(10 + index))
            #expect(handle != 0)
            if index % 3 == 0, let handle { try kernel.call("free", handle) }
            let now = kernel.memory.byteCount / 65536
            if pages.last != now { pages.append(now) }
        }
        #expect(pages.count < 16, "grew \(pages.count) times: \(pages)")
    }
}
