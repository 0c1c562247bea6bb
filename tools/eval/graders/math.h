// MATH-style answers. Pure functions; none throws on odd model output.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace powersample::eval {

// Canonical string form used for string comparison of MATH answers.
std::string normalize_math_answer(std::string_view answer);

// Equivalence of two MATH answers after normalisation: string equality, numeric equality
// of plain numbers and simple fractions, element-wise comparison of tuples/intervals with
// identical brackets.
bool math_equal(std::string_view a, std::string_view b);

// The answer of a MATH response: last \boxed{}, else the text after the last
// "answer is" on its line. nullopt when neither is present.
std::optional<std::string> extract_math_answer(std::string_view response);
bool                       grade_math(std::string_view response, std::string_view reference);

}  // namespace powersample::eval
