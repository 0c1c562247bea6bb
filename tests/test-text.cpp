// valid_utf8, first_invalid_utf8 and utf8_complete_prefix on exact byte strings.
#include "powersample/text.h"

#include <gtest/gtest.h>

using powersample::first_invalid_utf8;
using powersample::utf8_complete_prefix;
using powersample::valid_utf8;

namespace {
const std::string fffd  = "\xEF\xBF\xBD";
const std::string apple = "\xE8\x8B\xB9\xE6\x9E\x9C";  // 苹果: two 3-byte characters
const std::string grin  = "\xF0\x9F\x98\x80";          // U+1F600: a 4-byte character
}  // namespace

TEST(text, valid_input_is_unchanged) {
    for (const std::string & s : { std::string(), std::string("plain ASCII"), apple, grin, "a" + grin + "b" + apple,
                                   std::string("\xC2\x80\xDF\xBF\xEF\xBF\xBF\xF4\x8F\xBF\xBF") }) {
        EXPECT_EQ(valid_utf8(s), s);
        EXPECT_EQ(first_invalid_utf8(s), std::string::npos);
        EXPECT_EQ(utf8_complete_prefix(s), s.size());
    }
}

TEST(text, a_character_cut_at_the_end_becomes_one_replacement) {
    EXPECT_EQ(valid_utf8(apple.substr(0, 4)), apple.substr(0, 3) + fffd);
    EXPECT_EQ(valid_utf8(apple.substr(0, 5)), apple.substr(0, 3) + fffd);
    EXPECT_EQ(valid_utf8(grin.substr(0, 1)), fffd);
    EXPECT_EQ(valid_utf8(grin.substr(0, 3)), fffd);
    EXPECT_EQ(first_invalid_utf8(apple.substr(0, 5)), 3u);
}

TEST(text, invalid_bytes_inside_are_replaced_by_maximal_subpart) {
    EXPECT_EQ(valid_utf8("a\xFF"
                         "b"),
              "a" + fffd + "b");
    EXPECT_EQ(valid_utf8("\x80\x80"), fffd + fffd);  // two stray continuations
    EXPECT_EQ(valid_utf8("\xE8\x8B"
                         "x"),
              fffd + "x");                                                 // truncated inside: one
    EXPECT_EQ(valid_utf8("\xC0\xAF"), fffd + fffd);                        // overlong lead is invalid
    EXPECT_EQ(valid_utf8("\xE0\x80\xAF"), fffd + fffd + fffd);             // overlong 3-byte
    EXPECT_EQ(valid_utf8("\xED\xA0\x80"), fffd + fffd + fffd);             // a surrogate
    EXPECT_EQ(valid_utf8("\xF4\x90\x80\x80"), fffd + fffd + fffd + fffd);  // above U+10FFFF
    EXPECT_EQ(first_invalid_utf8("ab\xFF"), 2u);
    for (const std::string & s : { std::string("\xFF\xFE"), apple.substr(1), grin.substr(2) + apple }) {
        EXPECT_EQ(first_invalid_utf8(valid_utf8(s)), std::string::npos) << s;
    }
}

TEST(text, complete_prefix_holds_back_only_a_finishable_tail) {
    EXPECT_EQ(utf8_complete_prefix(apple.substr(0, 4)), 3u);
    EXPECT_EQ(utf8_complete_prefix(apple.substr(0, 5)), 3u);
    EXPECT_EQ(utf8_complete_prefix("ab" + grin.substr(0, 3)), 2u);
    EXPECT_EQ(utf8_complete_prefix("ab\xFF"), 3u);  // invalid, not unfinished: nothing to wait for
    EXPECT_EQ(utf8_complete_prefix("ab\xE8"
                                   "c"),
              4u);  // broken already
}

TEST(markup_escape, replaces_the_four_markup_characters_and_nothing_else) {
    EXPECT_EQ(powersample::markup_escape(R"(a<b>&"c" 'd' é)"), "a&lt;b&gt;&amp;&quot;c&quot; 'd' é");
    EXPECT_EQ(powersample::markup_escape(""), "");
    EXPECT_EQ(powersample::markup_escape("&amp;"), "&amp;amp;");
}
