import Foundation
#if canImport(Glibc)
import Glibc
#endif
import PluginHost
import PluginMagic
import PluginSDK
import Testing

@Suite("Loading plugin libraries")
struct LoaderTests {
    @Test("a plugin built in a separate package casts to the host's `any Plugin`")
    func castAcrossPackages() throws {
        let loader = PluginLibraryLoader()
        let path = try Fixtures.library("NotesPlugin")
        let inspection = try loader.inspect(path: path)
        #expect(inspection.magic.pluginID == "example.notes")
        let plugin = try loader.load(path: path, inspection: inspection)
        // Only one PluginSDK is mapped: the plugin's libPluginSDK.so dependency resolved to the host's.
        let sdkCopies = Set(Self.mappedFiles().split(separator: "\n")
            .compactMap { $0.split(separator: " ", omittingEmptySubsequences: true).last }
            .filter { $0.hasSuffix("/libPluginSDK.so") })
        #expect(sdkCopies.count == 1, "PluginSDK mapped from \(sdkCopies)")
        // The instance is the separately built package's class, reached through the host's protocol.
        #expect(String(reflecting: type(of: plugin)) == "NotesPlugin.NotesPlugin")
    }

    @Test("the magic block layout and ABI in the C header agree with the SDK")
    func headerAgreesWithSDK() {
        #expect(MagicBlock.host.sdkABI == SDKVersion.abi)
        #expect(MagicBlock.host.sdkVersion == SDKVersion.version)
        #expect(MagicBlock.host.toolchain.contains("clang version") || MagicBlock.host.toolchain.contains("swift-toolchain"))
    }

    @Test("a library built with another SDK ABI is refused before it is loaded, naming both sides")
    func abiMismatchRefused() throws {
        let folder = try TemporaryFolder()
        let copy = try Self.patchedCopy(of: "EchoPlugin", in: folder, field: \.sdk_abi, value: 1)
        #expect(throws: LoadError.self) { try PluginLibraryLoader().inspect(path: copy) }
        do {
            _ = try PluginLibraryLoader().inspect(path: copy)
        } catch {
            #expect(error.description == "plugin example.echo was built with SDK ABI 1, this host speaks ABI 3; rebuild it against this host's PluginSDK")
        }
        let maps = Self.mappedFiles()
        #expect(maps.contains("libPluginSDK.so"), "reading the process's mappings works")
        #expect(!maps.contains(copy), "the refused library must never be mapped")
    }

    @Test("a library built by another Swift toolchain is refused before it is loaded")
    func toolchainMismatchRefused() throws {
        let folder = try TemporaryFolder()
        let copy = try Self.patchedCopy(of: "EchoPlugin", in: folder, offset: MemoryLayout<plugin_host_magic>.offset(of: \.toolchain)!, bytes: Array("swift-toolchain clang 99.0.0 (other)\0".utf8))
        do {
            _ = try PluginLibraryLoader().inspect(path: copy)
            Issue.record("a toolchain mismatch was accepted")
        } catch {
            #expect(error.description.contains("was built with swift-toolchain clang 99.0.0 (other), this host with \(MagicBlock.host.toolchain)"))
        }
    }

    @Test("files that are no plugin are refused with a reason")
    func nonPluginsRefused() throws {
        let folder = try TemporaryFolder()
        let text = try folder.file("not-a-library.so", "hello")
        #expect(throws: LoadError.self) { try PluginLibraryLoader().inspect(path: text) }
        #expect(throws: LoadError.self) { try PluginLibraryLoader().inspect(path: folder.path + "/missing.so") }
        // A real shared library without a magic block: the SDK itself.
        let sdk = try Fixtures.library("NotesPlugin").replacingOccurrences(of: "libNotesPlugin.so", with: "libPluginSDK.so")
        do {
            _ = try PluginLibraryLoader().inspect(path: sdk)
            Issue.record("a library without magic block was accepted")
        } catch {
            #expect(error.reason == .magicMissing)
        }
    }

    @Test("crafted section headers, symbol tables and symbols are refused as corrupt, never a trap", arguments: ELFCrafting.Patch.allCases)
    func craftedLibraries(patch: ELFCrafting.Patch) throws {
        let folder = try TemporaryFolder()
        let path = folder.path + "/libCrafted.so"
        try Data(try ELFCrafting.crafted(patch)).write(to: URL(fileURLWithPath: path))
        do {
            _ = try PluginLibraryLoader().inspect(path: path)
            Issue.record("\(patch) was accepted")
        } catch {
            #expect(error.reason.isCorrupt, "\(patch): \(error)")
            #expect(!LoaderTests.mappedFiles().contains(path))
        }
    }

