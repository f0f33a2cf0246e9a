import ArgumentParser
import Crypto
import Foundation
import PluginHost
import Subprocess
import Yams

#if canImport(System)
import System
#else
import SystemPackage
#endif

/// `plugin-host pack`: one file from a plugin package, the manifest its one source of truth.
struct Pack: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Make a plugin bundle: sets the library's magic block from the manifest, builds it, checks it, and writes one file to install anywhere.",
        discussion: """
            The manifest (plugin.yaml) is where the plugin's id and version are written: pack writes them into the \
            package's magic block (the C file calling PLUGIN_HOST_MAGIC) before it builds. A remote plugin's bundle \
            holds its manifest only. Install the bundle with: plugin-host plugins install FILE
            """)

    @Argument(help: "The plugin package's folder.") var package: String = "."
    @Option(help: "The manifest; default plugin.yaml (or plugin.json) in the package.") var manifest: String?
    @Option(help: "Sign the bundle with this ed25519 private key (plugin-host keys generate makes one).", completion: .file()) var sign: String?
    @Option(help: "The bundle to write; default <id>-<version>.bundle in the package.") var output: String?
    @Flag(help: "Do not run swift build -c release first.") var noBuild = false

    func run() async throws {
        let folder = URL(fileURLWithPath: package).standardizedFileURL.path
        let manifestPath = manifest.map { URL(fileURLWithPath: $0).standardizedFileURL.path }
            ?? ["plugin.yaml", "plugin.yml", "plugin.json"].map { folder + "/" + $0 }.first { FileManager.default.fileExists(atPath: $0) }
        guard let manifestPath, let text = try? String(contentsOfFile: manifestPath, encoding: .utf8) else {
            throw ValidationError("no manifest: pass --manifest FILE, or put plugin.yaml in \(folder)")
        }
        let key = try sign.map(Self.privateKey)
        guard let top = (try? Yams.load(yaml: text)) as? [String: Any], let id = top["id"] as? String, let version = top["version"].map({ "\($0)" }) else {
            throw ValidationError("\(manifestPath) has no id and version; plugin-host validate \(manifestPath) says why")
        }
        let isLibrary = ((top["runtime"] as? [String: Any])?["kind"] as? String) == "library"
        if isLibrary {
            try Self.writeMagic(in: folder, id: id, version: version)
            if !noBuild {
                print("building \(folder) (swift build -c release)")
                let build = try await Subprocess.run(
                    .name("swift"), arguments: ["build", "-c", "release"], workingDirectory: FilePath(folder), output: .fileDescriptor(.standardOutput, closeAfterSpawningProcess: false),
                    error: .fileDescriptor(.standardError, closeAfterSpawningProcess: false))
                guard build.terminationStatus.isSuccess else { throw ValidationError("swift build failed (\(build.terminationStatus)); nothing was packed") }
            }
        }
        // The whole check an install makes: every field, and the library's magic block against the manifest.
        let validated: ManifestValidator.Validated
        switch ManifestValidator().validate(text: text, baseDirectory: URL(fileURLWithPath: manifestPath).deletingLastPathComponent().path) {
        case .success(let value): validated = value
        case .failure(let errors):
            throw ValidationError("\(manifestPath) is not valid; nothing was packed:\n" + errors.problems.map { "  \($0)" }.joined(separator: "\n"))
        }
        var library: (name: String, bytes: Data)?
        if validated.manifest.runtime.kind == .library {
            let path = validated.manifest.runtime.resolvedPath
            library = (URL(fileURLWithPath: path).lastPathComponent, try Data(contentsOf: URL(fileURLWithPath: path)))
        }
        var bundle = PluginBundle(manifest: Data(text.utf8), library: library)
        if let key { try bundle.sign(with: key) }
        let bytes = bundle.encoded()
        let target = output.map { URL(fileURLWithPath: $0).standardizedFileURL.path } ?? folder + "/\(id)-\(version).bundle"
        try bytes.write(to: URL(fileURLWithPath: target), options: .atomic)
        let signer = bundle.signature.map { "signed by key \($0.keyID)" } ?? "unsigned"
        print("packed \(id) \(version) into \(target) (\(bytes.count) bytes, sha256 \(SHA256.hash(data: bytes).hexString), \(signer))")
        print("install it with: plugin-host plugins install \(target)")
    }

    /// Writes the manifest's id and version into the package's magic block (the one C file under
    /// Sources that calls PLUGIN_HOST_MAGIC), so that they are written in one place only.
    static func writeMagic(in folder: String, id: String, version: String) throws {
        let sources = folder + "/Sources"
        guard let enumerator = FileManager.default.enumerator(atPath: sources) else { return }
        let pattern = #/PLUGIN_HOST_MAGIC\(\s*"[^"]*"\s*,\s*"[^"]*"\s*\)/#
        let files = enumerator.compactMap { $0 as? String }.filter { $0.hasSuffix(".c") }.map { sources + "/" + $0 }.filter {
            (try? String(contentsOfFile: $0, encoding: .utf8))?.contains(pattern) == true
        }
        guard files.count == 1, let file = files.first else {
            if files.count > 1 { throw ValidationError("more than one file under \(sources) calls PLUGIN_HOST_MAGIC: \(files.joined(separator: ", "))") }
            return  // A package without one: the validation after the build says what its library declares.
        }
        let text = try String(contentsOfFile: file, encoding: .utf8)
        guard id.allSatisfy({ $0 != "\"" && $0 != "\\" && !$0.isNewline }), version.allSatisfy({ $0 != "\"" && $0 != "\\" && !$0.isNewline }) else {
            throw ValidationError("the manifest's id and version must not hold quotes, backslashes or line breaks")
        }
        let updated = text.replacing(pattern) { _ in "PLUGIN_HOST_MAGIC(\"\(id)\", \"\(version)\")" }
        if updated != text {
            try updated.write(toFile: file, atomically: true, encoding: .utf8)
            print("set \(file) to \(id) \(version), from the manifest")
        }
    }

    static func privateKey(_ path: String) throws -> Curve25519.Signing.PrivateKey {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8),
              let raw = Data(base64Encoded: text.trimmingCharacters(in: .whitespacesAndNewlines)), raw.count == 32,
              let key = try? Curve25519.Signing.PrivateKey(rawRepresentation: raw) else {
            throw ValidationError("\(path) is not an ed25519 private key (base64 of 32 bytes, as plugin-host keys generate writes)")
        }
        return key
    }
}

