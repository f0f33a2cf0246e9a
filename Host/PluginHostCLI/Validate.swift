import ArgumentParser
import Foundation
import PluginHost

struct Validate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check manifests and their libraries as an install would, without installing anything.")

    @Argument(help: "Manifest files (YAML or JSON).")
    var files: [String]

    func run() throws {
        let validator = ManifestValidator()
        var failed = 0
        for file in files {
            switch validator.validate(file: file) {
            case .success(let validated):
                print("ok    \(file): \(validated.manifest.id) \(validated.manifest.version)")
            case .failure(let errors):
                failed += 1
                print("FAIL  \(file): \(errors.description)")
            }
        }
        if failed > 0 { throw ExitCode(1) }
    }
}
