/// One problem in a manifest: the field path (`runtime.path`, `routes[1].method`), the line when the
/// manifest text has one, and what is wrong with a hint of what to do.
public struct ManifestProblem: Sendable, Hashable, Codable, CustomStringConvertible {
    public var field: String
    public var line: Int?
    public var message: String

    public init(field: String, line: Int?, message: String) {
        self.field = field
        self.line = line
        self.message = message
    }

    public var description: String {
        "\(field)\(line.map { " (line \($0))" } ?? ""): \(message)"
    }
}

/// Every problem found in a manifest; nothing of it was installed.
public struct ManifestErrors: Error, Sendable, CustomStringConvertible {
    public var problems: [ManifestProblem]

    public var description: String {
        "the manifest has \(problems.count) problem\(problems.count == 1 ? "" : "s"):\n"
            + problems.map { "  - \($0)" }.joined(separator: "\n")
    }
}
