#include "powersample/text.h"

#include <cstdint>

namespace powersample {

namespace {

struct scan_result {
    size_t length;    // bytes taken: the whole character, or the maximal invalid subpart (>= 1)
    bool   complete;  // a whole, valid character
    bool   at_end;    // not complete only because the input ended: a later byte may finish it
};

// The character (or maximal invalid subpart) starting at s[i], after Unicode's table 3-7 of
// well-formed byte sequences: overlong forms, surrogates and code points above U+10FFFF are invalid.
scan_result scan(std::string_view s, size_t i) {
    const auto b0 = uint8_t(s[i]);
    if (b0 < 0x80) return { 1, true, false };
    size_t  n;
    uint8_t lo = 0x80, hi = 0xBF;  // the range allowed for the second byte
    if (b0 >= 0xC2 && b0 <= 0xDF) {
        n = 2;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
        n = 3;
        if (b0 == 0xE0) lo = 0xA0;
        if (b0 == 0xED) hi = 0x9F;
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
        n = 4;
        if (b0 == 0xF0) lo = 0x90;
        if (b0 == 0xF4) hi = 0x8F;
    } else {
        return { 1, false, false };  // a continuation byte or a byte that never starts a character
    }
    for (size_t k = 1; k < n; ++k) {
        if (i + k >= s.size()) return { k, false, true };
        const auto b  = uint8_t(s[i + k]);
        const bool ok = k == 1 ? (b >= lo && b <= hi) : (b >= 0x80 && b <= 0xBF);
        if (!ok) return { k, false, false };
    }
    return { n, true, false };
}

}  // namespace

std::string valid_utf8(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (size_t i = 0; i < s.size();) {
        const scan_result r = scan(s, i);
        if (r.complete) {
            out.append(s.substr(i, r.length));
        } else {
            out += "\xEF\xBF\xBD";  // U+FFFD
        }
        i += r.length;
    }
    return out;
}

size_t first_invalid_utf8(std::string_view s) {
    for (size_t i = 0; i < s.size();) {
        const scan_result r = scan(s, i);
        if (!r.complete) return i;
        i += r.length;
    }
    return std::string_view::npos;
}

size_t utf8_complete_prefix(std::string_view s) {
    // Only the last three bytes can start a character that the next bytes may still complete.
    for (size_t i = s.size() > 3 ? s.size() - 3 : 0; i < s.size(); ++i) {
        const scan_result r = scan(s, i);
        if (!r.complete && r.at_end) return i;
    }
    return s.size();
}

std::string markup_escape(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (char c : text) {
        switch (c) {
            case '&': out += "&amp;"; break;
            case '<': out += "&lt;"; break;
            case '>': out += "&gt;"; break;
            case '"': out += "&quot;"; break;
            default: out += c;
        }
    }
    return out;
}

}  // namespace powersample
