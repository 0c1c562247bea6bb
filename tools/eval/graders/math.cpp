// MATH-style answers: normalisation, equivalence and extraction.
#include "graders/math.h"
#include "graders/numeric.h"
#include "graders/scan.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace powersample::eval {

using namespace scan;

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
            const std::string content     = s.substr(open + 1, end - open - 2);
            const auto        prefix      = trim(std::string_view(s).substr(0, pos));
            std::string_view  suffix      = std::string_view(s).substr(end);
            std::size_t       drop_suffix = 0;
            for (std::string_view power : { "^{2}", "^{3}", "^2", "^3" }) {
                if (trim(suffix) == power) {
                    drop_suffix = suffix.size();
                    break;
                }
            }
            const auto trimmed_suffix = trim(suffix);
            const bool unit_like = !trim(content).empty() && std::all_of(content.begin(), content.end(), [](char c) {
                return is_alpha(c) || c == ' ' || c == '.';
            });
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
    std::string            out;
    std::size_t            i   = 0;
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
    std::string            out;
    const std::string_view cmd = "\\sqrt";
    std::size_t            i   = 0;
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
    int                           depth = 0;
    std::size_t                   start = 0;
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
        const auto  t = trim(s);
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
    const std::string      lower  = to_lower(response);
    const std::string_view phrase = "answer is";
    const auto             pos    = lower.rfind(phrase);
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

}  // namespace powersample::eval
