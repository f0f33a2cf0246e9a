/// The little a plugin check needs from an ELF64 little-endian shared object, read from its bytes
/// without loading it: the dynamic symbol table and the bytes of a symbol.
///
/// Every offset and size comes from the file, so none is trusted: each is checked against the file's
/// length with arithmetic that cannot overflow, and the tables read into memory are capped
/// (``maximumTableBytes``), whatever the file claims.
struct ELFFile<Source: ByteSource> {
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

    /// The most bytes read for one table (the section headers, the dynamic symbols, their names).
    /// Swift plugins have a few thousand dynamic symbols; 64 MiB is far beyond any real one.
    static var maximumTableBytes: UInt64 { 64 << 20 }

    let source: Source
    let sections: [Section]

    init(_ source: Source) throws(ELFParseError) {
        self.source = source
        guard source.size >= 64 else { throw .notELF }
        let header = try Self.read(source, at: 0, count: 64, what: "the ELF header")
        guard header[0] == 0x7F, header[1] == 0x45, header[2] == 0x4C, header[3] == 0x46 else { throw .notELF }
        guard header[4] == 2 else { throw .unsupported("not 64-bit") }
        guard header[5] == 1 else { throw .unsupported("not little-endian") }
        let tableOffset = header.integer(UInt64.self, at: 0x28)
        let entrySize = UInt64(header.integer(UInt16.self, at: 0x3A))
        let count = UInt64(header.integer(UInt16.self, at: 0x3C))
        guard count > 0 else {
            self.sections = []
            return
        }
        guard entrySize >= 64 else { throw .unsupported("section headers of \(entrySize) bytes, not 64") }
        // Both factors are at most 65535: the product fits.
        let tableSize = count * entrySize
        guard tableSize <= Self.maximumTableBytes else { throw .tooLarge("the section header table") }
        let table = try Self.read(source, at: tableOffset, count: tableSize, what: "the section header table")
        var sections: [Section] = []
        sections.reserveCapacity(Int(count))
        for index in 0..<Int(count) {
            let base = index * Int(entrySize)
            let section = Section(
                type: table.integer(UInt32.self, at: base + 4),
                address: table.integer(UInt64.self, at: base + 16),
                offset: table.integer(UInt64.self, at: base + 24),
                size: table.integer(UInt64.self, at: base + 32),
                link: table.integer(UInt32.self, at: base + 40),
                entrySize: table.integer(UInt64.self, at: base + 56)
            )
            guard section.type == Self.noBits || source.contains(offset: section.offset, count: section.size) else {
                throw .truncated("section \(index) lies beyond the end of the file")
            }
            sections.append(section)
        }
        self.sections = sections
    }

    /// Every symbol of the dynamic symbol table (what `dlsym` can see).
    func dynamicSymbols() throws(ELFParseError) -> [Symbol] {
        guard let table = sections.first(where: { $0.type == Self.dynSym }) else { return [] }
        guard table.entrySize >= 24 else { throw .truncated("dynamic symbols of \(table.entrySize) bytes, fewer than 24") }
        guard Int(exactly: table.link).map({ $0 < sections.count }) == true else { throw .truncated("the dynamic symbols name no string table") }
        let names = sections[Int(table.link)]
        guard names.type != Self.noBits else { throw .truncated("the dynamic symbols' string table has no bytes in the file") }
        guard table.size <= Self.maximumTableBytes, names.size <= Self.maximumTableBytes else { throw .tooLarge("the dynamic symbol table") }
        let symbolBytes = try Self.read(source, at: table.offset, count: table.size, what: "the dynamic symbol table")
        let nameBytes = try Self.read(source, at: names.offset, count: names.size, what: "the dynamic symbols' string table")
        guard table.entrySize <= table.size else { return [] }
        // At most table.size, which is capped above.
        let entrySize = Int(table.entrySize)
        let count = symbolBytes.count / entrySize
        var symbols: [Symbol] = []
        symbols.reserveCapacity(count)
        for index in 0..<count {
            let base = index * entrySize
            let nameOffset = Int(symbolBytes.integer(UInt32.self, at: base))
            guard nameOffset < nameBytes.count else { throw .truncated("a symbol name lies outside the string table") }
            let end = nameBytes[nameOffset...].firstIndex(of: 0) ?? nameBytes.count
            symbols.append(Symbol(
                name: String(decoding: nameBytes[nameOffset..<end], as: UTF8.self),
                value: symbolBytes.integer(UInt64.self, at: base + 8),
                size: symbolBytes.integer(UInt64.self, at: base + 16),
                sectionIndex: symbolBytes.integer(UInt16.self, at: base + 6)
            ))
        }
        return symbols
    }

    /// The bytes of a defined data symbol as they are in the file, when it is at most `maximumSize`.
    func contents(of symbol: Symbol, maximumSize: Int) throws(ELFParseError) -> [UInt8] {
        guard symbol.isDefined, Int(symbol.sectionIndex) < sections.count else { throw .truncated("the symbol \(symbol.name) is in no section") }
        let section = sections[Int(symbol.sectionIndex)]
        guard section.type != Self.noBits else { throw .truncated("the symbol \(symbol.name) has no bytes in the file") }
        guard symbol.value >= section.address, symbol.value - section.address <= section.size,
              symbol.size <= section.size - (symbol.value - section.address)
        else { throw .truncated("the symbol \(symbol.name) lies outside its section") }
        guard symbol.size <= UInt64(maximumSize) else { throw .tooLarge("the symbol \(symbol.name)") }
        // Within the section, which lies within the file (checked when the headers were read).
        return try Self.read(source, at: section.offset + (symbol.value - section.address), count: symbol.size, what: "the symbol \(symbol.name)")
    }

    private static func read(_ source: Source, at offset: UInt64, count: UInt64, what: String) throws(ELFParseError) -> [UInt8] {
        guard source.contains(offset: offset, count: count), let count = Int(exactly: count) else {
            throw .truncated("\(what) lies beyond the end of the file")
        }
        do {
            return try source.bytes(at: offset, count: count)
        } catch {
            throw .unreadable(error.description)
        }
    }

    private static var dynSym: UInt32 { 11 }
    private static var noBits: UInt32 { 8 }
}

/// Why a file is not an ELF library this host can check.
package enum ELFParseError: Error, Equatable, CustomStringConvertible {
    case notELF
    case unsupported(String)
    case truncated(String)
    case tooLarge(String)
    case unreadable(String)

    package var description: String {
        switch self {
        case .notELF: "is not an ELF shared library"
        case .unsupported(let what): "is an unsupported ELF file (\(what))"
        case .truncated(let what): "is a truncated or corrupt ELF file: \(what)"
        case .tooLarge(let what): "is not a plugin library this host accepts: \(what) is larger than \(ELFFile<[UInt8]>.maximumTableBytes >> 20) MiB"
        case .unreadable(let why): "cannot be read: \(why)"
        }
    }
}

extension Array where Element == UInt8 {
    /// The little-endian integer at `offset`; callers have made sure the bytes are there.
    func integer<T: FixedWidthInteger>(_: T.Type, at offset: Int) -> T {
        var value: T = 0
        for index in (offset..<offset + MemoryLayout<T>.size).reversed() { value = value << 8 | T(self[index]) }
        return value
    }
}
