import Crypto
import Foundation
@testable import PluginHost
import Testing

/// Plugin bundles through the API: packed, signed, uploaded, kept in the store, loaded by every host.
@Suite("Plugin bundles")
struct BundleTests {
    static let echoManifest = """
        id: example.echo
        name: Echo
        version: 1.0.0
        sdk: ^1.0.0
        runtime:
          kind: library
          path: .build/release/libEchoPlugin.so
        routes: [{method: POST, path: echo}]
        """

    /// The echo plugin as a bundle, signed with `key` if given.
    static func echoBundle(signedWith key: Curve25519.Signing.PrivateKey? = nil) throws -> PluginBundle {
        let library = try Data(contentsOf: URL(fileURLWithPath: try Fixtures.library("EchoPlugin")))
        var bundle = PluginBundle(manifest: Data(echoManifest.utf8), library: ("libEchoPlugin.so", library))
        if let key { try bundle.sign(with: key) }
        return bundle
    }

    static func upload(_ host: TestHost, _ bytes: Data) async throws -> TestHost.Reply {
        try await host.admin(.POST, "/v1/plugins", body: bytes, contentType: "application/vnd.plugin-host.bundle")
    }

    /// A folder of trusted keys holding `key`'s public half.
    static func trusting(_ key: Curve25519.Signing.PrivateKey, in folder: TemporaryFolder) throws -> TrustedKeys {
        let directory = folder.path + "/trusted"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try PublicKeyFile.encode(key.publicKey.rawRepresentation).write(toFile: directory + "/release.pub", atomically: true, encoding: .utf8)
        return try TrustedKeys.load(directory: directory)
    }

    @Test("a bundle signed and uploaded to host A is served by host B on the same PostgreSQL, with no file copied by hand")
    func sharedThroughTheStore() async throws {
        let key = Curve25519.Signing.PrivateKey()
        let keys = try TemporaryFolder()
        let trusted = try Self.trusting(key, in: keys)
        let bytes = try Self.echoBundle(signedWith: key).encoded()
        let sha256 = SHA256.hash(data: bytes).hexString
        let (dataA, dataB) = (try TemporaryFolder(), try TemporaryFolder())
        try await withDatabase(.postgres) { database in
            let database = try #require(database)
            try await TestHost.running(data: dataA.path, postgres: database.hostConfiguration(), configure: { $0.trustedKeys = trusted }) { hostA in
                try await TestHost.running(data: dataB.path, postgres: database.hostConfiguration(), configure: { $0.trustedKeys = trusted }) { hostB in
                    let installed = try await Self.upload(hostA, bytes)
                    #expect(installed.status == 201, "\(installed.text)")
                    #expect(installed.json["bundle"] as? String == sha256)
                    try await hostA.tenant("acme", workspaces: ["ws1"])
                    try await hostA.enable("example.echo", in: "ws1", grants: [])
                    // Host B learns of it through the database, fetches the bundle from there, and serves it.
                    let echo = "/v1/workspaces/ws1/plugins/example.echo/resources/echo"
                    #expect(try await eventually(timeout: .seconds(15)) { try await hostB.admin(.POST, echo, body: Data("from B".utf8)).text == "from B" })
                    let seenByB = try await hostB.admin(.GET, "/v1/plugins/example.echo").json
                    #expect(seenByB["bundle"] as? String == sha256)
                    let runtime = seenByB["runtime"] as? [String: any Sendable]
                    #expect((runtime?["path"] as? String)?.hasPrefix(dataB.path + "/bundles/\(sha256)/") == true, "\(runtime ?? [:])")
                    #expect(FileManager.default.fileExists(atPath: dataB.path + "/bundles/\(sha256).bundle"))
                }
            }
        }
    }

