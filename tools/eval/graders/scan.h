// String scanning that the graders and the dataset reader share: character classes, trimming,
// prefix tests, LaTeX command removal, brace matching and reading numbers. Byte-wise and ASCII-only on purpose:
// model output is arbitrary bytes, and none of these may throw on it.
#pragma once

#include <cmath>
#include <cstddef>
#include <string>
#include <string_view>

namespace powersample::eval::scan {

inline bool is_digit(char c) { return c >= '0' && c <= '9'; }

inline bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

inline bool is_alnum(char c) { return is_digit(c) || is_alpha(c); }

inline bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

inline std::string_view trim(std::string_view s) {
    std::size_t b = 0;
    std::size_t e = s.size();
    while (b < e && is_space(s[b])) {
        ++b;
    }
    while (e > b && is_space(s[e - 1])) {
        --e;
    }
    return s.substr(b, e - b);
}

inline bool starts_with(std::string_view s, std::string_view prefix) { return s.substr(0, prefix.size()) == prefix; }

inline bool ends_with(std::string_view s, std::string_view suffix) {
    return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

inline void replace_all(std::string & s, std::string_view from, std::string_view to) {
    if (from.empty()) {
        return;
    }
    std::size_t pos = 0;
    while ((pos = s.find(from, pos)) != std::string::npos) {
        s.replace(pos, from.size(), to);
        pos += to.size();
    }
}

// Removes `\name` only where it is the whole command name, so that removing \right does not
// damage \rightarrow.
inline void remove_command(std::string & s, std::string_view name) {
    std::size_t pos = 0;
    while ((pos = s.find(name, pos)) != std::string::npos) {
        const auto end = pos + name.size();
        if (end < s.size() && is_alpha(s[end])) {
            pos = end;
            continue;
        }
        s.erase(pos, name.size());
    }
}

inline std::string to_lower(std::string_view s) {
    std::string out(s);
    for (auto & c : out) {
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    return out;
}

// Index one past the brace that closes the group opening at `open`, or npos.
inline std::size_t matching_brace_end(std::string_view s, std::size_t open) {
    int depth = 0;
    for (auto i = open; i < s.size(); ++i) {
        if (s[i] == '\\' && i + 1 < s.size() && (s[i + 1] == '{' || s[i + 1] == '}')) {
            ++i;  // \{ and \} are literal braces, not grouping
            continue;
        }
        if (s[i] == '{') {
            ++depth;
        } else if (s[i] == '}' && --depth == 0) {
            return i + 1;
        }
    }
    return std::string_view::npos;
}

// ---- numbers: shared by the numeric and the MATH graders ----

inline std::string canonical_decimal(std::string digits) {
    if (const auto dot = digits.find('.'); dot != std::string::npos) {
        while (digits.back() == '0') {
            digits.pop_back();
        }
        if (digits.back() == '.') {
            digits.pop_back();
        }
    }
    // ".5" has no integer part in the source text
    if (!digits.empty() && digits[0] == '.') {
        digits.insert(0, "0");
    }
    return digits;
}

// Reads an unsigned decimal at `i` (digits with optional "1,234"-style grouping and a
// fractional part). Returns the canonical text and advances `i`, or "" if none.
inline std::string read_unsigned(std::string_view s, std::size_t & i) {
    std::size_t j = i;
    std::string digits;
    while (j < s.size() && is_digit(s[j])) {
        digits += s[j++];
    }
    // Grouping commas are only accepted in the strict form, so "1, 2, 3" stays a list.
    if (!digits.empty() && digits.size() <= 3) {
        while (j + 3 < s.size() && s[j] == ',' && is_digit(s[j + 1]) && is_digit(s[j + 2]) && is_digit(s[j + 3]) &&
               (j + 4 >= s.size() || !is_digit(s[j + 4]))) {
            digits.append(s.substr(j + 1, 3));
            j += 4;
        }
    }
    if (j + 1 < s.size() && s[j] == '.' && is_digit(s[j + 1])) {
        digits += '.';
        ++j;
        while (j < s.size() && is_digit(s[j])) {
            digits += s[j++];
        }
    }
    if (digits.empty()) {
        return {};
    }
    i = j;
    return canonical_decimal(digits);
}

inline bool close_enough(double a, double b, double rel_tol) {
    if (a == b) {
        return true;
    }
    // Two integers must match exactly: a relative tolerance would accept 1450001 for a
    // GSM8K answer of 1450000.
    if (std::nearbyint(a) == a && std::nearbyint(b) == b && std::fabs(a) < 9e15 && std::fabs(b) < 9e15) {
        return false;
    }
    const double scale = std::max(std::fabs(a), std::fabs(b));
    return std::fabs(a - b) <= rel_tol * scale;
}

}  // namespace powersample::eval::scan
