import Foundation
import PluginHostFuzzing

#if PLUGIN_HOST_FUZZING
/// libFuzzer's entry (built by `make fuzz` with `--sanitize fuzzer`); libFuzzer provides `main`. The
/// target comes from PLUGIN_HOST_FUZZ_TARGET, so one instrumented build serves every target.
private let target: FuzzTarget = {
    let name = ProcessInfo.processInfo.environment["PLUGIN_HOST_FUZZ_TARGET"] ?? ""
    guard let target = FuzzTarget(rawValue: name) else {
        FileHandle.standardError.write(Data("set PLUGIN_HOST_FUZZ_TARGET to one of: \(FuzzTarget.allCases.map(\.rawValue).joined(separator: ", "))\n".utf8))
        exit(2)
    }
    return target
}()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    target.run(data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? [])
    return 0
}
#else
/// Without libFuzzer: runs the files given through a target, to reproduce a crash in a debugger.
///
///     plugin-host-fuzz elf crash-1234 crash-5678
@main
struct FuzzReplay {
    static func main() throws {
        let arguments = CommandLine.arguments.dropFirst()
        guard let name = arguments.first, let target = FuzzTarget(rawValue: name), arguments.count > 1 else {
            print("usage: plugin-host-fuzz \(FuzzTarget.allCases.map(\.rawValue).joined(separator: "|")) FILE...")
            exit(2)
        }
        for file in arguments.dropFirst() {
            target.run(Array(try Data(contentsOf: URL(fileURLWithPath: file))))
            print("ok    \(file)")
        }
    }
}
#endif
