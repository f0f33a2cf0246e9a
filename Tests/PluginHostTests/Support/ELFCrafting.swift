import Foundation
import Testing

/// Crafted copies of a real plugin library (the echo fixture) with one field of its ELF structures
/// rewritten: the kinds of file a fuzzer mutating `libEchoPlugin.so` produces, each aimed at one bounds
/// check of the host's ELF reader. Found here with a reader of its own, so a bug in the host's reader
/// cannot hide itself.
enum ELFCrafting {
    enum Patch: String, CaseIterable, CustomTestStringConvertible {
        case sectionHeadersPastTwoToThe63, sectionHeadersWrapAround, sectionHeadersPastEnd, sectionHeaderSizeZero
        case dynamicSymbolsWrapAround, dynamicSymbolsHuge, dynamicSymbolEntrySizeZero, dynamicSymbolEntrySizeHuge
        case stringTableIndexOutOfRange, stringTableWrapAround, magicValueWrapAround, magicSizeHuge, magicInAbsoluteSection
        case magicNameOutsideStringTable, magicSizeOneByte, truncatedToHeader

        var testDescription: String { rawValue }
    }

    static func crafted(_ patch: Patch) throws -> [UInt8] {
        var bytes = Array(try Data(contentsOf: URL(fileURLWithPath: try Fixtures.library("EchoPlugin"))))
        let sectionHeaders = Int(read(UInt64.self, bytes, 0x28))
        let headerSize = Int(read(UInt16.self, bytes, 0x3A))
        let count = Int(read(UInt16.self, bytes, 0x3C))
        let header = { (index: Int) in sectionHeaders + index * headerSize }
        let dynsymIndex = try (0..<count).first { read(UInt32.self, bytes, header($0) + 4) == 11 }.unwrap("no .dynsym")
        let dynsym = header(dynsymIndex)
        let symbolsOffset = Int(read(UInt64.self, bytes, dynsym + 24))
        let symbolsSize = Int(read(UInt64.self, bytes, dynsym + 32))
        let stringsHeader = header(Int(read(UInt32.self, bytes, dynsym + 40)))
        let stringsOffset = Int(read(UInt64.self, bytes, stringsHeader + 24))
        let magic = try stride(from: symbolsOffset, to: symbolsOffset + symbolsSize, by: 24).first { entry in
            let name = stringsOffset + Int(read(UInt32.self, bytes, entry))
            return bytes[name...].prefix(18).elementsEqual(Array("plugin_host_magic\0".utf8))
        }.unwrap("no plugin_host_magic")

        switch patch {
        case .sectionHeadersPastTwoToThe63: write(UInt64(1) << 63, &bytes, 0x28)
        case .sectionHeadersWrapAround: write(UInt64.max - 63, &bytes, 0x28)
        case .sectionHeadersPastEnd: write(UInt64(bytes.count - 100), &bytes, 0x28)
        case .sectionHeaderSizeZero: write(UInt16(0), &bytes, 0x3A)
        case .dynamicSymbolsWrapAround: write(UInt64.max - 8, &bytes, dynsym + 24)
        case .dynamicSymbolsHuge: write(UInt64.max, &bytes, dynsym + 32)
        case .dynamicSymbolEntrySizeZero: write(UInt64(0), &bytes, dynsym + 56)
        case .dynamicSymbolEntrySizeHuge: write(UInt64.max, &bytes, dynsym + 56)
        case .stringTableIndexOutOfRange: write(UInt32.max, &bytes, dynsym + 40)
        case .stringTableWrapAround: write(UInt64.max - 2, &bytes, stringsHeader + 24)
        case .magicValueWrapAround: write(UInt64.max - 4, &bytes, magic + 8)
        case .magicSizeHuge: write(UInt64.max, &bytes, magic + 16)
        case .magicInAbsoluteSection: write(UInt16(0xFFF1), &bytes, magic + 6)
        case .magicNameOutsideStringTable: write(UInt32.max, &bytes, magic)
        case .magicSizeOneByte: write(UInt64(1), &bytes, magic + 16)
        case .truncatedToHeader: bytes = Array(bytes.prefix(64))
        }
        return bytes
    }

    private static func read<T: FixedWidthInteger>(_: T.Type, _ bytes: [UInt8], _ offset: Int) -> T {
        bytes[offset..<offset + MemoryLayout<T>.size].reversed().reduce(T(0)) { $0 << 8 | T($1) }
    }

    private static func write<T: FixedWidthInteger>(_ value: T, _ bytes: inout [UInt8], _ offset: Int) {
        for index in 0..<MemoryLayout<T>.size { bytes[offset + index] = UInt8(truncatingIfNeeded: value >> (8 * index)) }
    }
}

extension Optional {
    func unwrap(_ what: String) throws -> Wrapped {
        guard let self else { throw CraftingFailed(what: what) }
        return self
    }
}

struct CraftingFailed: Error {
    var what: String
}
