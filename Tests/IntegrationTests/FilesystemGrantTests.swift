import Foundation
import Glibc
import PlugvisorProtocol
import PlugvisorTestSupport
import Testing

/// What a plugin author meets with files: a C plugin that links `fopen` loads without a grant,
/// and a grant that cannot work as its mode says is named at start, not found out as ENOENT.
@Suite(.serialized, .timeLimit(.minutes(5))) struct FilesystemGrantTests {
    @Test func aCPluginUsingFopenLoadsWithoutAGrantAndFopenFailsAtCallTime() throws {
        let supervisor = try RunningSupervisor(
            manifest: """
                plugins:
                  - {name: files, wasm: "{{plugins}}/escape-fs.wasm"}
                """)
        let plugin = try supervisor.plugin("files")
        #expect(plugin.state == .ready, "\(plugin.lastError ?? "")")
        let data = try #require(supervisor.call("files").json?["data"])
        // wasi-libc finds no preopened directory for the path: ENOTCAPABLE, asked of nobody.
        #expect(data["inside"] == "error: Capabilities insufficient")
        #expect(data["write"] == "error: Capabilities insufficient")
    }

    /// A grant whose directory the workers' user may not write: named at start with the fix,
    /// and the guest's create fails with EACCES (rw) or EROFS (ro), not ENOENT.
    @Test func aGrantTheWorkersCannotWriteIsNamedAtStartAndTheGuestSeesWhy() throws {
        let host = try RunningSupervisor.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: host) }
        let locked = host.appendingPathComponent("locked")
        let readOnly = host.appendingPathComponent("ro")
        for directory in [locked, readOnly] {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: false)
            try "hello from the host\n".write(
                to: directory.appendingPathComponent("hello.txt"), atomically: true, encoding: .utf8)
        }
        chmod(host.path, 0o755)
        chmod(locked.path, 0o555)  // nobody may create files here, whoever the workers run as
        chmod(readOnly.path, 0o777)
        let supervisor = try RunningSupervisor(
            manifest: """
                plugins:
                  - name: locked
                    wasm: "{{plugins}}/escape-fs.wasm"
                    filesystem: [{host: "\(locked.path)", guest: /data, mode: rw}]
                  - name: ro
                    wasm: "{{plugins}}/escape-fs.wasm"
                    filesystem: [{host: "\(readOnly.path)", guest: /data, mode: ro}]
                """)
        // Under root the workers run as the plugin's own uid, otherwise as this user: neither may
        // write a 0555 directory.
        #expect(
            supervisor.eventually { supervisor.log.contains("filesystem grant \(locked.path) (rw)") },
            "\(supervisor.log)")
        #expect(supervisor.log.contains("cannot create files in it (owner"), "\(supervisor.log)")
        #expect(supervisor.log.contains("fix: chown "), "\(supervisor.log)")
        #expect(!supervisor.log.contains("filesystem grant \(readOnly.path)"))
        let lockedData = try #require(supervisor.call("locked").json?["data"])
        #expect(lockedData["inside"] == "read: hello from the host")
        #expect(lockedData["write"] == "error: Permission denied")
        let readOnlyData = try #require(supervisor.call("ro").json?["data"])
        #expect(readOnlyData["write"] == "error: Read-only file system")
    }
}