struct KeysCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys", abstract: "Signing keys for plugin bundles.", subcommands: [Generate.self])

    struct Generate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Make an ed25519 key pair: NAME.key (private, sign with pack --sign) and NAME.pub (for a host's --trusted-keys folder).")
        @Argument(help: "The key's name.") var name: String
        @Option(help: "The folder to write them to.") var output: String = "."

        func run() throws {
            let folder = URL(fileURLWithPath: output).standardizedFileURL.path
            let privatePath = folder + "/" + name + ".key", publicPath = folder + "/" + name + ".pub"
            for path in [privatePath, publicPath] where FileManager.default.fileExists(atPath: path) {
                throw ValidationError("\(path) exists already; pick another name")
            }
            let key = Curve25519.Signing.PrivateKey()
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            guard FileManager.default.createFile(atPath: privatePath, contents: Data((key.rawRepresentation.base64EncodedString() + "\n").utf8), attributes: [.posixPermissions: 0o600]) else {
                throw ValidationError("cannot write \(privatePath)")
            }
            try PublicKeyFile.encode(key.publicKey.rawRepresentation).write(toFile: publicPath, atomically: true, encoding: .utf8)
            print("wrote \(privatePath) (keep it secret) and \(publicPath); key id \(PluginBundle.keyID(key.publicKey.rawRepresentation))")
        }
    }
}
