/// A semantic version, `MAJOR.MINOR.PATCH` with an optional `-prerelease` and ignored `+build`.
public struct SemanticVersion: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var major: Int
    public var minor: Int
    public var patch: Int
    public var prerelease: [String]

    public init(_ major: Int, _ minor: Int, _ patch: Int, prerelease: [String] = []) {
        self.major = major
        self.minor = minor
        self.patch = patch
        self.prerelease = prerelease
    }

    public init?(_ string: String) {
        let withoutBuild = string.split(separator: "+", maxSplits: 1, omittingEmptySubsequences: false)[0]
        let parts = withoutBuild.split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false)
        let numbers = parts[0].split(separator: ".", omittingEmptySubsequences: false)
        guard numbers.count == 3 else { return nil }
        var values: [Int] = []
        for number in numbers {
            guard !number.isEmpty, number.allSatisfy(\.isASCIIDigit), number == "0" || !number.hasPrefix("0"),
                  let value = Int(number) else { return nil }
            values.append(value)
        }
        var prerelease: [String] = []
        if parts.count == 2 {
            prerelease = parts[1].split(separator: ".", omittingEmptySubsequences: false).map(String.init)
            guard prerelease.allSatisfy({ !$0.isEmpty && $0.allSatisfy { $0.isASCIIDigit || $0.isASCIILetter || $0 == "-" } }) else { return nil }
        }
        self.init(values[0], values[1], values[2], prerelease: prerelease)
    }

    /// The next major, minor or patch release (`1.2.3` → `2.0.0`, `1.3.0`, `1.2.4`); `nil` when the
    /// component is already `Int.max`.
    var nextMajor: SemanticVersion? { Self.next(major).map { SemanticVersion($0, 0, 0) } }
    var nextMinor: SemanticVersion? { Self.next(minor).map { SemanticVersion(major, $0, 0) } }
    var nextPatch: SemanticVersion? { Self.next(patch).map { SemanticVersion(major, minor, $0) } }

    private static func next(_ component: Int) -> Int? {
        let (next, overflow) = component.addingReportingOverflow(1)
        return overflow ? nil : next
    }

    public var description: String {
        "\(major).\(minor).\(patch)" + (prerelease.isEmpty ? "" : "-" + prerelease.joined(separator: "."))
    }

    public static func < (lhs: SemanticVersion, rhs: SemanticVersion) -> Bool {
        if (lhs.major, lhs.minor, lhs.patch) != (rhs.major, rhs.minor, rhs.patch) {
            return (lhs.major, lhs.minor, lhs.patch) < (rhs.major, rhs.minor, rhs.patch)
        }
        // A prerelease sorts before its release; identifiers compare numerically when both are numbers.
        switch (lhs.prerelease.isEmpty, rhs.prerelease.isEmpty) {
        case (true, _): return false
        case (false, true): return true
        case (false, false):
            for (left, right) in zip(lhs.prerelease, rhs.prerelease) where left != right {
                switch (Int(left), Int(right)) {
                case let (l?, r?): return l < r
                case (_?, nil): return true
                case (nil, _?): return false
                case (nil, nil): return left < right
                }
            }
            return lhs.prerelease.count < rhs.prerelease.count
        }
    }
}

extension Character {
    var isASCIIDigit: Bool { isASCII && isNumber }
    var isASCIILetter: Bool { isASCII && isLetter }
}
