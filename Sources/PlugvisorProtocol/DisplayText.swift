/// Text that a guest, a worker or any other untrusted peer wrote, made fit to print: it is data,
/// so it can neither start a line of its own (a forged log line) nor drive the terminal (ESC,
/// OSC and CSI sequences, a carriage return that overwrites, bidi overrides that reorder).
///
/// Used at each output boundary that prints text for people: the text log, `status`'s table,
/// the CLI's plain-text answers. JSON output needs no more than JSON's own escaping.
public enum DisplayText {
    /// `text` with newlines, tabs and carriage returns as `\n`, `\t`, `\r`, and every other
    /// control or invisible formatting character as `\u{…}`; anything else unchanged.
    public static func escaped<S: StringProtocol>(_ text: S) -> String {
        guard text.unicodeScalars.contains(where: needsEscape) else { return String(text) }
        var result = ""
        result.reserveCapacity(text.utf8.count + 16)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\n": result += "\\n"
            case "\r": result += "\\r"
            case "\t": result += "\\t"
            case _ where needsEscape(scalar): result += "\\u{\(String(scalar.value, radix: 16))}"
            default: result.unicodeScalars.append(scalar)
            }
        }
        return result
    }

    static func needsEscape(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x00...0x1F, 0x7F...0x9F: return true  // C0, DEL, C1 (0x9B is a one-byte CSI)
        case 0x061C, 0x200E, 0x200F, 0x202A...0x202E, 0x2066...0x2069: return true  // bidi controls
        case 0x2028, 0x2029: return true  // line and paragraph separators
        default: return false
        }
    }
}
