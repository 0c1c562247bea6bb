#include "graders.h"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <stdexcept>
#include <system_error>
#include <vector>

namespace powersample::eval {

namespace {

bool is_digit(char c) {
    return c >= '0' && c <= '9';
}

bool is_alpha(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

bool is_alnum(char c) {
    return is_digit(c) || is_alpha(c);
}

bool is_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

std::string_view trim(std::string_view s) {
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

bool starts_with(std::string_view s, std::string_view prefix) {
    return s.substr(0, prefix.size()) == prefix;
}

bool ends_with(std::string_view s, std::string_view suffix) {
    return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

void replace_all(std::string & s, std::string_view from, std::string_view to) {
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
void remove_command(std::string & s, std::string_view name) {
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

std::string to_lower(std::string_view s) {
    std::string out(s);
    for (auto & c : out) {
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    return out;
}

// Index one past the brace that closes the group opening at `open`, or npos.
std::size_t matching_brace_end(std::string_view s, std::size_t open) {
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

// ---- numbers ----

struct number_token {
    std::size_t begin = 0;
    std::size_t end = 0;
    std::string text;  // canonical: no commas, no trailing fractional zeros
};

std::string canonical_decimal(std::string digits) {
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
std::string read_unsigned(std::string_view s, std::size_t & i) {
    std::size_t j = i;
    std::string digits;
    while (j < s.size() && is_digit(s[j])) {
        digits += s[j++];
    }
    // Grouping commas are only accepted in the strict form, so "1, 2, 3" stays a list.
    if (!digits.empty() && digits.size() <= 3) {
        while (j + 3 < s.size() && s[j] == ',' && is_digit(s[j + 1]) && is_digit(s[j + 2]) &&
               is_digit(s[j + 3]) && (j + 4 >= s.size() || !is_digit(s[j + 4]))) {
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

bool is_negative_sign_before(std::string_view s, std::size_t start) {
    std::size_t k = start;
    // A currency sign may sit between the minus and the digits: "-$5", "-\$5".
    if (k > 0 && s[k - 1] == '$') {
        --k;
        if (k > 0 && s[k - 1] == '\\') {
            --k;
        }
    }
    if (k > 0 && s[k - 1] == '-') {
        // "5-3" is a subtraction, not -3.
        return k < 2 || !(is_alnum(s[k - 2]) || s[k - 2] == ')' || s[k - 2] == '}');
    }
    // U+2212 MINUS SIGN, which models sometimes emit
    if (k >= 3 && s.substr(k - 3, 3) == "\xE2\x88\x92") {
        return k < 4 || !(is_alnum(s[k - 4]) || s[k - 4] == ')');
    }
    return false;
}

// Rewrites \frac{a}{b} (and \dfrac, \tfrac) with plain numeric arguments to "a/b" so the
// number scanner sees a fraction.
std::string latex_fractions_to_slash(std::string_view in) {
    std::string s(in);
    for (std::string_view cmd : { "\\dfrac", "\\tfrac", "\\frac" }) {
        std::size_t pos = 0;
        while ((pos = s.find(cmd, pos)) != std::string::npos) {
            const auto open1 = pos + cmd.size();
            const auto end1 = open1 < s.size() && s[open1] == '{' ? matching_brace_end(s, open1) : std::string::npos;
            const auto end2 = end1 != std::string::npos && end1 < s.size() && s[end1] == '{' ?
                                  matching_brace_end(s, end1) :
                                  std::string::npos;
            if (end2 == std::string::npos) {
                pos = open1;
                continue;
            }
            const std::string num(trim(std::string_view(s).substr(open1 + 1, end1 - open1 - 2)));
            const std::string den(trim(std::string_view(s).substr(end1 + 1, end2 - end1 - 2)));
            auto plain = [](const std::string & t) {
                std::size_t i = (!t.empty() && t[0] == '-') ? 1 : 0;
                const std::size_t start = i;
                return !read_unsigned(t, i).empty() && i == t.size() && i > start;
            };
            if (!plain(num) || !plain(den)) {
                pos = open1;
                continue;
            }
            const std::string repl = num + "/" + den;
            s.replace(pos, end2 - pos, repl);
            pos += repl.size();
        }
    }
    return s;
}

std::vector<number_token> scan_numbers(std::string_view s) {
    std::vector<number_token> out;
    std::size_t i = 0;
    while (i < s.size()) {
        const bool starts_number =
            is_digit(s[i]) || (s[i] == '.' && i + 1 < s.size() && is_digit(s[i + 1]) && (i == 0 || !is_digit(s[i - 1])));
        if (!starts_number) {
            ++i;
            continue;
        }
        const std::size_t start = i;
        std::string text = read_unsigned(s, i);
        if (i + 1 < s.size() && s[i] == '/' && is_digit(s[i + 1])) {
            std::size_t j = i + 1;
            const std::string den = read_unsigned(s, j);
            if (!den.empty()) {
                text += "/" + den;
                i = j;
            }
        }
        if (is_negative_sign_before(s, start) && text.find_first_not_of("0./") != std::string::npos) {
            text.insert(0, "-");
        }
        out.push_back({ start, i, text });
    }
    return out;
}

// Words that introduce a final answer in free text, checked case-insensitively.
const std::string_view k_answer_phrases[] = { "answer is", "answer:", "answer =" };

bool close_enough(double a, double b, double rel_tol) {
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

}  // namespace

std::optional<std::string> extract_boxed(std::string_view response) {
    std::optional<std::string> best;
    std::size_t best_pos = 0;
    for (std::string_view cmd : { "\\boxed", "\\fbox" }) {
        for (auto pos = response.rfind(cmd); pos != std::string_view::npos;
             pos = pos == 0 ? std::string_view::npos : response.rfind(cmd, pos - 1)) {
            if (best && pos < best_pos) {
                break;
            }
            auto open = pos + cmd.size();
            while (open < response.size() && response[open] == ' ') {
                ++open;
            }
            if (open >= response.size() || response[open] != '{') {
                continue;
            }
            const auto end = matching_brace_end(response, open);
            if (end == std::string_view::npos) {
                continue;  // unterminated: the response was cut off inside the box
            }
            best = std::string(trim(response.substr(open + 1, end - open - 2)));
            best_pos = pos;
            break;
        }
    }
    return best;
}

std::optional<double> parse_number(std::string_view text) {
    std::string s(trim(text));
    replace_all(s, "{,}", ",");
    replace_all(s, "\\!", "");
    s = latex_fractions_to_slash(s);
    std::string_view v = trim(s);
    for (bool changed = true; changed && !v.empty();) {
        changed = false;
        for (std::string_view suffix : { "\\%", "%", "\\$", "$", "." }) {
            if (ends_with(v, suffix)) {
                v = trim(v.substr(0, v.size() - suffix.size()));
                changed = true;
            }
        }
    }
    bool negative = false;
    auto strip_currency = [&v] {
        if (starts_with(v, "\\$")) {
            v = trim(v.substr(2));
        } else if (starts_with(v, "$")) {
            v = trim(v.substr(1));
        }
    };
    strip_currency();
    if (starts_with(v, "-") || starts_with(v, "+")) {
        negative = v[0] == '-';
        v = v.substr(1);
    } else if (starts_with(v, "\xE2\x88\x92")) {
        negative = true;
        v = v.substr(3);
    }
    strip_currency();

    auto read_value = [](std::string_view t, std::size_t & i) -> std::optional<double> {
        if (i < t.size() && t[i] == '.' && (i + 1 >= t.size() || !is_digit(t[i + 1]))) {
            return std::nullopt;
        }
        const std::string digits = read_unsigned(t, i);
        if (digits.empty()) {
            return std::nullopt;
        }
        return std::strtod(digits.c_str(), nullptr);
    };
    std::size_t i = 0;
    auto value = read_value(v, i);
    if (!value) {
        return std::nullopt;
    }
    if (i < v.size() && v[i] == '/') {
        ++i;
        bool den_negative = false;
        if (i < v.size() && v[i] == '-') {
            den_negative = true;
            ++i;
        }
        const auto den = read_value(v, i);
        if (!den || *den == 0) {
            return std::nullopt;
        }
        *value /= *den;
        if (den_negative) {
            *value = -*value;
        }
    }
    if (i != v.size()) {
        return std::nullopt;
    }
    return negative ? -*value : *value;
}

std::optional<std::string> extract_numeric_answer(std::string_view response) {
    const std::string text = latex_fractions_to_slash(response);
    auto first_after = [&](std::size_t pos) -> std::optional<std::string> {
        for (auto & t : scan_numbers(std::string_view(text).substr(pos))) {
            return t.text;
        }
        return std::nullopt;
    };

    if (auto boxed = extract_boxed(text)) {
        std::string inner = *boxed;
        replace_all(inner, "{,}", ",");
        auto tokens = scan_numbers(inner);
        if (!tokens.empty()) {
            return tokens.back().text;
        }
    }
    if (const auto pos = text.rfind("####"); pos != std::string::npos) {
        if (auto n = first_after(pos + 4)) {
            return n;
        }
    }
    const std::string lower = to_lower(text);
    std::size_t best = std::string::npos;
    for (auto phrase : k_answer_phrases) {
        const auto pos = lower.rfind(phrase);
        if (pos != std::string::npos && (best == std::string::npos || pos + phrase.size() > best)) {
            best = pos + phrase.size();
        }
    }
    if (best != std::string::npos) {
        if (auto n = first_after(best)) {
            return n;
        }
    }
    auto tokens = scan_numbers(text);
    if (!tokens.empty()) {
        return tokens.back().text;
    }
    return std::nullopt;
}

std::optional<double> extract_numeric_value(std::string_view response) {
    const auto text = extract_numeric_answer(response);
    return text ? parse_number(*text) : std::nullopt;
}

bool numeric_equal(std::string_view a, std::string_view b, double rel_tol) {
    const auto x = parse_number(a);
    const auto y = parse_number(b);
    return x && y && close_enough(*x, *y, rel_tol);
}

bool grade_numeric(std::string_view response, std::string_view reference) {
    const auto candidate = extract_numeric_value(response);
    const auto ref = parse_number(reference);
    if (!candidate || !ref) {
        return false;
    }
    if (close_enough(*candidate, *ref, 1e-6)) {
        return true;
    }
    const auto r = trim(reference);
    const auto dot = r.find('.');
    if (dot == std::string_view::npos) {
        return false;
    }
    std::size_t decimals = 0;
    while (dot + 1 + decimals < r.size() && is_digit(r[dot + 1 + decimals])) {
        ++decimals;
    }
    if (decimals < 5 || decimals > 12) {
        return false;
    }
    const double scale = std::pow(10.0, static_cast<double>(decimals));
    return close_enough(std::round(*candidate * scale) / scale, *ref, 1e-12);
}

// ---- MATH ----

namespace {

// Unwraps \text{..}-like groups; a trailing group of plain words after a value is a unit
// ("10\text{ cm}") and is dropped together with a following ^2/^3.
void handle_text_groups(std::string & s) {
    for (std::string_view cmd : { "\\textbf", "\\textrm", "\\textit", "\\mathrm", "\\mathbf", "\\text", "\\mbox" }) {
        std::size_t pos = 0;
        while ((pos = s.find(cmd, pos)) != std::string::npos) {
            auto open = pos + cmd.size();
            if (open < s.size() && is_alpha(s[open])) {
                pos = open;
                continue;
            }
            while (open < s.size() && s[open] == ' ') {
                ++open;
            }
            const auto end = open < s.size() && s[open] == '{' ? matching_brace_end(s, open) : std::string::npos;
            if (end == std::string::npos) {
                pos = open;
                continue;
            }
            const std::string content = s.substr(open + 1, end - open - 2);
            const auto prefix = trim(std::string_view(s).substr(0, pos));
            std::string_view suffix = std::string_view(s).substr(end);
            std::size_t drop_suffix = 0;
            for (std::string_view power : { "^{2}", "^{3}", "^2", "^3" }) {
                if (trim(suffix) == power) {
                    drop_suffix = suffix.size();
                    break;
                }
            }
            const auto trimmed_suffix = trim(suffix);
            const bool unit_like = !trim(content).empty() &&
                                   std::all_of(content.begin(), content.end(),
                                               [](char c) { return is_alpha(c) || c == ' ' || c == '.'; });
            const bool after_value =
                !prefix.empty() && (is_digit(prefix.back()) || prefix.back() == '}' || prefix.back() == ')');
            const bool at_boundary = drop_suffix > 0 || trimmed_suffix.empty() || trimmed_suffix[0] == ',' ||
                                     trimmed_suffix[0] == ')' || trimmed_suffix[0] == ']';
            if (unit_like && after_value && at_boundary) {
                s.erase(pos, end - pos + drop_suffix);
            } else {
                s.replace(pos, end - pos, content);
            }
        }
    }
}

// \frac12 -> \frac{1}{2}, \frac1{b} -> \frac{1}{b}: single-token arguments get braces so
// both spellings normalise identically.
std::string fix_fracs(const std::string & s) {
    std::string out;
    std::size_t i = 0;
    const std::string_view cmd = "\\frac";
    while (i < s.size()) {
        if (s.compare(i, cmd.size(), cmd) != 0 || (i + cmd.size() < s.size() && is_alpha(s[i + cmd.size()]))) {
            out += s[i++];
            continue;
        }
        out += cmd;
        i += cmd.size();
        for (int arg = 0; arg < 2 && i < s.size(); ++arg) {
            if (s[i] == '{') {
                const auto end = matching_brace_end(s, i);
                if (end == std::string::npos) {
                    break;
                }
                out.append(s, i, end - i);
                i = end;
            } else if (s[i] == '\\') {
                break;  // a command argument like \frac\pi2 is rare; leave it alone
            } else {
                out += '{';
                out += s[i++];
                out += '}';
            }
        }
    }
    return out;
}

std::string fix_sqrt(const std::string & s) {
    std::string out;
    const std::string_view cmd = "\\sqrt";
    std::size_t i = 0;
    while (i < s.size()) {
        if (s.compare(i, cmd.size(), cmd) == 0 && i + cmd.size() < s.size()) {
            const char next = s[i + cmd.size()];
            // After space removal "\sqrt x" reads "\sqrtx"; a single letter is the argument too.
            if (next != '{' && next != '[' && next != '\\') {
                out += cmd;
                out += '{';
                out += next;
                out += '}';
                i += cmd.size() + 1;
                continue;
            }
        }
        out += s[i++];
    }
    return out;
}

// "2.50" -> "2.5", "3.0" -> "3" for every decimal literal in the string.
std::string strip_trailing_zeros(const std::string & s) {
    std::string out;
    std::size_t i = 0;
    while (i < s.size()) {
        if (is_digit(s[i]) && (i == 0 || (!is_digit(s[i - 1]) && s[i - 1] != '.'))) {
            std::size_t j = i;
            while (j < s.size() && is_digit(s[j])) {
                ++j;
            }
            if (j + 1 < s.size() && s[j] == '.' && is_digit(s[j + 1])) {
                std::size_t k = j + 1;
                while (k < s.size() && is_digit(s[k])) {
                    ++k;
                }
                out += canonical_decimal(s.substr(i, k - i));
                i = k;
                continue;
            }
            out.append(s, i, j - i);
            i = j;
            continue;
        }
        out += s[i++];
    }
    return out;
}

bool is_simple_variable(std::string_view lhs) {
    if (lhs.size() == 1 && is_alpha(lhs[0])) {
        return true;
    }
    if (lhs.size() >= 3 && is_alpha(lhs[0]) && lhs[1] == '_') {
        return std::all_of(lhs.begin() + 2, lhs.end(), [](char c) { return is_alnum(c) || c == '{' || c == '}'; });
    }
    if (lhs.size() >= 2 && lhs[0] == '\\') {
        return std::all_of(lhs.begin() + 1, lhs.end(), is_alpha);
    }
    return false;
}

// Splits at commas that are not nested inside (), [], {}.
std::vector<std::string_view> split_top_level(std::string_view s) {
    std::vector<std::string_view> parts;
    int depth = 0;
    std::size_t start = 0;
    for (std::size_t i = 0; i < s.size(); ++i) {
        const char c = s[i];
        if (c == '(' || c == '[' || c == '{') {
            ++depth;
        } else if (c == ')' || c == ']' || c == '}') {
            --depth;
        } else if (c == ',' && depth == 0) {
            parts.push_back(s.substr(start, i - start));
            start = i + 1;
        }
    }
    parts.push_back(s.substr(start));
    return parts;
}

// True when the whole string is one ( ... ) / [ ... ] group, possibly with mixed ends
// such as the interval "(1,2]".
bool is_single_group(std::string_view s) {
    if (s.size() < 2 || (s.front() != '(' && s.front() != '[') || (s.back() != ')' && s.back() != ']')) {
        return false;
    }
    int depth = 0;
    for (std::size_t i = 0; i < s.size(); ++i) {
        const char c = s[i];
        if (c == '(' || c == '[' || c == '{') {
            ++depth;
        } else if (c == ')' || c == ']' || c == '}') {
            if (--depth == 0 && i + 1 != s.size()) {
                return false;
            }
        }
    }
    return depth == 0;
}

bool equal_normalized(std::string_view a, std::string_view b, int depth) {
    if (a.empty() || b.empty()) {
        return false;
    }
    if (a == b) {
        return true;
    }
    const auto x = parse_number(a);
    const auto y = parse_number(b);
    if (x && y) {
        return close_enough(*x, *y, 1e-6);
    }
    if (depth > 8) {
        return false;
    }
    if (is_single_group(a) && is_single_group(b)) {
        if (a.front() != b.front() || a.back() != b.back()) {
            return false;
        }
        const auto pa = split_top_level(a.substr(1, a.size() - 2));
        const auto pb = split_top_level(b.substr(1, b.size() - 2));
        if (pa.size() != pb.size()) {
            return false;
        }
        for (std::size_t i = 0; i < pa.size(); ++i) {
            if (!equal_normalized(pa[i], pb[i], depth + 1)) {
                return false;
            }
        }
        return true;
    }
    const auto pa = split_top_level(a);
    const auto pb = split_top_level(b);
    if (pa.size() > 1 && pa.size() == pb.size()) {
        for (std::size_t i = 0; i < pa.size(); ++i) {
            if (!equal_normalized(pa[i], pb[i], depth + 1)) {
                return false;
            }
        }
        return true;
    }
    return false;
}

}  // namespace

std::string normalize_math_answer(std::string_view answer) {
    std::string s(trim(answer));
    if (starts_with(s, "\\boxed") || starts_with(s, "\\fbox")) {
        if (auto inner = extract_boxed(s); inner && ends_with(s, "}")) {
            s = *inner;
        }
    }
    replace_all(s, "\n", " ");
    replace_all(s, "\\!", "");
    replace_all(s, "\\\\", "\\");
    remove_command(s, "\\displaystyle");
    replace_all(s, "\\dfrac", "\\frac");
    replace_all(s, "\\tfrac", "\\frac");
    remove_command(s, "\\left");
    remove_command(s, "\\right");
    replace_all(s, "^{\\circ}", "");
    replace_all(s, "^\\circ", "");
    replace_all(s, "\xC2\xB0", "");  // U+00B0 DEGREE SIGN
    replace_all(s, "\\$", "");
    replace_all(s, "$", "");
    handle_text_groups(s);
    replace_all(s, "\\%", "");
    replace_all(s, "%", "");
    for (std::string_view space : { "\\qquad", "\\quad" }) {
        remove_command(s, space);
    }
    for (std::string_view space : { "\\,", "\\;", "\\:", "\\ ", "~" }) {
        replace_all(s, space, "");
    }

    // A bare trailing unit word after a number ("10 cm", "5 inches"), before spaces vanish.
    {
        const auto t = trim(s);
        std::size_t i = 0;
        if (i < t.size() && t[i] == '-') {
            ++i;
        }
        const std::size_t num_start = i;
        if (!read_unsigned(t, i).empty() && i > num_start && i < t.size() && t[i] == ' ') {
            const auto rest = trim(t.substr(i));
            if (rest.size() >= 2 &&
                std::all_of(rest.begin(), rest.end(), [](char c) { return is_alpha(c) || c == ' '; })) {
                s = std::string(t.substr(0, i));
            }
        }
    }

    s.erase(std::remove_if(s.begin(), s.end(), is_space), s.end());
    replace_all(s, "\\leq", "\\le");
    replace_all(s, "\\geq", "\\ge");
    replace_all(s, "\\neq", "\\ne");

    if (std::count(s.begin(), s.end(), '=') == 1) {
        const auto eq = s.find('=');
        if (is_simple_variable(std::string_view(s).substr(0, eq))) {
            s = s.substr(eq + 1);
        }
    }

    // "x \in [1,2]" states the same set as "[1,2]".
    if (const auto in = s.find("\\in"); in != std::string::npos && in > 0 &&
                                         (in + 3 >= s.size() || !is_alpha(s[in + 3])) &&
                                         is_simple_variable(std::string_view(s).substr(0, in))) {
        s = s.substr(in + 3);
    }
    // Multiple-choice letters are written both as "(C)" and "C".
    if (s.size() == 3 && s[0] == '(' && is_alpha(s[1]) && s[2] == ')') {
        s = s.substr(1, 1);
    }

    while (!s.empty() && s.back() == '.') {
        s.pop_back();
    }
    if (!s.empty() && s[0] == '.') {
        s.insert(0, "0");
    }
    for (std::string_view p : { "{.", "(.", "[.", ",.", "-." }) {
        std::string fixed(p);
        fixed.insert(fixed.size() - 1, "0");
        replace_all(s, p, fixed);
    }
    s = fix_sqrt(s);
    s = fix_fracs(s);
    s = strip_trailing_zeros(s);
    return s;
}

bool math_equal(std::string_view a, std::string_view b) {
    const std::string na = normalize_math_answer(a);
    const std::string nb = normalize_math_answer(b);
    return equal_normalized(na, nb, 0);
}

std::optional<std::string> extract_math_answer(std::string_view response) {
    if (auto boxed = extract_boxed(response)) {
        return boxed;
    }
    const std::string lower = to_lower(response);
    const std::string_view phrase = "answer is";
    const auto pos = lower.rfind(phrase);
    if (pos == std::string::npos) {
        return std::nullopt;
    }
    auto rest = response.substr(pos + phrase.size());
    if (const auto nl = rest.find('\n'); nl != std::string_view::npos) {
        rest = rest.substr(0, nl);
    }
    rest = trim(rest);
    if (starts_with(rest, ":")) {
        rest = trim(rest.substr(1));
    }
    while (!rest.empty() && (rest.back() == '.' || rest.back() == '$')) {
        rest = trim(rest.substr(0, rest.size() - 1));
    }
    while (!rest.empty() && rest.front() == '$') {
        rest = trim(rest.substr(1));
    }
    if (rest.empty()) {
        return std::nullopt;
    }
    return std::string(rest);
}

bool grade_math(std::string_view response, std::string_view reference) {
    const auto answer = extract_math_answer(response);
    return answer && math_equal(*answer, reference);
}

// ---- HumanEval ----

namespace {

std::vector<std::string_view> split_lines(std::string_view s) {
    std::vector<std::string_view> lines;
    std::size_t start = 0;
    while (start <= s.size()) {
        const auto nl = s.find('\n', start);
        if (nl == std::string_view::npos) {
            lines.push_back(s.substr(start));
            break;
        }
        lines.push_back(s.substr(start, nl - start));
        start = nl + 1;
    }
    return lines;
}

bool defines_function(std::string_view line, std::string_view entry_point) {
    auto t = line;
    if (starts_with(t, "async ")) {
        t = trim(t.substr(6));
    }
    if (!starts_with(t, "def ")) {
        return false;
    }
    t = trim(t.substr(4));
    if (!starts_with(t, entry_point)) {
        return false;
    }
    t = trim(t.substr(entry_point.size()));
    return starts_with(t, "(");
}

// Column-0 lines that can legitimately follow or sit between function definitions.
bool continues_module(std::string_view line) {
    for (std::string_view p : { "def ", "async def ", "class ", "@", "import ", "from ", "#", ")", "]", "}" }) {
        if (starts_with(line, p)) {
            return true;
        }
    }
    return false;
}

bool is_indented(std::string_view line) {
    return !line.empty() && (line[0] == ' ' || line[0] == '\t');
}

// The code of the fenced block that defines entry_point, else of the first python (or
// untagged) block, else of the first block; the whole response when there is no fence.
std::string_view select_code(std::string_view response, std::string_view entry_point) {
    struct block {
        std::string_view lang;
        std::string_view code;
    };
    std::vector<block> blocks;
    std::size_t pos = 0;
    while ((pos = response.find("```", pos)) != std::string_view::npos) {
        const auto lang_start = pos + 3;
        auto nl = response.find('\n', lang_start);
        if (nl == std::string_view::npos) {
            break;
        }
        const auto lang = trim(response.substr(lang_start, nl - lang_start));
        const auto code_start = nl + 1;
        const auto close = response.find("```", code_start);
        const auto code_end = close == std::string_view::npos ? response.size() : close;
        blocks.push_back({ lang, response.substr(code_start, code_end - code_start) });
        if (close == std::string_view::npos) {
            break;  // an unterminated fence runs to the end of the response
        }
        pos = close + 3;
    }
    if (blocks.empty()) {
        return response;
    }
    for (const auto & b : blocks) {
        for (auto line : split_lines(b.code)) {
            if (defines_function(trim(line), entry_point)) {
                return b.code;
            }
        }
    }
    for (const auto & b : blocks) {
        const auto lang = to_lower(b.lang);
        if (lang.empty() || lang == "python" || lang == "py" || lang == "python3") {
            return b.code;
        }
    }
    return blocks.front().code;
}

}  // namespace

std::string extract_python_function(std::string_view response, std::string_view prompt,
                                    std::string_view entry_point) {
    const auto code = select_code(response, entry_point);
    const auto lines = split_lines(code);

    std::size_t def_line = lines.size();
    for (std::size_t i = 0; i < lines.size(); ++i) {
        if (!is_indented(lines[i]) && defines_function(lines[i], entry_point)) {
            def_line = i;
            break;
        }
    }
    const bool full_function = def_line < lines.size();

    std::size_t first_code = 0;
    while (first_code < lines.size() && trim(lines[first_code]).empty()) {
        ++first_code;
    }
    // A body that the model wrote without indentation has no column-0 boundary to stop at,
    // so it is re-indented and cut only at explicit markers.
    const bool unindented_body = !full_function && first_code < lines.size() && !is_indented(lines[first_code]);

    std::string kept;
    for (std::size_t i = 0; i < lines.size(); ++i) {
        const auto line = lines[i];
        const bool blank = trim(line).empty();
        const std::size_t scan_from = full_function ? def_line + 1 : 0;
        if (i >= scan_from && !blank && !is_indented(line)) {
            if (unindented_body) {
                bool stop = false;
                for (std::string_view marker : { "```", "if __name__", "print(", "assert ", "assert(", "check(",
                                                 "def ", "class ", ">>>" }) {
                    stop = stop || starts_with(line, marker);
                }
                if (stop) {
                    break;
                }
            } else if (!continues_module(line)) {
                break;
            }
        }
        if (unindented_body && !blank) {
            kept += "    ";
        }
        kept.append(line);
        kept += '\n';
    }

    std::string program;
    const auto trimmed_prompt = trim(prompt);
    if (full_function) {
        // The prompt carries imports and helpers the model may have omitted; redefining the
        // entry point afterwards is harmless, so it is prepended unless already echoed.
        if (trimmed_prompt.empty() || kept.find(std::string(trimmed_prompt)) == std::string::npos) {
            program.append(prompt);
            if (!program.empty() && program.back() != '\n') {
                program += '\n';
            }
            program += '\n';
        }
        program += kept;
    } else {
        program.append(prompt);
        if (!program.empty() && program.back() != '\n') {
            program += '\n';
        }
        program += kept;
    }
    return program;
}

namespace {

bool is_python_identifier(std::string_view s) {
    if (s.empty() || is_digit(s[0])) {
        return false;
    }
    return std::all_of(s.begin(), s.end(), [](char c) { return is_alnum(c) || c == '_'; });
}

// Minimal PATH for the child; also where a bare interpreter name is resolved, so the
// harness's own PATH (which may point into /root) does not leak into the sandbox.
constexpr const char * k_sandbox_path = "/usr/local/bin:/usr/bin:/bin";

std::string resolve_executable(const std::string & name) {
    if (name.find('/') != std::string::npos) {
        return name;
    }
    std::string_view dirs = k_sandbox_path;
    while (!dirs.empty()) {
        const auto colon = dirs.find(':');
        const auto dir = dirs.substr(0, colon);
        const std::string candidate = std::string(dir) + "/" + name;
        if (::access(candidate.c_str(), X_OK) == 0) {
            return candidate;
        }
        dirs = colon == std::string_view::npos ? std::string_view{} : dirs.substr(colon + 1);
    }
    return {};
}

struct scratch_dir {
    std::string path;
    ~scratch_dir() {
        if (!path.empty()) {
            std::error_code ec;
            std::filesystem::remove_all(path, ec);
        }
    }
};

struct fd_guard {
    int fd = -1;
    ~fd_guard() { reset(); }
    void reset() {
        if (fd >= 0) {
            ::close(fd);
            fd = -1;
        }
    }
};

// Stages reported by the child through the status pipe when set-up fails before exec.
enum child_stage : int {
    stage_stdio = 1,
    stage_chdir,
    stage_rlimit,
    stage_privileges,
    stage_prctl,
    stage_exec,
};

const char * stage_name(int stage) {
    switch (stage) {
        case stage_stdio: return "redirecting stdio";
        case stage_chdir: return "entering the scratch directory";
        case stage_rlimit: return "setting resource limits";
        case stage_privileges: return "dropping privileges";
        case stage_prctl: return "prctl";
        case stage_exec: return "executing the interpreter";
        default: return "unknown stage";
    }
}

[[noreturn]] void child_fail(int status_fd, int stage) {
    const int report[2] = { stage, errno };
    [[maybe_unused]] const auto n = ::write(status_fd, report, sizeof report);
    ::_exit(127);
}

struct child_plan {
    const char * scratch;
    const char * const * argv;
    const char * const * envp;
    int devnull;
    int out_write;
    int status_write;
    rlimit as, fsize, cpu, nproc, core, nofile;
    bool drop;
    uid_t uid;
    gid_t gid;
};

// Runs in the child between fork/clone and exec: only async-signal-safe calls.
[[noreturn]] void child_main(const child_plan & p) {
    ::setpgid(0, 0);
    if (::dup2(p.devnull, 0) < 0 || ::dup2(p.out_write, 1) < 0 || ::dup2(p.out_write, 2) < 0) {
        child_fail(p.status_write, stage_stdio);
    }
    if (::chdir(p.scratch) != 0) {
        child_fail(p.status_write, stage_chdir);
    }
    if (::setrlimit(RLIMIT_AS, &p.as) != 0 || ::setrlimit(RLIMIT_FSIZE, &p.fsize) != 0 ||
        ::setrlimit(RLIMIT_CPU, &p.cpu) != 0 || ::setrlimit(RLIMIT_NPROC, &p.nproc) != 0 ||
        ::setrlimit(RLIMIT_CORE, &p.core) != 0 || ::setrlimit(RLIMIT_NOFILE, &p.nofile) != 0) {
        child_fail(p.status_write, stage_rlimit);
    }
    if (p.drop) {
        if (::setgroups(0, nullptr) != 0 || ::setgid(p.gid) != 0 || ::setuid(p.uid) != 0) {
            child_fail(p.status_write, stage_privileges);
        }
        if (::setuid(0) == 0) {
            errno = EPERM;
            child_fail(p.status_write, stage_privileges);
        }
    }
    // After the credential change, because that clears the parent-death signal. no_new_privs
    // keeps set-uid binaries such as su from regaining root.
    if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
        child_fail(p.status_write, stage_prctl);
    }
    ::execve(p.argv[0], const_cast<char * const *>(p.argv), const_cast<char * const *>(p.envp));
    child_fail(p.status_write, stage_exec);
}

void append_capped(std::string & out, const char * data, std::size_t n) {
    constexpr std::size_t k_cap = 64 * 1024;
    out.append(data, n);
    if (out.size() > 2 * k_cap) {
        out.erase(0, out.size() - k_cap);
    }
}

void drain(int fd, std::string & out) {
    char buf[4096];
    for (;;) {
        const auto n = ::read(fd, buf, sizeof buf);
        if (n > 0) {
            append_capped(out, buf, static_cast<std::size_t>(n));
            continue;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        return;
    }
}

// bwrap reports a child killed by a signal as exit status 128 + signal; 0 when not that case.
int bwrap_signal(const std::string & bwrap, int status) {
    if (bwrap.empty() || !WIFEXITED(status)) {
        return 0;
    }
    const int code = WEXITSTATUS(status);
    return code > 128 && code < 128 + NSIG ? code - 128 : 0;
}

// Arguments that run `python_argv` under bubblewrap with a view of the system in which the
// scratch directory is the only writable place: /usr (and the merged-/usr links), /etc and the
// interpreter's prefix read-only, empty read-only / /tmp /dev/shm, a minimal /dev, the /proc of
// its own PID namespace, and new user, IPC, UTS, cgroup and network namespaces (only a
// loopback device of its own).
std::vector<std::string> bwrap_argv(const std::string & bwrap, const std::string & scratch,
                                    const std::vector<std::string> & python_argv) {
    namespace fs = std::filesystem;
    std::vector<std::string> a = { bwrap, "--unshare-all", "--die-with-parent", "--new-session",
                                   "--ro-bind", "/usr", "/usr" };
    for (const char * dir : { "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32" }) {
        std::error_code ec;
        const auto st = fs::symlink_status(dir, ec);
        if (ec) {
            continue;
        }
        if (fs::is_symlink(st)) {
            const auto target = fs::read_symlink(dir, ec);
            if (!ec) {
                a.insert(a.end(), { "--symlink", target.string(), dir });
            }
        } else if (fs::is_directory(st)) {
            a.insert(a.end(), { "--ro-bind", dir, dir });
        }
    }
    // An interpreter outside /usr (a virtual environment, /opt/python) needs its prefix.
    std::error_code ec;
    const auto real = fs::canonical(python_argv[0], ec);
    if (!ec && !starts_with(real.string(), "/usr/")) {
        const auto prefix = real.parent_path().parent_path().string();
        a.insert(a.end(), { "--ro-bind", prefix, prefix });
    }
    a.insert(a.end(), { "--ro-bind", "/etc", "/etc", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp",
                        "--bind", scratch, scratch, "--remount-ro", "/tmp", "--remount-ro", "/dev",
                        "--remount-ro", "/", "--chdir", scratch });
    a.insert(a.end(), python_argv.begin(), python_argv.end());
    return a;
}

// Runs `source` as program.py in a fresh scratch directory, under bwrap when `bwrap` is not
// empty, else in PID + network namespaces when allowed, else after a plain fork.
test_outcome run_python_source(const std::string & source, const std::string & python, const std::string & bwrap,
                               const sandbox_limits & limits) {
    test_outcome out;
    scratch_dir scratch;
    {
        std::error_code ec;
        auto base = std::filesystem::temp_directory_path(ec);
        if (ec) {
            base = "/tmp";
        }
        std::string templ = (base / "powersample-humaneval-XXXXXX").string();
        if (!::mkdtemp(templ.data())) {
            out.error_text = std::string("mkdtemp failed: ") + std::strerror(errno);
            return out;
        }
        scratch.path = templ;
    }
    const std::string program_path = scratch.path + "/program.py";
    {
        std::FILE * f = std::fopen(program_path.c_str(), "wb");
        const bool ok = f && std::fwrite(source.data(), 1, source.size(), f) == source.size();
        if (f) {
            std::fclose(f);
        }
        if (!ok) {
            out.error_text = "cannot write " + program_path;
            return out;
        }
    }

    const bool drop = limits.drop_privileges && ::geteuid() == 0;
    uid_t uid = 65534;
    gid_t gid = 65534;
    if (drop) {
        // Looked up here because getpwnam is not safe to call after fork.
        if (const passwd * pw = ::getpwnam("nobody")) {
            uid = pw->pw_uid;
            gid = pw->pw_gid;
        }
        if (::chown(scratch.path.c_str(), uid, gid) != 0) {
            out.error_text = std::string("chown of scratch directory failed: ") + std::strerror(errno);
            return out;
        }
    }

    const std::string home = "HOME=" + scratch.path;
    const std::string tmpdir = "TMPDIR=" + scratch.path;
    const std::string path_env = std::string("PATH=") + k_sandbox_path;
    // Only matters when no network namespace could be created: proxy-aware clients are
    // pointed at a closed port. Direct sockets are not blocked in that case.
    const char * const envp[] = { path_env.c_str(),
                                  home.c_str(),
                                  tmpdir.c_str(),
                                  "LANG=C.UTF-8",
                                  "PYTHONDONTWRITEBYTECODE=1",
                                  "PYTHONHASHSEED=0",
                                  "http_proxy=http://127.0.0.1:9",
                                  "https_proxy=http://127.0.0.1:9",
                                  "HTTP_PROXY=http://127.0.0.1:9",
                                  "HTTPS_PROXY=http://127.0.0.1:9",
                                  "ALL_PROXY=http://127.0.0.1:9",
                                  "no_proxy=",
                                  nullptr };
    const std::vector<std::string> python_argv = { python, "-I", "-B", "program.py" };
    const std::vector<std::string> args = bwrap.empty() ? python_argv : bwrap_argv(bwrap, scratch.path, python_argv);
    std::vector<const char *> argv;
    for (const auto & arg : args) {
        argv.push_back(arg.c_str());
    }
    argv.push_back(nullptr);

    const auto wall_ms = std::max<std::int64_t>(1, limits.wall_time.count());
    const rlim_t cpu = limits.cpu_seconds ? limits.cpu_seconds : static_cast<rlim_t>((wall_ms + 999) / 1000 + 1);

    fd_guard devnull{ ::open("/dev/null", O_RDONLY | O_CLOEXEC) };
    int out_pipe[2];
    int status_pipe[2];
    if (devnull.fd < 0 || ::pipe2(out_pipe, O_CLOEXEC) != 0) {
        out.error_text = std::string("cannot create pipes: ") + std::strerror(errno);
        return out;
    }
    fd_guard out_read{ out_pipe[0] };
    fd_guard out_write{ out_pipe[1] };
    if (::pipe2(status_pipe, O_CLOEXEC) != 0) {
        out.error_text = std::string("cannot create pipes: ") + std::strerror(errno);
        return out;
    }
    fd_guard status_read{ status_pipe[0] };
    fd_guard status_write{ status_pipe[1] };

    child_plan plan{};
    plan.scratch = scratch.path.c_str();
    plan.argv = argv.data();
    plan.envp = envp;
    plan.devnull = devnull.fd;
    plan.out_write = out_write.fd;
    plan.status_write = status_write.fd;
    plan.as = { limits.address_space_bytes, limits.address_space_bytes };
    plan.fsize = { limits.file_size_bytes, limits.file_size_bytes };
    plan.cpu = { cpu, cpu + 1 };
    plan.nproc = { limits.max_processes, limits.max_processes };
    plan.core = { 0, 0 };
    plan.nofile = { 256, 256 };
    plan.drop = drop;
    plan.uid = uid;
    plan.gid = gid;

    pid_t pid = -1;
    if (!bwrap.empty()) {
        // bwrap makes the namespaces itself, as whichever user runs it (nobody after the drop).
        pid = ::fork();
        if (pid == 0) {
            child_main(plan);
        }
        out.network_isolated = pid > 0;
        out.sandbox = "bwrap";
    } else {
        // A new PID namespace makes the child its init: when it exits or is killed, the kernel
        // kills every process it left behind, which a process-group kill cannot guarantee
        // (a child may setsid()). The new network namespace has only a down loopback device.
        if (limits.isolate_namespaces) {
            pid = static_cast<pid_t>(::syscall(SYS_clone, CLONE_NEWPID | CLONE_NEWNET | SIGCHLD, nullptr, nullptr,
                                               nullptr, nullptr));
            if (pid == 0) {
                child_main(plan);
            }
            out.network_isolated = pid > 0;
            out.sandbox = "namespaces";
        }
        if (pid < 0) {
            pid = ::fork();
            if (pid == 0) {
                child_main(plan);
            }
            out.sandbox = "fork";
        }
    }
    if (pid < 0) {
        out.error_text = std::string("fork failed: ") + std::strerror(errno);
        return out;
    }
    out.privileges_dropped = drop;
    ::setpgid(pid, pid);  // also done by the child; whichever runs first wins the race
    out_write.reset();
    status_write.reset();

    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(wall_ms);
    std::string output;
    int status = 0;

    int report[2] = { 0, 0 };
    ssize_t got = 0;
    do {
        got = ::read(status_read.fd, report, sizeof report);
    } while (got < 0 && errno == EINTR);
    if (got == static_cast<ssize_t>(sizeof report)) {
        ::kill(-pid, SIGKILL);
        ::waitpid(pid, &status, 0);
        out.error_text = std::string("sandbox set-up failed while ") + stage_name(report[0]) + ": " +
                         std::strerror(report[1]);
        return out;
    }

    ::fcntl(out_read.fd, F_SETFL, ::fcntl(out_read.fd, F_GETFL) | O_NONBLOCK);
    bool output_open = true;
    for (;;) {
        siginfo_t info{};
        if (::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid == pid) {
            break;
        }
        const auto now = std::chrono::steady_clock::now();
        if (now >= deadline) {
            out.timed_out = true;
            break;
        }
        const auto remaining = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now).count();
        const int wait_ms = static_cast<int>(std::min<std::int64_t>(remaining + 1, 10));
        if (output_open) {
            pollfd pfd{ out_read.fd, POLLIN, 0 };
            if (::poll(&pfd, 1, wait_ms) > 0) {
                char buf[4096];
                const auto n = ::read(out_read.fd, buf, sizeof buf);
                if (n > 0) {
                    append_capped(output, buf, static_cast<std::size_t>(n));
                } else if (n == 0) {
                    output_open = false;
                }
            }
        } else {
            ::poll(nullptr, 0, wait_ms);
        }
    }
    // Killing the group before reaping the leader keeps its id from being reused meanwhile.
    ::kill(-pid, SIGKILL);
    ::kill(pid, SIGKILL);
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    drain(out_read.fd, output);

    if (out.timed_out) {
        out.error_text = "timed out after " + std::to_string(wall_ms) + " ms";
    } else if (WIFEXITED(status) && bwrap_signal(bwrap, status) == 0) {
        const int code = WEXITSTATUS(status);
        out.passed = code == 0;
        if (!out.passed) {
            out.error_text = "exit status " + std::to_string(code);
        }
    } else if (WIFSIGNALED(status) || bwrap_signal(bwrap, status) > 0) {
        const int sig = WIFSIGNALED(status) ? WTERMSIG(status) : bwrap_signal(bwrap, status);
        // SIGXCPU, or SIGKILL at the hard CPU limit, means the CPU budget ran out.
        if (sig == SIGXCPU) {
            out.timed_out = true;
            out.error_text = "CPU time limit exceeded";
        } else if (sig == SIGXFSZ) {
            out.error_text = "file size limit exceeded";
        } else {
            out.error_text = std::string("killed by signal ") + std::to_string(sig) + " (" + ::strsignal(sig) + ")";
        }
    }
    if (!out.passed && !output.empty()) {
        constexpr std::size_t k_tail = 4096;
        if (output.size() > k_tail) {
            output.erase(0, output.size() - k_tail);
        }
        out.error_text += "\n" + output;
    }
    return out;
}

// Whether bwrap can build its sandbox here (user namespaces may be off, or a container may
// forbid them), tried once per process and set-up with a trivial program: a failure of the
// program under test must never be what moves grading to a weaker sandbox.
bool bwrap_works(const std::string & bwrap, const std::string & python, const sandbox_limits & limits) {
    static std::mutex mutex;
    static std::map<std::string, bool> works;
    const std::string key = bwrap + '\n' + python + '\n' + (limits.drop_privileges ? "drop" : "keep");
    std::lock_guard<std::mutex> lock(mutex);
    if (const auto it = works.find(key); it != works.end()) {
        return it->second;
    }
    sandbox_limits probe = limits;
    probe.wall_time = std::max(probe.wall_time, std::chrono::milliseconds(10000));
    return works[key] = run_python_source("import sys\n", python, bwrap, probe).passed;
}

}  // namespace

test_outcome run_humaneval_test(std::string_view program, std::string_view test_code, std::string_view entry_point,
                                const sandbox_limits & limits) {
    test_outcome out;
    if (!is_python_identifier(entry_point)) {
        out.error_text = "invalid entry_point '" + std::string(entry_point) + "': not a Python identifier";
        return out;
    }
    const std::string python = resolve_executable(limits.python);
    if (python.empty()) {
        out.error_text = "interpreter '" + limits.python + "' not found in " + k_sandbox_path;
        return out;
    }
    std::string source;
    source.reserve(program.size() + test_code.size() + entry_point.size() + 16);
    source.append(program).append("\n\n").append(test_code).append("\n\ncheck(").append(entry_point).append(")\n");
    std::string bwrap = limits.use_bwrap ? resolve_executable("bwrap") : std::string();
    if (!bwrap.empty() && !bwrap_works(bwrap, python, limits)) {
        bwrap.clear();
    }
    return run_python_source(source, python, bwrap, limits);
}

// ---- statistics ----

double pass_at_k(std::uint64_t n, std::uint64_t c, std::uint64_t k) {
    if (n == 0 || k == 0 || k > n || c > n) {
        throw std::invalid_argument("pass_at_k: need 0 <= c <= n and 1 <= k <= n (n=" + std::to_string(n) +
                                    ", c=" + std::to_string(c) + ", k=" + std::to_string(k) + ")");
    }
    if (n - c < k) {
        return 1.0;
    }
    // C(n-c, k)/C(n, k) = prod_{i=n-c+1}^{n} (1 - k/i); no large binomials are formed.
    double ratio = 1.0;
    for (std::uint64_t i = n - c + 1; i <= n; ++i) {
        ratio *= 1.0 - static_cast<double>(k) / static_cast<double>(i);
    }
    return 1.0 - ratio;
}

interval wilson_interval(std::uint64_t successes, std::uint64_t n, double z) {
    if (successes > n) {
        throw std::invalid_argument("wilson_interval: successes (" + std::to_string(successes) +
                                    ") exceed n (" + std::to_string(n) + ")");
    }
    if (n == 0) {
        return { 0.0, 1.0 };
    }
    const double nn = static_cast<double>(n);
    const double p = static_cast<double>(successes) / nn;
    const double z2 = z * z;
    const double denom = 1.0 + z2 / nn;
    const double center = (p + z2 / (2.0 * nn)) / denom;
    const double half = z * std::sqrt(p * (1.0 - p) / nn + z2 / (4.0 * nn * nn)) / denom;
    interval r{ std::max(0.0, center - half), std::min(1.0, center + half) };
    // Rounding can leave tiny non-zero bounds at the extremes; the exact values are 0 and 1.
    if (successes == 0) {
        r.lower = 0.0;
    }
    if (successes == n) {
        r.upper = 1.0;
    }
    return r;
}

}  // namespace powersample::eval
