import Glibc
import PlugvisorProtocol
import WASI
@_spi(Fuzzing) import WasmKit
import WasmKitWASI

/// Gives the guest the errno of what happened when it may not create a file in a grant.
///
/// WasmKit 0.4.2's path resolution, when `openat` fails and the guest follows symlinks, asks
/// `fstatat` whether the name is a symlink, and throws that call's error instead: a file that
/// could not be created (EROFS from a read-only grant's mount, EACCES from its mode) does not
/// exist yet, so the guest sees ENOENT, which reads as a wrong path. When `path_open` with
/// O_CREAT answers ENOENT beneath a preopened directory whose parent directory exists, the
/// creation was refused: answer EROFS for a read-only grant, EACCES otherwise.
enum GrantErrors {
    private static let wasiENOENT: UInt32 = 44
    private static let wasiEACCES: UInt32 = 2
    private static let wasiEROFS: UInt32 = 69
    private static let createFlag: UInt32 = 1  // WASI oflags O_CREAT

    /// Replaces `path_open` in `imports` (after WASI is linked) with one that corrects the errno.
    static func define(in imports: inout Imports, store: Store, wasi: WASIBridgeToHost, preopens: [Preopen]) {
        guard !preopens.isEmpty,
            let pathOpen = wasi.hostFunctions(capabilities: [WASICapability.fileSystem], stubUnlinked: false)[
                "path_open"]
        else { return }
        imports.define(
            module: "wasi_snapshot_preview1", name: "path_open",
            Function(
                store: store, type: pathOpen.type,
                body: { caller, arguments in
                    guard case let .memory(memory)? = caller.instance?.export("memory") else {
                        throw WASIError(description: "Missing required \"memory\" export")
                    }
                    let results = try pathOpen.implementation(memory, arguments)
                    guard arguments.count == 9, results.first == .i32(wasiENOENT), arguments[4].i32 & createFlag != 0,
                        let corrected = refusedCreation(
                            directory: arguments[0].i32, path: (arguments[2].i32, arguments[3].i32), memory: memory,
                            preopens: preopens)
                    else { return results }
                    return [.i32(corrected)]
                }))
    }

    /// The errno for a refused creation of `path` beneath preopen fd `directory`, or nil when
    /// the ENOENT may be true (the parent is missing, the name exists, the path climbs with "..").
    private static func refusedCreation(
        directory: UInt32, path: (pointer: UInt32, length: UInt32), memory: Memory, preopens: [Preopen]
    ) -> UInt32? {
        // Preopens take descriptors 3, 4, … in order; a guest that renumbers them only gets
        // the uncorrected errno.
        guard directory >= 3, directory - 3 < preopens.count, path.length <= 4096,
            GuestAnswer.checkBounds(pointer: path.pointer, length: path.length, memorySize: memory.byteCount)
        else { return nil }
        let grant = preopens[Int(directory - 3)]
        let bytes = memory.withUnsafeBufferPointer(offset: UInt(path.pointer), count: Int(path.length)) { Array($0) }
        guard !bytes.contains(0), let relative = String(validating: bytes, as: UTF8.self) else { return nil }
        let components = relative.split(separator: "/")
        guard !relative.hasPrefix("/"), !components.contains(".."), !components.isEmpty else { return nil }
        let parent = ([grant.host] + components.dropLast().map(String.init)).joined(separator: "/")
        let target = parent + "/" + components.last!
        var status = stat()
        guard stat(parent, &status) == 0, status.st_mode & S_IFMT == S_IFDIR,
            lstat(target, &status) != 0, errno == ENOENT
        else { return nil }
        return grant.readOnly ? wasiEROFS : wasiEACCES
    }
}
