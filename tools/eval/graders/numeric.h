// Numeric answers (GSM8K, MAWPS, SVAMP). Pure functions; none throws on odd model output (a
// response without an answer is simply wrong).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace powersample::eval {

// Content of the last \boxed{...} or \fbox{...}, nested braces handled.
std::optional<std::string> extract_boxed(std::string_view response);

// The final numeric answer of a free-form response, as canonical text ("1234", "-0.5",
// "3/4"): the last \boxed{} if it holds a number, else the number after the last "####",
// else the number after the last "answer is"/"answer:" phrase, else the last number.
std::optional<std::string> extract_numeric_answer(std::string_view response);
std::optional<double>      extract_numeric_value(std::string_view response);

// Parses a whole string as one number: sign, "$", thousands commas ("1,234"), decimals,
// a trailing period or "%", fractions "3/4" and \frac{3}{4}. Anything else → nullopt.
std::optional<double> parse_number(std::string_view text);

// True when both parse as numbers within a relative tolerance; false otherwise. Two
// integral values must be exactly equal, so large integers are not matched off by one.
bool numeric_equal(std::string_view a, std::string_view b, double rel_tol = 1e-6);

// Extracts the answer from `response` and compares it to `reference`. A reference with
// five or more decimals is treated as rounded (MAWPS stores 10/3 as 3.33333), so a
// candidate that rounds to it at that precision also counts.
bool grade_numeric(std::string_view response, std::string_view reference);

}  // namespace powersample::eval
