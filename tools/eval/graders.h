// Answer extraction and grading for the evaluation harness. Everything here except
// run_humaneval_test is a pure function; none of the graders throws on odd model output
// (a response without an answer is simply wrong).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace powersample::eval {

// ---- numeric answers (GSM8K, MAWPS, SVAMP) ----

// Content of the last \boxed{...} or \fbox{...}, nested braces handled.
std::optional<std::string> extract_boxed(std::string_view response);

// The final numeric answer of a free-form response, as canonical text ("1234", "-0.5",
// "3/4"): the last \boxed{} if it holds a number, else the number after the last "####",
// else the number after the last "answer is"/"answer:" phrase, else the last number.
std::optional<std::string> extract_numeric_answer(std::string_view response);
std::optional<double> extract_numeric_value(std::string_view response);

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

// ---- MATH-style answers ----

// Canonical string form used for string comparison of MATH answers.
std::string normalize_math_answer(std::string_view answer);

// Equivalence of two MATH answers after normalisation: string equality, numeric equality
// of plain numbers and simple fractions, element-wise comparison of tuples/intervals with
// identical brackets.
bool math_equal(std::string_view a, std::string_view b);

// The answer of a MATH response: last \boxed{}, else the text after the last
// "answer is" on its line. nullopt when neither is present.
std::optional<std::string> extract_math_answer(std::string_view response);
bool grade_math(std::string_view response, std::string_view reference);

// ---- HumanEval ----

// Builds a complete program from a model response: the code of a ```python fence when
// present, else the raw text; the prompt is prepended (it carries imports and helper
// functions); trailing non-function text (a second fence, `if __name__`, `print(`, prose
// at column 0) is cut.
std::string extract_python_function(std::string_view response, std::string_view prompt,
                                    std::string_view entry_point);

struct sandbox_limits {
    std::chrono::milliseconds wall_time{ 10000 };
    std::uint64_t address_space_bytes = std::uint64_t{ 1 } << 30;
    std::uint64_t file_size_bytes = std::uint64_t{ 16 } << 20;
    // Only enforced for unprivileged users, i.e. after dropping to `nobody`; containment
    // as root relies on the PID namespace or the process group kill instead.
    std::uint64_t max_processes = 64;
    // RLIMIT_CPU in seconds; 0 derives it from wall_time.
    std::uint64_t cpu_seconds = 0;
    // Interpreter, looked up in the minimal PATH when it has no slash.
    std::string python = "python3";
    // Run under bubblewrap (`bwrap`, found in the minimal PATH) when it is installed and works
    // here: the code then sees its own filesystem (the scratch directory is the only writable
    // place; /usr and /etc read-only; empty read-only /tmp and /dev/shm; a /proc of its own PID
    // namespace) and has no network. Checked once per process with a trivial program.
    bool use_bwrap = true;
    // Otherwise (or with use_bwrap off) run in fresh network and PID namespaces when the kernel
    // permits it, else plain fork.
    bool isolate_namespaces = true;
    // When running as root, run the child as nobody/nogroup.
    bool drop_privileges = true;
};

struct test_outcome {
    bool passed = false;
    bool timed_out = false;
    // Diagnostics: the reason for failure and the tail of the program's output.
    std::string error_text;
    // What the sandbox actually achieved, so reports can state it honestly.
    bool network_isolated = false;
    bool privileges_dropped = false;
    // The isolation that ran: "bwrap", "namespaces" (PID + network) or "fork" (neither);
    // empty when nothing ran (a set-up error before the child started).
    std::string sandbox;
};

// Runs `program + "\n\n" + test_code + "\n\ncheck(" + entry_point + ")\n"` with
// `python3 -I` in a child process inside a fresh scratch directory (removed afterwards),
// under the given limits. Exit status 0 means passed. Sandbox set-up failures are reported
// in error_text with passed == false rather than thrown.
test_outcome run_humaneval_test(std::string_view program, std::string_view test_code, std::string_view entry_point,
                                const sandbox_limits & limits = {});

// ---- statistics ----

// Unbiased pass@k estimator 1 - C(n-c, k)/C(n, k), computed as a product for stability.
// Throws std::invalid_argument unless 0 <= c <= n and 1 <= k <= n.
double pass_at_k(std::uint64_t n, std::uint64_t c, std::uint64_t k);

struct interval {
    double lower = 0;
    double upper = 0;
};

// Wilson score interval for a binomial proportion; z = 1.96 gives 95%. n == 0 gives [0, 1].
interval wilson_interval(std::uint64_t successes, std::uint64_t n, double z = 1.96);

}  // namespace powersample::eval