    @Test("runtime.path naming a device, a FIFO, a folder or a file over the size cap is refused before it is read")
    func notLibraries() throws {
        let folder = try TemporaryFolder()
        let fifo = folder.path + "/libFifo.so"
        #expect(mkfifo(fifo, 0o600) == 0)
        let huge = try folder.file("libHuge.so", "")
        // Sparse: it takes no disk, and reading it whole would take seconds and gigabytes.
        try FileHandle(forWritingTo: URL(fileURLWithPath: huge)).truncate(atOffset: 2 << 30)
        for (path, reason) in [("/dev/zero", LoadError.Reason.notRegularFile), (fifo, .notRegularFile), (folder.path, .notRegularFile),
                               (huge, .tooLarge(size: 2 << 30, limit: 256 << 20))] {
            do {
                _ = try PluginLibraryLoader().inspect(path: path)
                Issue.record("\(path) was accepted")
            } catch {
                #expect(error.reason == reason, "\(path): \(error)")
            }
        }
    }

    @Test("a library replaced by a crafted file while the host was down marks the plugin failed at start; the host serves the rest")
    func craftedAtRestart() async throws {
        let folder = try TemporaryFolder()
        let library = folder.path + "/libEchoPlugin.so"
        try FileManager.default.copyItem(atPath: try Fixtures.library("EchoPlugin"), toPath: library)
        let manifest = try Fixtures.echo.replacingOccurrences(of: try Fixtures.library("EchoPlugin"), with: library)
        let data = try TemporaryFolder()
        try await TestHost.running(data: data.path) { host in
            try await host.install(manifest, contentType: "application/json")
        }
        // Replaced as `install` or `mv` would, by a new file: this process still maps the old one, which
        // writing in place would corrupt under the running code.
        try Data(try ELFCrafting.crafted(.sectionHeadersPastTwoToThe63)).write(to: URL(fileURLWithPath: library), options: .atomic)
        try await TestHost.running(data: data.path) { host in
            #expect(try await host.request(.GET, "/health").status == 200)
            let status = try await host.admin(.GET, "/v1/plugins/example.echo")
            #expect(status.json["status"] as? String == "failed")
            #expect((status.json["loadError"] as? String)?.contains("truncated or corrupt ELF file") == true, "\(status.text)")
            try await host.tenant("acme", workspaces: ["ws1"])
        }
    }

    /// The process's memory mappings. Read through a file handle: procfs reports a size of 0, so
    /// reading it as a sized file would see nothing.
    static func mappedFiles() -> String {
        guard let handle = FileHandle(forReadingAtPath: "/proc/self/maps") else { return "" }
        defer { try? handle.close() }
        return String(decoding: handle.readDataToEndOfFile(), as: UTF8.self)
    }

    /// A copy of a fixture library with one field of its magic block rewritten in the file.
    static func patchedCopy(of name: String, in folder: TemporaryFolder, field: WritableKeyPath<plugin_host_magic, UInt32>, value: UInt32) throws -> String {
        let offset = MemoryLayout<plugin_host_magic>.offset(of: field)!
        return try patchedCopy(of: name, in: folder, offset: offset, bytes: withUnsafeBytes(of: value.littleEndian, Array.init))
    }

    static func patchedCopy(of name: String, in folder: TemporaryFolder, offset: Int, bytes: [UInt8]) throws -> String {
        var data = try Data(contentsOf: URL(fileURLWithPath: try Fixtures.library(name)))
        let tag = Data("PLUGIN-HOST-MAGC".utf8)
        let start = try #require(data.range(of: tag)).lowerBound
        data.replaceSubrange(start + offset ..< start + offset + bytes.count, with: bytes)
        let copy = folder.path + "/lib\(name)-patched.so"
        try data.write(to: URL(fileURLWithPath: copy))
        return copy
    }
}

extension LoadError.Reason {
    /// The file is no ELF library, or one whose tables or magic block cannot be read.
    var isCorrupt: Bool {
        switch self {
        case .notELF, .magicUnreadable, .magicMissing, .magicLayout: true
        default: false
        }
    }
}
