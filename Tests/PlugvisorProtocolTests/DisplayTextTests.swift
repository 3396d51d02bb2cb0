import PlugvisorProtocol
import Testing

@Suite struct DisplayTextTests {
    @Test func controlCharactersAreEscapedAndTheRestIsUnchanged() {
        #expect(DisplayText.escaped("plain text, ünïcödé, emoji 🙂") == "plain text, ünïcödé, emoji 🙂")
        #expect(DisplayText.escaped("a\nb\rc\td") == "a\\nb\\rc\\td")
        #expect(DisplayText.escaped("\u{1b}]0;title\u{07}") == "\\u{1b}]0;title\\u{7}")
        #expect(DisplayText.escaped("\u{9b}31m\u{7f}\u{0}") == "\\u{9b}31m\\u{7f}\\u{0}")
        #expect(DisplayText.escaped("abc\u{202e}fed\u{2028}") == "abc\\u{202e}fed\\u{2028}")
    }
}
