// Numeric answers (GSM8K, MAWPS, SVAMP): extraction of the final number and comparison.
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

// ---- numbers ----

struct number_token {
    std::size_t begin = 0;
    std::size_t end   = 0;
    std::string text;  // canonical: no commas, no trailing fractional zeros
};

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
            const auto end1  = open1 < s.size() && s[open1] == '{' ? matching_brace_end(s, open1) : std::string::npos;
            const auto end2  = end1 != std::string::npos && end1 < s.size() && s[end1] == '{'
                                   ? matching_brace_end(s, end1)
                                   : std::string::npos;
            if (end2 == std::string::npos) {
                pos = open1;
                continue;
            }
            const std::string num(trim(std::string_view(s).substr(open1 + 1, end1 - open1 - 2)));
            const std::string den(trim(std::string_view(s).substr(end1 + 1, end2 - end1 - 2)));
            auto              plain = [](const std::string & t) {
                std::size_t       i     = (!t.empty() && t[0] == '-') ? 1 : 0;
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
    std::size_t               i = 0;
    while (i < s.size()) {
        const bool starts_number = is_digit(s[i]) || (s[i] == '.' && i + 1 < s.size() && is_digit(s[i + 1]) &&
                                                      (i == 0 || !is_digit(s[i - 1])));
        if (!starts_number) {
            ++i;
            continue;
        }
        const std::size_t start = i;
        std::string       text  = read_unsigned(s, i);
        if (i + 1 < s.size() && s[i] == '/' && is_digit(s[i + 1])) {
            std::size_t       j   = i + 1;
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

}  // namespace

std::optional<std::string> extract_boxed(std::string_view response) {
    std::optional<std::string> best;
    std::size_t                best_pos = 0;
    for (std::string_view cmd : { "\\boxed", "\\fbox" }) {
        for (auto pos = response.rfind(cmd); pos != std::string_view::npos;
             pos      = pos == 0 ? std::string_view::npos : response.rfind(cmd, pos - 1)) {
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
            best     = std::string(trim(response.substr(open + 1, end - open - 2)));
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
    s                  = latex_fractions_to_slash(s);
    std::string_view v = trim(s);
    for (bool changed = true; changed && !v.empty();) {
        changed = false;
        for (std::string_view suffix : { "\\%", "%", "\\$", "$", "." }) {
            if (ends_with(v, suffix)) {
                v       = trim(v.substr(0, v.size() - suffix.size()));
                changed = true;
            }
        }
    }
    bool negative       = false;
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
        v        = v.substr(1);
    } else if (starts_with(v, "\xE2\x88\x92")) {
        negative = true;
        v        = v.substr(3);
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
    std::size_t i     = 0;
    auto        value = read_value(v, i);
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
    const std::string text        = latex_fractions_to_slash(response);
    auto              first_after = [&](std::size_t pos) -> std::optional<std::string> {
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
    std::size_t       best  = std::string::npos;
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
    const auto ref       = parse_number(reference);
    if (!candidate || !ref) {
        return false;
    }
    if (close_enough(*candidate, *ref, 1e-6)) {
        return true;
    }
    const auto r   = trim(reference);
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

}  // namespace powersample::eval
