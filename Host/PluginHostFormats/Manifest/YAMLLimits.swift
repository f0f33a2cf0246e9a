import CYaml

/// Bounds on a manifest's YAML, checked on libyaml's event stream before Yams composes any node: how
/// deep the document nests, and how many values it stands for once every alias is expanded.
///
/// Yams composes recursively, and an alias shares the node of its anchor, so a few hundred bytes of
/// nested aliases ("billion laughs") stand for billions of values: reading them (or hashing one as a
/// mapping key, which Yams does to find duplicate keys) would run for hours. Counting here costs one
/// pass over the events and memory for one count per anchor.
struct YAMLLimits {
    var maximumDepth = 64
    var maximumValues = 100_000

    enum Violation: Error, Equatable {
        case tooDeep(line: Int)
        case tooManyValues(line: Int)
    }

    /// Throws at the first event past a bound. A syntax error ends the check without a violation: the
    /// composer reports it with its position.
    func check(_ text: String) throws(Violation) {
        var text = text
        let violation = text.withUTF8 { scan($0) }
        if let violation { throw violation }
    }

    private func scan(_ bytes: UnsafeBufferPointer<UInt8>) -> Violation? {
        var parser = yaml_parser_t()
        guard yaml_parser_initialize(&parser) == 1 else { return nil }
        defer { yaml_parser_delete(&parser) }
        yaml_parser_set_encoding(&parser, YAML_UTF8_ENCODING)
        yaml_parser_set_input_string(&parser, bytes.baseAddress, bytes.count)

        /// Values counted so far in each open collection, and the anchor it will be known by.
        var open: [(anchor: String?, values: Int)] = []
        var anchors: [String: Int] = [:]
        var total = 0
        while true {
            var event = yaml_event_t()
            guard yaml_parser_parse(&parser, &event) == 1 else { return nil }
            defer { yaml_event_delete(&event) }
            let line = Int(event.start_mark.line) + 1
            var finished: (anchor: String?, values: Int)?
            switch event.type {
            case YAML_STREAM_END_EVENT:
                return nil
            case YAML_SCALAR_EVENT:
                finished = (Self.name(event.data.scalar.anchor), 1)
            case YAML_ALIAS_EVENT:
                // An undefined alias is the composer's error to report.
                finished = (nil, Self.name(event.data.alias.anchor).flatMap { anchors[$0] } ?? 1)
            case YAML_SEQUENCE_START_EVENT, YAML_MAPPING_START_EVENT:
                let anchor = event.type == YAML_SEQUENCE_START_EVENT ? event.data.sequence_start.anchor : event.data.mapping_start.anchor
                guard open.count < maximumDepth else { return .tooDeep(line: line) }
                open.append((Self.name(anchor), 1))
            case YAML_SEQUENCE_END_EVENT, YAML_MAPPING_END_EVENT:
                finished = open.popLast()
            default:
                continue
            }
            guard let (anchor, values) = finished else { continue }
            if let anchor { anchors[anchor] = values }
            // Each count is at most maximumValues, so the sums cannot overflow.
            if open.isEmpty {
                total += values
                if total > maximumValues { return .tooManyValues(line: line) }
            } else {
                open[open.count - 1].values += values
                if open[open.count - 1].values > maximumValues { return .tooManyValues(line: line) }
            }
        }
    }

    private static func name(_ anchor: UnsafeMutablePointer<yaml_char_t>?) -> String? {
        anchor.map { String(cString: $0) }
    }
}
