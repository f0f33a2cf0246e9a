/// A range of semantic versions as npm and Cargo write them: comparators separated by spaces must all
/// hold (`>=1.0.0 <2.0.0`), alternatives are separated by `||`. A comparator is `=`, `>`, `>=`, `<`, `<=`
/// followed by a version, a caret (`^1.2.0`: compatible, same major), a tilde (`~1.2.0`: same minor),
/// a partial version (`1`, `1.2`, `1.x`), or `*`.
public struct VersionRange: Sendable, Hashable, CustomStringConvertible {
    struct Comparator: Hashable {
        enum Operator: String { case equal = "=", greater = ">", greaterOrEqual = ">=", less = "<", lessOrEqual = "<=" }
        var op: Operator
        var version: SemanticVersion

        func matches(_ candidate: SemanticVersion) -> Bool {
            switch op {
            case .equal: candidate == version
            case .greater: candidate > version
            case .greaterOrEqual: candidate >= version
            case .less: candidate < version
            case .lessOrEqual: candidate <= version
            }
        }
    }

    public let description: String
    let alternatives: [[Comparator]]

    public init?(_ string: String) {
        let trimmed = string.trimmingWhitespace
        guard !trimmed.isEmpty else { return nil }
        var alternatives: [[Comparator]] = []
        for alternative in trimmed.components(separatedBy: "||") {
            let terms = alternative.split(separator: " ").map(String.init)
            guard !terms.isEmpty else { return nil }
            var comparators: [Comparator] = []
            for term in terms {
                guard let expanded = Self.expand(term) else { return nil }
                comparators += expanded
            }
            alternatives.append(comparators)
        }
        self.description = trimmed
        self.alternatives = alternatives
    }

    public func contains(_ version: SemanticVersion) -> Bool {
        alternatives.contains { $0.allSatisfy { $0.matches(version) } }
    }

    private static func expand(_ term: String) -> [Comparator]? {
        if term == "*" || term == "x" { return [] }
        for op in [Comparator.Operator.greaterOrEqual, .lessOrEqual, .greater, .less, .equal] where term.hasPrefix(op.rawValue) {
            guard let version = SemanticVersion(String(term.dropFirst(op.rawValue.count))) else { return nil }
            return [Comparator(op: op, version: version)]
        }
        if term.hasPrefix("^") || term.hasPrefix("~") {
            guard let (version, given) = partial(String(term.dropFirst())) else { return nil }
            let upper: SemanticVersion?
            if term.hasPrefix("~") {
                upper = given >= 2 ? version.nextMinor : version.nextMajor
            } else if version.major > 0 || given == 1 {
                upper = version.nextMajor
            } else if version.minor > 0 || given == 2 {
                upper = version.nextMinor
            } else {
                upper = version.nextPatch
            }
            return bounded(from: version, below: upper)
        }
        guard let (version, given) = partial(term) else { return nil }
        switch given {
        case 3: return [Comparator(op: .equal, version: version)]
        case 2: return bounded(from: version, below: version.nextMinor)
        default: return bounded(from: version, below: version.nextMajor)
        }
    }

    /// `>=lower <upper`; no range when there is no upper bound (a component at `Int.max` has no next
    /// value).
    private static func bounded(from lower: SemanticVersion, below upper: SemanticVersion?) -> [Comparator]? {
        guard let upper else { return nil }
        return [Comparator(op: .greaterOrEqual, version: lower), Comparator(op: .less, version: upper)]
    }

    /// A full version, or `1`, `1.2`, `1.x`, `1.2.*`; returns how many numbers were given.
    private static func partial(_ string: String) -> (SemanticVersion, Int)? {
        if let full = SemanticVersion(string) { return (full, 3) }
        let numbers = string.split(separator: ".", omittingEmptySubsequences: false).prefix { $0 != "x" && $0 != "*" && $0 != "X" }
        let all = string.split(separator: ".", omittingEmptySubsequences: false)
        guard (1...2).contains(numbers.count), all.count <= 3,
              all.dropFirst(numbers.count).allSatisfy({ $0 == "x" || $0 == "*" || $0 == "X" }),
              numbers.allSatisfy({ !$0.isEmpty && $0.allSatisfy(\.isASCIIDigit) }),
              let values = Optional(numbers.compactMap { Int($0) }), values.count == numbers.count
        else { return nil }
        return (SemanticVersion(values[0], values.count > 1 ? values[1] : 0, 0), numbers.count)
    }
}

extension String {
    var trimmingWhitespace: String {
        String(drop { $0.isWhitespace }.reversed().drop { $0.isWhitespace }.reversed())
    }
}
