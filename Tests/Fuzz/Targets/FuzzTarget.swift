import Crypto
import Foundation
import PluginHostFormats

/// The fuzz targets: each feeds arbitrary bytes to one parser of outside bytes, the way the host feeds
/// it what arrives from outside. A target never traps; a thrown error or a refusal is a pass.
///
/// `make fuzz` runs them under libFuzzer (`plugin-host-fuzz`, built with `--sanitize fuzzer`), and the
/// test suite replays every input committed under `Tests/Fuzz/Corpus` through them.
public enum FuzzTarget: String, CaseIterable, Sendable {
    /// A plugin library file, checked as `plugins install` checks one (ELF tables, magic block, symbols).
    case elf
    /// A manifest, YAML or JSON, validated as `POST /v1/plugins` validates one.
    case manifest
    /// A version range on the first line, versions to test against it on the others.
    case versionRange = "version-range"
    /// A remote call's envelope (headers and body) as `serve-plugin` verifies it, the protocol's bodies
    /// as either side decodes them, and an SDK token as `/sdk/v1` verifies it.
    case envelope
    /// A worker's byte stream as the host reads it (docs/workers.md): frames delimited by their length,
    /// each decoded as the payload its kind says (and as every other kind, as a confused peer would send).
    case workerFrame = "worker-frame"
    /// A plugin bundle as `POST /v1/plugins` takes one (docs/bundles.md): decoded, its checksums and
    /// signature checked, and encoded again.
    case bundle

    public func run(_ bytes: [UInt8]) {
        switch self {
        case .elf: Self.elf(bytes)
        case .manifest: Self.manifest(bytes)
        case .versionRange: Self.versionRange(bytes)
        case .envelope: Self.envelope(bytes)
        case .workerFrame: Self.workerFrame(bytes)
        case .bundle: Self.bundle(bytes)
        }
    }

    private static func elf(_ bytes: [UInt8]) {
        _ = try? LibraryInspector().inspect(bytes, path: "fuzz input")
    }

    private static func manifest(_ bytes: [UInt8]) {
        let text = String(decoding: bytes, as: UTF8.self)
        let validated = ManifestValidator().validate(text: text, baseDirectory: "/nonexistent-fuzz-folder") { $0 == "example.notes" ? "1.0.0" : nil }
        // What an accepted manifest is used for: its config schema checks configs, its JSON is stored.
        if case .success(let result) = validated {
            let defaults = result.manifest.config.properties.compactMapValues(\.defaultValue)
            _ = result.manifest.config.validate(defaults)
            _ = try? JSONEncoder().encode(result.manifest)
        }
    }

    private static func versionRange(_ bytes: [UInt8]) {
        let lines = String(decoding: bytes, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
        guard let range = lines.first.flatMap({ VersionRange(String($0)) }) else { return }
        for line in lines.dropFirst() {
            if let version = SemanticVersion(String(line)) { _ = range.contains(version) }
        }
    }

    /// Lines: call id, expiry, content hash, context, signature, method, target; the rest is the body.
    /// When the first byte is odd the harness signs the call with the remote's secret first, so the
    /// checks behind the signature (context, expiry, replay) are reached too; likewise the SDK token's
    /// claims are signed with the host's key before they are verified.
    private static func envelope(_ bytes: [UInt8]) {
        guard let mode = bytes.first else { return }
        let text = String(decoding: bytes.dropFirst(), as: UTF8.self)
        var lines = text.split(separator: "\n", maxSplits: 7, omittingEmptySubsequences: false).map(String.init)
        while lines.count < 8 { lines.append("") }
        let body = Data(lines[7].utf8)
        let now: Int64 = 1_800_000_000
        if mode & 1 == 1 {
            lines[2] = SHA256.hash(data: body).hexString
            lines[4] = "v1=" + RemoteEnvelope.mac(
                secret: secret, callID: lines[0], expires: Int64(lines[1]) ?? now, method: lines[5], target: lines[6], contentHash: lines[2], context: lines[3]
            )
        }
        let fields = [RemoteEnvelope.callIDHeader: lines[0], RemoteEnvelope.expiresHeader: lines[1], RemoteEnvelope.contentHashHeader: lines[2],
                      RemoteEnvelope.contextHeader: lines[3], RemoteEnvelope.signatureHeader: lines[4]]
        for call in [RemoteEnvelope.CallKind.request, .enabled] {
            _ = try? RemoteEnvelope.verify(
                method: lines[5], target: lines[6], headers: { fields[$0] }, body: body, expectedPlugin: "example.notes", expectedCall: call, now: now,
                secretFor: { _, _ in secret }, remember: { _, _ in true }
            )
        }
        _ = RemoteEnvelope.decode(lines[3])
        // The bodies either side decodes from the other.
        _ = try? RemoteWire.decode(RemoteWire.Event.self, from: body).pluginEvent
        _ = try? RemoteWire.decode(RemoteWire.Enabled.self, from: body)
        _ = try? RemoteWire.decode(RemoteWire.ErrorBody.self, from: body)
        _ = try? RemoteWire.decode(RemoteWire.Put.self, from: body)
        _ = try? RemoteWire.decode(RemoteWire.Page.self, from: body).entries.map(\.stored)
        _ = try? RemoteWire.decode(RemoteWire.CallContext.self, from: body)

        let token = mode & 1 == 1 ? SDKToken.sign(payload: "pht1." + Base64URL.encode(Data(lines[3].utf8)), key: tokenKey) : text
        _ = try? SDKToken.verify(Substring(token), key: tokenKey, nowMilliseconds: now * 1000)
    }

    private static func workerFrame(_ bytes: [UInt8]) {
        var offset = 0
        while offset < bytes.count {
            let frame: WorkerWire.Frame? = bytes.withUnsafeBytes { all in
                let rest = UnsafeRawBufferPointer(rebasing: all[offset...])
                guard let length = try? WorkerWire.frameLength(rest, limit: 1 << 20), length <= rest.count,
                      let frame = try? WorkerWire.frame(UnsafeRawBufferPointer(rebasing: rest[0..<length])) else { return nil }
                offset += length
                return frame
            }
            guard let frame else { return }
            let payload = frame.payload
            _ = try? WorkerWire.hello(payload)
            _ = try? WorkerWire.ready(payload)
            _ = try? WorkerWire.binding(payload)
            _ = try? WorkerWire.request(payload)
            _ = try? WorkerWire.response(payload)
            _ = try? WorkerWire.events(payload)
            _ = try? WorkerWire.hook(payload)
            _ = try? WorkerWire.failure(payload)
            _ = try? WorkerWire.sdk(payload)
            _ = try? WorkerWire.sdkResult(payload)
            _ = try? WorkerWire.log(payload)
            _ = try? WorkerWire.message(payload)
            _ = try? WorkerWire.unbinding(payload)
        }
    }

    private static func bundle(_ bytes: [UInt8]) {
        guard let bundle = try? PluginBundle.decode(Data(bytes)) else { return }
        _ = bundle.signatureIsValid
        // What decodes encodes to the same bytes.
        precondition(bundle.encoded() == Data(bytes), "a decoded bundle encodes to other bytes")
    }

    private static let secret = "phk_fuzzing-secret"
    private static let tokenKey = SymmetricKey(data: Data(repeating: 7, count: 32))
}
