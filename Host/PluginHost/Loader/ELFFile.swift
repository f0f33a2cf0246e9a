import Foundation

/// The little a plugin check needs from an ELF64 little-endian shared object, read from its bytes
/// without loading it: the dynamic symbol table and the bytes of a symbol.
struct ELFFile {
    struct Symbol {
        var name: String
        var value: UInt64
        var size: UInt64
        var sectionIndex: UInt16
        var isDefined: Bool { sectionIndex != 0 }
    }

    struct Section {
        var type: UInt32
        var address: UInt64
        var offset: UInt64
        var size: UInt64
        var link: UInt32
        var entrySize: UInt64
    }

    enum ParseError: Error, CustomStringConvertible {
        case notELF
        case unsupported(String)
        case truncated

        var description: String {
            switch self {
            case .notELF: "is not an ELF shared library"
            case .unsupported(let what): "is an unsupported ELF file (\(what))"
            case .truncated: "is a truncated or corrupt ELF file"
            }
        }
    }

    let bytes: [UInt8]
    let sections: [Section]

    init(bytes: [UInt8]) throws {
        self.bytes = bytes
        guard bytes.count >= 64, bytes[0] == 0x7F, bytes[1] == 0x45, bytes[2] == 0x4C, bytes[3] == 0x46 else {
            throw ParseError.notELF
        }
        guard bytes[4] == 2 else { throw ParseError.unsupported("not 64-bit") }
        guard bytes[5] == 1 else { throw ParseError.unsupported("not little-endian") }
        let sectionHeaderOffset = try Self.read(UInt64.self, bytes, at: 0x28)
        let sectionHeaderSize = try Self.read(UInt16.self, bytes, at: 0x3A)
        let sectionCount = try Self.read(UInt16.self, bytes, at: 0x3C)
        var sections: [Section] = []
        sections.reserveCapacity(Int(sectionCount))
        for index in 0..<Int(sectionCount) {
            let base = Int(sectionHeaderOffset) + index * Int(sectionHeaderSize)
            let section = Section(
                type: try Self.read(UInt32.self, bytes, at: base + 4),
                address: try Self.read(UInt64.self, bytes, at: base + 16),
                offset: try Self.read(UInt64.self, bytes, at: base + 24),
                size: try Self.read(UInt64.self, bytes, at: base + 32),
                link: try Self.read(UInt32.self, bytes, at: base + 40),
                entrySize: try Self.read(UInt64.self, bytes, at: base + 56)
            )
            guard section.type == Self.noBits || section.offset &+ section.size <= UInt64(bytes.count) else { throw ParseError.truncated }
            sections.append(section)
        }
        self.sections = sections
    }

    /// Every symbol of the dynamic symbol table (what `dlsym` can see).
    func dynamicSymbols() throws -> [Symbol] {
        guard let table = sections.first(where: { $0.type == Self.dynSym }) else { return [] }
        guard Int(table.link) < sections.count, table.entrySize >= 24 else { throw ParseError.truncated }
        let strings = sections[Int(table.link)]
        var symbols: [Symbol] = []
        for index in 0..<Int(table.size / table.entrySize) {
            let base = Int(table.offset) + index * Int(table.entrySize)
            let nameOffset = try Self.read(UInt32.self, bytes, at: base)
            symbols.append(Symbol(
                name: try string(in: strings, at: UInt64(nameOffset)),
                value: try Self.read(UInt64.self, bytes, at: base + 8),
                size: try Self.read(UInt64.self, bytes, at: base + 16),
                sectionIndex: try Self.read(UInt16.self, bytes, at: base + 6)
            ))
        }
        return symbols
    }

    /// The bytes of a defined data symbol as they are in the file.
    func contents(of symbol: Symbol) throws -> ArraySlice<UInt8> {
        guard symbol.isDefined, Int(symbol.sectionIndex) < sections.count else { throw ParseError.truncated }
        let section = sections[Int(symbol.sectionIndex)]
        guard section.type != Self.noBits, symbol.value >= section.address,
              symbol.value &+ symbol.size <= section.address &+ section.size
        else { throw ParseError.truncated }
        let start = Int(section.offset + (symbol.value - section.address))
        return bytes[start..<start + Int(symbol.size)]
    }

    private func string(in section: Section, at offset: UInt64) throws -> String {
        guard offset < section.size else { throw ParseError.truncated }
        let start = Int(section.offset + offset)
        let end = Int(section.offset + section.size)
        let terminator = bytes[start..<end].firstIndex(of: 0) ?? end
        return String(decoding: bytes[start..<terminator], as: UTF8.self)
    }

    private static func read<T: FixedWidthInteger>(_: T.Type, _ bytes: [UInt8], at offset: Int) throws -> T {
        guard offset >= 0, offset + MemoryLayout<T>.size <= bytes.count else { throw ParseError.truncated }
        var value: T = 0
        for index in (0..<MemoryLayout<T>.size).reversed() { value = value << 8 | T(bytes[offset + index]) }
        return value
    }

    private static let dynSym: UInt32 = 11
    private static let noBits: UInt32 = 8
}