    @Test("a tampered bundle is refused at upload; a cached library changed on disk is refused at the next load")
    func tampering() async throws {
        let data = try TemporaryFolder()
        let bundle = try Self.echoBundle()
        var bytes = bundle.encoded()
        try await TestHost.running(data: data.path) { host in
            // One byte of the library, somewhere in its middle.
            var tampered = bytes
            let middle = 8 + 2 + 4 + bundle.manifest.count + 2 + "libEchoPlugin.so".utf8.count + 8 + bundle.library!.bytes.count / 2
            tampered[middle] ^= 0x01
            let refused = try await Self.upload(host, tampered)
            #expect(refused.status == 400)
            #expect(refused.errorCode == "INVALID_BUNDLE")
            #expect(refused.text.contains("the library does not match its checksum"), "\(refused.text)")
            #expect((try await host.admin(.GET, "/v1/plugins").json["plugins"] as? [Any])?.isEmpty == true)
            // A signature that was made before a change does not hold after it.
            var signed = try Self.echoBundle(signedWith: Curve25519.Signing.PrivateKey())
            signed.manifest = Data(Self.echoManifest.replacingOccurrences(of: "name: Echo", with: "name: Echo (changed)").utf8)
            let resigned = try await Self.upload(host, signed.encoded())
            #expect(resigned.errorCode == "UNTRUSTED_BUNDLE")
            #expect(resigned.text.contains("does not match its contents"), "\(resigned.text)")
            // Not an archive at all.
            #expect(try await Self.upload(host, Data("PHBUNDLE\u{1}".utf8)).errorCode == "INVALID_BUNDLE")

            #expect(try await Self.upload(host, bytes).status == 201)
            try await host.tenant("acme", workspaces: ["ws1"])
            try await host.enable("example.echo", in: "ws1", grants: [])
        }
        // Host stopped: one byte of its cached library changes.
        let sha256 = SHA256.hash(data: bytes).hexString
        let cached = data.path + "/bundles/\(sha256)/libEchoPlugin.so"
        var library = try Data(contentsOf: URL(fileURLWithPath: cached))
        library[library.count / 2] ^= 0x01
        try library.write(to: URL(fileURLWithPath: cached))
        try await TestHost.running(data: data.path) { host in
            let status = try await host.admin(.GET, "/v1/plugins/example.echo").json
            #expect(status["status"] as? String == "failed")
            #expect((status["loadError"] as? String)?.contains("the manifest pins") == true, "\(status)")
            #expect(try await host.admin(.POST, "/v1/workspaces/ws1/plugins/example.echo/resources/echo", body: Data("x".utf8)).errorCode == "PLUGIN_UNAVAILABLE")
        }
        // The bundle file itself changed: refused too, saying how to have it fetched again.
        bytes = try Data(contentsOf: URL(fileURLWithPath: data.path + "/bundles/\(sha256).bundle"))
        bytes[bytes.count - 1] ^= 0x01
        try bytes.write(to: URL(fileURLWithPath: data.path + "/bundles/\(sha256).bundle"))
        try await TestHost.running(data: data.path) { host in
            let status = try await host.admin(.GET, "/v1/plugins/example.echo").json
            #expect((status["loadError"] as? String)?.contains("was changed on disk") == true, "\(status)")
        }
    }

    @Test("a remote plugin's bundle holds its manifest only; a bundle whose manifest and contents disagree is refused")
    func remoteBundle() async throws {
        let manifest = "id: example.remote\nname: R\nversion: 1.0.0\nsdk: ^1.0.0\nruntime: {kind: remote, url: \"http://127.0.0.1:9\"}\n"
        try await withHost { host in
            let installed = try await Self.upload(host, PluginBundle(manifest: Data(manifest.utf8), library: nil).encoded())
            #expect(installed.status == 201, "\(installed.text)")
            #expect((installed.json["installSecret"] as? String)?.hasPrefix("phk_") == true)
            #expect(installed.json["bundle"] != nil)
            // A library plugin's manifest without its library, and a library beside a remote's manifest.
            let bare = try await Self.upload(host, PluginBundle(manifest: Data(Self.echoManifest.utf8), library: nil).encoded())
            #expect(bare.errorCode == "INVALID_BUNDLE", "\(bare.text)")
            let library = try Data(contentsOf: URL(fileURLWithPath: try Fixtures.library("EchoPlugin")))
            let stray = try await Self.upload(host, PluginBundle(
                manifest: Data(manifest.replacingOccurrences(of: "1.0.0\nsdk", with: "1.0.1\nsdk").utf8), library: ("libEchoPlugin.so", library)).encoded())
            #expect(stray.errorCode == "INVALID_BUNDLE", "\(stray.text)")
        }
    }

    @Test("with trusted keys: an unsigned bundle, one signed by another key, and a manifest are refused, naming the key")
    func signaturesRequired() async throws {
        let key = Curve25519.Signing.PrivateKey(), stranger = Curve25519.Signing.PrivateKey()
        let keys = try TemporaryFolder()
        let trusted = try Self.trusting(key, in: keys)
        try await withHost(configure: { $0.trustedKeys = trusted }) { host in
            let unsigned = try await Self.upload(host, try Self.echoBundle().encoded())
            #expect(unsigned.errorCode == "UNTRUSTED_BUNDLE")
            #expect(unsigned.text.contains("is not signed"), "\(unsigned.text)")
            let foreign = try await Self.upload(host, try Self.echoBundle(signedWith: stranger).encoded())
            #expect(foreign.errorCode == "UNTRUSTED_BUNDLE")
            #expect(foreign.text.contains("key \(PluginBundle.keyID(stranger.publicKey.rawRepresentation))"), "\(foreign.text)")
            let manifest = try await host.admin(.POST, "/v1/plugins", body: Data(try Fixtures.echo.utf8), contentType: "application/json")
            #expect(manifest.errorCode == "UNTRUSTED_BUNDLE")
            #expect((try await host.admin(.GET, "/v1/plugins").json["plugins"] as? [Any])?.isEmpty == true)
            let signed = try await Self.upload(host, try Self.echoBundle(signedWith: key).encoded())
            #expect(signed.status == 201, "\(signed.text)")
        }
    }
}
