import Foundation
import PluginHostFuzzing
import Testing

/// Every input kept under Tests/Fuzz/Corpus (the seeds, and each crash a fuzz run found, kept once
/// fixed) goes through its fuzz target on every test run, so a parser that traps on one of them again
/// fails `make test`, not only `make fuzz`.
@Suite("Fuzz corpus")
struct FuzzCorpusTests {
    static let corpus = Fixtures.root.appendingPathComponent("Tests/Fuzz/Corpus")

    @Test("each target's committed corpus runs through it without a trap", arguments: FuzzTarget.allCases)
    func replay(target: FuzzTarget) throws {
        let folder = Self.corpus.appendingPathComponent(target.rawValue)
        let files = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { !$0.hasPrefix(".") }
        #expect(!files.isEmpty, "no corpus for \(target.rawValue) in \(folder.path)")
        for file in files {
            target.run(Array(try Data(contentsOf: folder.appendingPathComponent(file))))
        }
    }

    @Test("the shipped manifests and the built plugin libraries pass through the targets too")
    func shippedInputs() throws {
        for manifest in [try Fixtures.notes, try Fixtures.audit, try Fixtures.echo] {
            FuzzTarget.manifest.run(Array(manifest.utf8))
        }
        for name in ["NotesPlugin", "EchoPlugin", "AuditPlugin"] {
            FuzzTarget.elf.run(Array(try Data(contentsOf: URL(fileURLWithPath: try Fixtures.library(name)))))
        }
        for patch in ELFCrafting.Patch.allCases {
            FuzzTarget.elf.run(try ELFCrafting.crafted(patch))
        }
    }
}
