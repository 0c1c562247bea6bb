#include "datasets.h"
#include "graders.h"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace fs = std::filesystem;
using namespace powersample::eval;
using namespace std::chrono_literals;

// ---- extract_boxed ----

TEST(ExtractBoxed, LastBoxWithNestedBraces) {
    EXPECT_EQ(extract_boxed("so \\boxed{1} and finally \\boxed{\\frac{a}{b^{2}}}."), "\\frac{a}{b^{2}}");
    EXPECT_EQ(extract_boxed("\\boxed{ 42 }"), "42");
    EXPECT_EQ(extract_boxed("\\fbox{7}"), "7");
    EXPECT_EQ(extract_boxed("\\boxed{1} then \\fbox{2}"), "2");
    EXPECT_EQ(extract_boxed("\\fbox{2} then \\boxed{3}"), "3");
    EXPECT_EQ(extract_boxed("\\boxed {5}"), "5");
    EXPECT_EQ(extract_boxed("set \\boxed{\\{1,2\\}}"), "\\{1,2\\}");
}

TEST(ExtractBoxed, NoneOrBroken) {
    EXPECT_EQ(extract_boxed(""), std::nullopt);
    EXPECT_EQ(extract_boxed("the answer is 5"), std::nullopt);
    EXPECT_EQ(extract_boxed("\\boxed"), std::nullopt);
    EXPECT_EQ(extract_boxed("\\boxed{unterminated"), std::nullopt);
    EXPECT_EQ(extract_boxed("\\boxed{4} then \\boxed{cut off"), "4");
}

// ---- numeric answers ----

TEST(ExtractNumeric, Priorities) {
    EXPECT_EQ(extract_numeric_answer("First 3, then 4, so \\boxed{12} apples; 99 total"), "12");
    EXPECT_EQ(extract_numeric_answer("5 + 6 = 11\n#### 11\nextra 3"), "11");
    EXPECT_EQ(extract_numeric_answer("We get 5 and 6. The answer is 30 because 5*6."), "30");
    EXPECT_EQ(extract_numeric_answer("Final Answer: 8 (from 2*4)"), "8");
    EXPECT_EQ(extract_numeric_answer("She has 3 cats and 4 dogs, 7 pets"), "7");
    EXPECT_EQ(extract_numeric_answer("\\boxed{x = 5}"), "5");
    // A box without a number falls through to the other strategies.
    EXPECT_EQ(extract_numeric_answer("\\boxed{A} answer is 3"), "3");
}

TEST(ExtractNumeric, NumberFormats) {
    EXPECT_EQ(extract_numeric_answer("The total is $1,234."), "1234");
    EXPECT_EQ(extract_numeric_answer("It costs $1,234,567.50 in all"), "1234567.5");
    EXPECT_EQ(extract_numeric_answer("The temperature is -5 degrees"), "-5");
    EXPECT_EQ(extract_numeric_answer("loss of -$20"), "-20");
    EXPECT_EQ(extract_numeric_answer("The answer is 3.75."), "3.75");
    EXPECT_EQ(extract_numeric_answer("The answer is 12.0"), "12");
    EXPECT_EQ(extract_numeric_answer("about .5 of it"), "0.5");
    EXPECT_EQ(extract_numeric_answer("\\boxed{\\$18}"), "18");
    EXPECT_EQ(extract_numeric_answer("\\boxed{18 \\text{ dollars}}"), "18");
    EXPECT_EQ(extract_numeric_answer("\\boxed{1{,}000}"), "1000");
    EXPECT_EQ(extract_numeric_answer("\\boxed{\\frac{3}{4}}"), "3/4");
    EXPECT_EQ(extract_numeric_answer("\\boxed{-\\dfrac{3}{4}}"), "-3/4");
    EXPECT_EQ(extract_numeric_answer("ratio 3/4"), "3/4");
    EXPECT_EQ(extract_numeric_answer("50%"), "50");
    EXPECT_EQ(extract_numeric_answer("\xE2\x88\x92"
                                     "7 is it"),
              "-7");
}

TEST(ExtractNumeric, ListsAndSubtraction) {
    // "1, 2, 3" is a list, not one thousand-separated number.
    EXPECT_EQ(extract_numeric_answer("values 1, 2, 3"), "3");
    EXPECT_EQ(extract_numeric_answer("12,34"), "34");
    // A minus between numbers is subtraction, so the result is positive.
    EXPECT_EQ(extract_numeric_answer("10-3 = 7"), "7");
    EXPECT_EQ(extract_numeric_answer("10-3"), "3");
}

TEST(ExtractNumeric, NoAnswer) {
    EXPECT_EQ(extract_numeric_answer(""), std::nullopt);
    EXPECT_EQ(extract_numeric_answer("I do not know."), std::nullopt);
    EXPECT_EQ(extract_numeric_value("none"), std::nullopt);
    EXPECT_EQ(extract_numeric_value("so 3/4"), 0.75);
}

TEST(ParseNumber, Accepts) {
    EXPECT_EQ(parse_number("12"), 12.0);
    EXPECT_EQ(parse_number(" -12.5 "), -12.5);
    EXPECT_EQ(parse_number("+3"), 3.0);
    EXPECT_EQ(parse_number("1,234"), 1234.0);
    EXPECT_EQ(parse_number("$1,234.5"), 1234.5);
    EXPECT_EQ(parse_number("-$5"), -5.0);
    EXPECT_EQ(parse_number("\\$5"), 5.0);
    EXPECT_EQ(parse_number("18."), 18.0);
    EXPECT_EQ(parse_number("50%"), 50.0);
    EXPECT_EQ(parse_number("50\\%"), 50.0);
    EXPECT_EQ(parse_number("3/4"), 0.75);
    EXPECT_EQ(parse_number("-3/4"), -0.75);
    EXPECT_EQ(parse_number("\\frac{1}{2}"), 0.5);
    EXPECT_EQ(parse_number("-\\frac{1}{4}"), -0.25);
    EXPECT_EQ(parse_number("\\dfrac{-1}{4}"), -0.25);
    EXPECT_EQ(parse_number(".5"), 0.5);
    EXPECT_EQ(parse_number("1{,}000"), 1000.0);
}

TEST(ParseNumber, Rejects) {
    for (const char * s :
         { "", "abc", "1/0", "12a", "1,23", "1 2", "3.4.5", "--3", ".", "$", "\\frac{1}{x}", "1e5", "(1,2)" }) {
        EXPECT_EQ(parse_number(s), std::nullopt) << s;
    }
}

TEST(NumericEqual, EqualPairs) {
    const std::vector<std::pair<const char *, const char *>> pairs{
        { "12", "12.0" },    { "12", "12.00" },          { "3/4", "0.75" },
        { "1,234", "1234" }, { "-0.5", "-1/2" },         { "$18", "18" },
        { "0", "-0" },       { "0.1", "0.10000000001" }, { "\\frac{1}{3}", "0.333333333" },
    };
    for (const auto & [a, b] : pairs) {
        EXPECT_TRUE(numeric_equal(a, b)) << a << " vs " << b;
        EXPECT_TRUE(numeric_equal(b, a)) << b << " vs " << a;
    }
}

TEST(NumericEqual, UnequalPairs) {
    const std::vector<std::pair<const char *, const char *>> pairs{
        { "12", "13" },   { "2", "-2" }, { "0.75", "0.76" }, { "1/3", "0.333" },   { "1", "1.00001" },
        { "abc", "abc" }, { "", "" },    { "5", "" },        { "1e6", "1000000" }, { "1450001", "1,450,000" },
    };
    for (const auto & [a, b] : pairs) {
        EXPECT_FALSE(numeric_equal(a, b)) << a << " vs " << b;
    }
    EXPECT_TRUE(numeric_equal("1", "1.00001", 1e-4));
    EXPECT_TRUE(numeric_equal("1450000.0000001", "1450000"));
}

TEST(GradeNumeric, EndToEnd) {
    EXPECT_TRUE(grade_numeric("... so she makes 9 * 2 = $18 every day.\n#### 18", "18"));
    EXPECT_TRUE(grade_numeric("The answer is $70,000.", "70000"));
    EXPECT_TRUE(grade_numeric("\\boxed{-10}", "-10"));
    EXPECT_FALSE(grade_numeric("\\boxed{10}", "-10"));
    EXPECT_FALSE(grade_numeric("", "5"));
    EXPECT_FALSE(grade_numeric("no idea", "5"));
    EXPECT_FALSE(grade_numeric("5", "not a number"));
}

TEST(GradeNumeric, RoundedReferences) {
    // MAWPS stores 10/3 as 3.33333.
    EXPECT_TRUE(grade_numeric("10/3", "3.33333"));
    EXPECT_TRUE(grade_numeric("3.333333333", "3.33333"));
    EXPECT_TRUE(grade_numeric("2/3", "0.6666666667"));
    EXPECT_FALSE(grade_numeric("3.33", "3.33333"));
    EXPECT_FALSE(grade_numeric("3.3334", "3.33333"));
    // Short references are exact; no rounding slack.
    EXPECT_FALSE(grade_numeric("0.7249", "0.72"));
}

// ---- MATH ----

TEST(NormalizeMath, Canonicalises) {
    EXPECT_EQ(normalize_math_answer(" \\dfrac{1}{2} "), "\\frac{1}{2}");
    EXPECT_EQ(normalize_math_answer("\\frac12"), "\\frac{1}{2}");
    EXPECT_EQ(normalize_math_answer("\\frac1{x}"), "\\frac{1}{x}");
    EXPECT_EQ(normalize_math_answer("\\sqrt2"), "\\sqrt{2}");
    EXPECT_EQ(normalize_math_answer("\\left( 3, \\frac{\\pi}{2} \\right)"), "(3,\\frac{\\pi}{2})");
    EXPECT_EQ(normalize_math_answer("10\\text{ cm}"), "10");
    EXPECT_EQ(normalize_math_answer("10\\text{ cm}^2"), "10");
    EXPECT_EQ(normalize_math_answer("5\\mbox{ inches}"), "5");
    EXPECT_EQ(normalize_math_answer("\\text{Evelyn}"), "Evelyn");
    EXPECT_EQ(normalize_math_answer("\\text{(C)}"), "C");
    EXPECT_EQ(normalize_math_answer("x \\in [-2, 7]"), "[-2,7]");
    EXPECT_EQ(normalize_math_answer("\\infty"), "\\infty");
    EXPECT_EQ(normalize_math_answer("90^\\circ"), "90");
    EXPECT_EQ(normalize_math_answer("90^{\\circ}"), "90");
    EXPECT_EQ(normalize_math_answer("x = 5"), "5");
    EXPECT_EQ(normalize_math_answer("2.50"), "2.5");
    EXPECT_EQ(normalize_math_answer("\\$1.50"), "1.5");
    EXPECT_EQ(normalize_math_answer("50\\%"), "50");
    EXPECT_EQ(normalize_math_answer(".5"), "0.5");
    EXPECT_EQ(normalize_math_answer("1\\!000"), "1000");
    EXPECT_EQ(normalize_math_answer("a \\, b\\;c"), "abc");
    EXPECT_EQ(normalize_math_answer("x \\to \\infty"), "x\\to\\infty");
    EXPECT_EQ(normalize_math_answer("\\boxed{7}"), "7");
    EXPECT_EQ(normalize_math_answer("12 inches"), "12");
    EXPECT_EQ(normalize_math_answer("x \\rightarrow 1"), "x\\rightarrow1");
    EXPECT_EQ(normalize_math_answer("y \\leq 3"), "y\\le3");
    EXPECT_EQ(normalize_math_answer(""), "");
}

TEST(MathEqual, PairsThatMustBeEqual) {
    const std::vector<std::pair<const char *, const char *>> pairs{
        { "\\frac{1}{2}", "\\dfrac{1}{2}" },
        { "\\frac{1}{2}", "\\tfrac12" },
        { "\\frac12", "\\frac{1}{2}" },
        { "0.5", "\\frac{1}{2}" },
        { "1/2", "\\frac{1}{2}" },
        { "-\\frac{1}{2}", "-0.5" },
        { "\\sqrt2", "\\sqrt{2}" },
        { "2\\sqrt{3}", "2 \\sqrt 3" },
        { "2.50", "2.5" },
        { "3", "3.0" },
        { "10\\text{ cm}", "10" },
        { "5 \\mbox{ inches}", "5" },
        { "90^\\circ", "90" },
        { "90^{\\circ}", "90" },
        { "x = 3", "3" },
        { "k=\\frac{3}{4}", "0.75" },
        { "50\\%", "50" },
        { "\\$5", "5" },
        { "(1,2)", "(1, 2)" },
        { "\\left( 3, \\frac{\\pi}{2} \\right)", "(3,\\frac{\\pi}{2})" },
        { "(0.5, 2)", "(\\frac{1}{2}, 2.0)" },
        { "(1,2]", "( 1 , 2 ]" },
        { "[-1, \\frac{3}{2})", "[-1,1.5)" },
        { "1, 2, 3", "1,2,3" },
        { "\\text{Evelyn}", "Evelyn" },
        { "p - q", "p-q" },
        { "\\frac{14}{3}", "14/3" },
        { "1,000", "1000" },
        { "\\boxed{4}", "4" },
        { "\\frac{\\sqrt{3}}{2}", "\\dfrac{\\sqrt3}{2}" },
        { "y \\geq 2", "y\\ge2" },
        { "x \\in [-2, 7]", "[-2,7]" },
        { "\\text{(C)}", "C" },
        { "(-\\infty, 3]", "(-\\infty,3]" },
    };
    for (const auto & [a, b] : pairs) {
        EXPECT_TRUE(math_equal(a, b)) << a << " vs " << b << "  (" << normalize_math_answer(a) << " | "
                                      << normalize_math_answer(b) << ")";
        EXPECT_TRUE(math_equal(b, a)) << b << " vs " << a;
    }
}

TEST(MathEqual, PairsThatMustNotBeEqual) {
    const std::vector<std::pair<const char *, const char *>> pairs{
        { "\\frac{1}{2}", "\\frac{1}{3}" },
        { "(1,2)", "[1,2]" },
        { "(1,2]", "(1,2)" },
        { "2", "-2" },
        { "\\sqrt{2}", "2" },
        { "\\sqrt{2}", "\\sqrt{3}" },
        { "(1,2)", "(2,1)" },
        { "(1,2)", "(1,2,3)" },
        { "1,2", "1,3" },
        { "0.5", "\\frac{1}{3}" },
        { "x^2", "x^3" },
        { "\\pi", "3.14159" },
        { "10", "100" },
        { "", "" },
        { "5", "" },
        { "A", "B" },
        { "\\frac{1}{2}", "\\frac{2}{1}" },
        { "2x", "2" },
        { "(1,2)\\cup(3,4)", "(1,2)\\cup(3,5)" },
        { "(-\\infty, 3]", "(-\\infty,3)" },
        { "\\text{(C)}", "D" },
    };
    for (const auto & [a, b] : pairs) {
        EXPECT_FALSE(math_equal(a, b)) << a << " vs " << b << "  (" << normalize_math_answer(a) << " | "
                                       << normalize_math_answer(b) << ")";
        EXPECT_FALSE(math_equal(b, a)) << b << " vs " << a;
    }
}

TEST(GradeMath, EndToEnd) {
    EXPECT_TRUE(grade_math("Thus $r = 3$, so the point is $\\boxed{\\left(3, \\frac{\\pi}{2}\\right)}$.",
                           "\\left( 3, \\frac{\\pi}{2} \\right)"));
    EXPECT_TRUE(grade_math("So the answer is: \\frac{14}{3}.", "\\frac{14}{3}"));
    EXPECT_TRUE(grade_math("The final answer is $9$.\nDone.", "9"));
    EXPECT_FALSE(grade_math("I think it is 9", "9"));  // no boxed answer or answer phrase
    EXPECT_FALSE(grade_math("", "9"));
    EXPECT_FALSE(grade_math("\\boxed{8}", "9"));
    EXPECT_EQ(extract_math_answer("The answer is $\\frac{1}{2}$."), "\\frac{1}{2}");
    EXPECT_EQ(extract_math_answer("nothing"), std::nullopt);
}

// Every MATH500 reference is given twice (last \boxed{} and "The answer is:"); the two must
// agree under math_equal, which exercises the normaliser on 500 real answers.
TEST(GradeMath, Math500BoxedAgreesWithAnswerLine) {
    const fs::path shared = POWERSAMPLE_SHARED_DATA_DIR;
    if (!fs::exists(shared / "math500_test.jsonl")) {
        GTEST_SKIP() << "shared datasets not present";
    }
    const auto r = load_builtin_dataset("math500", shared);
    ASSERT_EQ(r.problems.size(), 500u);
    int disagree = 0;
    for (const auto & p : r.problems) {
        const std::string answer = p.raw.at("answer");
        const auto        pos    = answer.rfind("The answer is:");
        ASSERT_NE(pos, std::string::npos) << p.id;
        const std::string line = answer.substr(pos + 14);
        if (!math_equal(p.reference, line)) {
            ++disagree;
            ADD_FAILURE() << p.id << ": " << p.reference << " vs " << line;
        }
        EXPECT_TRUE(grade_math("\\boxed{" + p.reference + "}", p.reference)) << p.id;
    }
    EXPECT_EQ(disagree, 0);
}

// ---- HumanEval extraction ----

namespace {

const char * k_prompt =
    "from typing import List\n\n\ndef add(xs: List[int]) -> int:\n    \"\"\" Sum the list.\n    >>> add([1, 2])\n"
    "    3\n    \"\"\"\n";

}  // namespace

TEST(ExtractPython, BodyOnlyCompletionGetsPrompt) {
    const auto prog = extract_python_function("    return sum(xs)\n", k_prompt, "add");
    EXPECT_EQ(prog, std::string(k_prompt) + "    return sum(xs)\n\n");
}

TEST(ExtractPython, BodyStopsAtTopLevelCode) {
    const auto prog = extract_python_function(
        "    return sum(xs)\n\n\nif __name__ == '__main__':\n    print(add([1]))\n", k_prompt, "add");
    EXPECT_EQ(prog, std::string(k_prompt) + "    return sum(xs)\n\n\n");
    const auto prog2 = extract_python_function("    return sum(xs)\nprint(add([1, 2]))\n", k_prompt, "add");
    EXPECT_EQ(prog2, std::string(k_prompt) + "    return sum(xs)\n");
    const auto prog3 = extract_python_function("    return sum(xs)\nThis function sums the list.\n", k_prompt, "add");
    EXPECT_EQ(prog3, std::string(k_prompt) + "    return sum(xs)\n");
}

TEST(ExtractPython, BodyKeepsHelperFunctions) {
    const auto prog =
        extract_python_function("    return helper(xs)\n\ndef helper(v):\n    return sum(v)\n", k_prompt, "add");
    EXPECT_EQ(prog, std::string(k_prompt) + "    return helper(xs)\n\ndef helper(v):\n    return sum(v)\n\n");
}

TEST(ExtractPython, FencedFullFunction) {
    const std::string response =
        "Here is the solution:\n```python\nfrom typing import List\n\ndef add(xs: List[int]) -> int:\n"
        "    return sum(xs)\n```\nIt works because sum adds.\n```python\nprint(add([1]))\n```\n";
    const auto prog = extract_python_function(response, k_prompt, "add");
    EXPECT_EQ(prog, std::string(k_prompt) +
                        "\nfrom typing import List\n\ndef add(xs: List[int]) -> int:\n"
                        "    return sum(xs)\n\n");
}

TEST(ExtractPython, FencedFullFunctionWithTrailingScript) {
    const std::string response = "```py\ndef add(xs):\n    return sum(xs)\n\nassert add([1]) == 1\nprint('ok')\n```";
    const auto        prog     = extract_python_function(response, k_prompt, "add");
    EXPECT_EQ(prog, std::string(k_prompt) + "\ndef add(xs):\n    return sum(xs)\n\n");
}

TEST(ExtractPython, PromptAlreadyEchoedIsNotDuplicated) {
    const std::string response = std::string(k_prompt) + "    return sum(xs)\n";
    const auto        prog     = extract_python_function(response, k_prompt, "add");
    EXPECT_EQ(prog, response + "\n");
}

TEST(ExtractPython, UnterminatedFenceAndUnindentedBody) {
    const auto prog = extract_python_function("```python\n    return sum(xs)\n", k_prompt, "add");
    EXPECT_EQ(prog, std::string(k_prompt) + "    return sum(xs)\n\n");
    const auto prog2 = extract_python_function("total = sum(xs)\nreturn total\nprint(1)\n", k_prompt, "add");
    EXPECT_EQ(prog2, std::string(k_prompt) + "    total = sum(xs)\n    return total\n");
}

TEST(ExtractPython, EmptyResponseYieldsPromptOnly) {
    EXPECT_EQ(extract_python_function("", k_prompt, "add"), std::string(k_prompt) + "\n");
}

// ---- HumanEval execution ----

namespace {

const char * k_test = "def check(candidate):\n    assert candidate([1, 2]) == 3\n    assert candidate([]) == 0\n";

std::string with_body(const std::string & body) { return std::string(k_prompt) + body; }

sandbox_limits fast_limits() {
    sandbox_limits l;
    l.wall_time = 5s;
    return l;
}

// A name unique to this test process, for files and processes the sandboxed code may leave.
std::string marker(const std::string & what) { return "ps-sandbox-" + what + "-" + std::to_string(::getpid()); }

// Python lines (at `indent`) that try to leave files starting with `name` in /tmp and /dev/shm,
// ignoring refusals.
std::string leave_files(const std::string & name, const std::string & indent) {
    std::string out;
    for (const char * dir : { "/tmp/", "/dev/shm/" }) {
        out += indent + "try:\n" + indent + "    open('" + dir + name + "-%d' % os.getpid(), 'w').write('x')\n" +
               indent + "except OSError:\n" + indent + "    pass\n";
    }
    return out;
}

// Whether anything starting with `name` is in the host's /tmp or /dev/shm; removes it if so.
bool leaves_files(const std::string & name) {
    bool found = false;
    for (const char * dir : { "/tmp", "/dev/shm" }) {
        std::error_code ec;
        for (const auto & e : fs::directory_iterator(dir, ec)) {
            if (e.path().filename().string().rfind(name, 0) == 0) {
                found = true;
                fs::remove_all(e.path(), ec);
            }
        }
    }
    return found;
}

// Whether a process whose argv[0] is `name` is still running on the host, allowing the kernel
// a moment to finish tearing down a PID namespace.
bool process_survives(const std::string & name) {
    // Up to 10 s: the kernel tears a PID namespace down after its init exits, and on a loaded
    // machine (the test suite runs two at a time beside other work) that has taken over 1 s.
    for (int attempt = 0; attempt < 200; ++attempt) {
        bool            found = false;
        std::error_code ec;
        for (const auto & e : fs::directory_iterator("/proc", ec)) {
            std::ifstream in(e.path() / "cmdline");
            std::string   argv0;
            if (std::getline(in, argv0, '\0') && argv0 == name) {
                found = true;
            }
        }
        if (!found) {
            return false;
        }
        ::usleep(50'000);
    }
    return true;
}

}  // namespace

TEST(RunHumanEval, CorrectSolutionPasses) {
    const auto r = run_humaneval_test(with_body("    return sum(xs)\n"), k_test, "add", fast_limits());
    EXPECT_TRUE(r.passed) << r.error_text;
    EXPECT_FALSE(r.timed_out);
    EXPECT_TRUE(r.error_text.empty()) << r.error_text;
}

TEST(RunHumanEval, WrongSolutionFails) {
    const auto r = run_humaneval_test(with_body("    return 3\n"), k_test, "add", fast_limits());
    EXPECT_FALSE(r.passed);
    EXPECT_FALSE(r.timed_out);
    EXPECT_NE(r.error_text.find("exit status 1"), std::string::npos) << r.error_text;
    EXPECT_NE(r.error_text.find("AssertionError"), std::string::npos) << r.error_text;
}

TEST(RunHumanEval, SyntaxErrorFails) {
    const auto r = run_humaneval_test(with_body("    return sum(xs\n"), k_test, "add", fast_limits());
    EXPECT_FALSE(r.passed);
    EXPECT_NE(r.error_text.find("SyntaxError"), std::string::npos) << r.error_text;
}

TEST(RunHumanEval, InvalidEntryPointIsRejected) {
    const auto r = run_humaneval_test(with_body("    return sum(xs)\n"), k_test, "add); import os; (", fast_limits());
    EXPECT_FALSE(r.passed);
    EXPECT_NE(r.error_text.find("invalid entry_point"), std::string::npos) << r.error_text;
}

TEST(RunHumanEval, MissingInterpreterIsReported) {
    auto l       = fast_limits();
    l.python     = "no-such-python-interpreter";
    const auto r = run_humaneval_test(with_body("    return sum(xs)\n"), k_test, "add", l);
    EXPECT_FALSE(r.passed);
    EXPECT_NE(r.error_text.find("not found"), std::string::npos) << r.error_text;
}

TEST(RunHumanEval, InfiniteLoopTimesOut) {
    sandbox_limits l;
    l.wall_time        = 1s;
    const auto start   = std::chrono::steady_clock::now();
    const auto r       = run_humaneval_test(with_body("    while True:\n        pass\n"), k_test, "add", l);
    const auto elapsed = std::chrono::steady_clock::now() - start;
    EXPECT_FALSE(r.passed);
    EXPECT_TRUE(r.timed_out) << r.error_text;
    EXPECT_LT(elapsed, 3s);
    EXPECT_GE(elapsed, 900ms);
}

TEST(RunHumanEval, ForkBombIsContained) {
    auto l           = fast_limits();
    l.wall_time      = 2s;
    const auto start = std::chrono::steady_clock::now();
    const auto r =
        run_humaneval_test(with_body("    import os\n    while True:\n        os.fork()\n"), k_test, "add", l);
    EXPECT_FALSE(r.passed);
    EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);
    // With the PID namespace every forked process dies with the child; verify none of them
    // is left by checking that a follow-up run still works normally.
    const auto after = run_humaneval_test(with_body("    return sum(xs)\n"), k_test, "add", fast_limits());
    EXPECT_TRUE(after.passed) << after.error_text;
}

TEST(RunHumanEval, SetsidEscapeIsKilledWithTheSandbox) {
    // A grandchild that leaves the process group and would outlive a process-group kill: it
    // becomes a `sleep` whose argv[0] names this test, so it can be looked for in the host's /proc.
    const std::string name = marker("setsid");
    const std::string body =
        "    import os\n"
        "    if os.fork() == 0:\n"
        "        os.setsid()\n"
        "        os.execv('/bin/sleep', ['" +
        name +
        "', '30'])\n"
        "    return sum(xs)\n";
    const auto r = run_humaneval_test(with_body(body), k_test, "add", fast_limits());
    EXPECT_TRUE(r.passed) << r.error_text;
    if (r.sandbox == "fork") {
        GTEST_SKIP() << "no PID namespace here: a setsid() grandchild can outlive the sandbox";
    }
    EXPECT_FALSE(process_survives(name)) << "a setsid() grandchild survived the sandbox";
}

TEST(RunHumanEval, MemoryLimitStopsHugeAllocation) {
    const auto r = run_humaneval_test(with_body("    x = bytearray(10 * 1024 ** 3)\n    return sum(xs)\n"), k_test,
                                      "add", fast_limits());
    EXPECT_FALSE(r.passed);
    EXPECT_FALSE(r.timed_out);
    EXPECT_NE(r.error_text.find("MemoryError"), std::string::npos) << r.error_text;
}

TEST(RunHumanEval, FileSizeLimit) {
    auto l            = fast_limits();
    l.file_size_bytes = 1 << 20;
    const auto r = run_humaneval_test(with_body("    open('big', 'wb').write(b'x' * (4 << 20))\n    return sum(xs)\n"),
                                      k_test, "add", l);
    EXPECT_FALSE(r.passed);
    // Python ignores SIGXFSZ, so the limit surfaces as EFBIG.
    EXPECT_NE(r.error_text.find("File too large"), std::string::npos) << r.error_text;
    EXPECT_FALSE(r.timed_out);
}

TEST(RunHumanEval, ScratchDirIsCwdWritableAndRemoved) {
    const std::string body =
        "    import os\n"
        "    open('note.txt', 'w').write('hi')\n"
        "    assert open('note.txt').read() == 'hi'\n"
        "    print('CWD=' + os.getcwd())\n"
        "    return sum(xs) if xs else 1\n";
    const auto r = run_humaneval_test(with_body(body), k_test, "add", fast_limits());
    // The failing assert makes the output visible in error_text.
    ASSERT_FALSE(r.passed);
    const auto pos = r.error_text.find("CWD=");
    ASSERT_NE(pos, std::string::npos) << r.error_text;
    const std::string cwd = r.error_text.substr(pos + 4, r.error_text.find('\n', pos) - pos - 4);
    EXPECT_NE(cwd.find("powersample-humaneval-"), std::string::npos) << cwd;
    EXPECT_FALSE(fs::exists(cwd)) << "scratch directory was not removed: " << cwd;
}

TEST(RunHumanEval, IsolatedEnvironmentAndStdin) {
    ::setenv("POWERSAMPLE_SECRET_FOR_TEST", "leak", 1);
    const std::string body =
        "    import os, sys\n"
        "    assert 'POWERSAMPLE_SECRET_FOR_TEST' not in os.environ\n"
        "    assert sys.stdin.read() == ''\n"
        "    assert sys.flags.isolated == 1\n"
        "    return sum(xs)\n";
    const auto r = run_humaneval_test(with_body(body), k_test, "add", fast_limits());
    ::unsetenv("POWERSAMPLE_SECRET_FOR_TEST");
    EXPECT_TRUE(r.passed) << r.error_text;
}

TEST(RunHumanEval, NoNetworkWhenNamespacesAreAvailable) {
    const std::string body =
        "    import socket\n"
        "    s = socket.socket()\n"
        "    s.settimeout(1)\n"
        "    try:\n"
        "        s.connect(('1.1.1.1', 53))\n"
        "        raise SystemExit(3)\n"
        "    except OSError:\n"
        "        pass\n"
        "    import os\n"
        "    ifaces = [n for _, n in socket.if_nameindex()]\n"
        "    assert ifaces == ['lo'], ifaces\n"
        "    return sum(xs)\n";
    const auto r = run_humaneval_test(with_body(body), k_test, "add", fast_limits());
    if (!r.network_isolated) {
        GTEST_SKIP() << "network namespaces unavailable here; isolation is not provided";
    }
    EXPECT_TRUE(r.passed) << r.error_text;
}

// What the sandbox guarantees about writes outside the scratch directory: when running as
// root it drops to an unprivileged uid, which cannot write into a root-owned 0755 directory (such as the
// project tree), whether or not bwrap hides the directory as well.
TEST(RunHumanEval, CannotWriteIntoRootOwnedDirectory) {
    if (::geteuid() != 0) {
        GTEST_SKIP() << "privilege drop only happens when running as root";
    }
    const fs::path guarded = fs::temp_directory_path() / ("powersample-escape-test-" + std::to_string(::getpid()));
    fs::create_directories(guarded);
    ::chmod(guarded.c_str(), 0755);
    const auto        target = guarded / "escaped.txt";
    const std::string body   = "    open('" + target.string() + "', 'w').write('escaped')\n    return sum(xs)\n";
    const auto        r      = run_humaneval_test(with_body(body), k_test, "add", fast_limits());
    EXPECT_TRUE(r.privileges_dropped);
    EXPECT_FALSE(r.passed);
    // PermissionError as that uid; FileNotFoundError under bwrap, where /tmp is empty and read-only.
    EXPECT_TRUE(r.error_text.find("PermissionError") != std::string::npos ||
                r.error_text.find("FileNotFoundError") != std::string::npos)
        << r.error_text;
    EXPECT_FALSE(fs::exists(target));
    fs::remove_all(guarded);
}

// ---- the filesystem, network and process view of untrusted code ----
//
// Each completion returns the right answer only when its escape works, so an escape shows as a
// passing test; it also tries to leave files named after the test in /tmp and /dev/shm, which
// are looked for on the host afterwards.

TEST(RunHumanEval, SandboxKindIsReported) {
    const auto r = run_humaneval_test(with_body("    return sum(xs)\n"), k_test, "add", fast_limits());
    EXPECT_TRUE(r.passed) << r.error_text;
    EXPECT_TRUE(r.sandbox == "bwrap" || r.sandbox == "namespaces" || r.sandbox == "fork") << r.sandbox;
    auto l               = fast_limits();
    l.use_bwrap          = false;
    l.isolate_namespaces = false;
    const auto plain     = run_humaneval_test(with_body("    return sum(xs)\n"), k_test, "add", l);
    EXPECT_TRUE(plain.passed) << plain.error_text;
    EXPECT_EQ(plain.sandbox, "fork");
    EXPECT_FALSE(plain.network_isolated);
    if (fs::exists("/usr/bin/bwrap") && ::geteuid() == 0) {
        // bwrap is installed by scripts/setup.sh and works as root here: it must be the one used.
        EXPECT_EQ(r.sandbox, "bwrap");
    }
}

TEST(RunHumanEval, WritesOutsideScratchAreRefusedAndLeaveNothing) {
    const std::string name         = marker("write");
    const fs::path    project_file = fs::path(POWERSAMPLE_SOURCE_DIR) / (name + ".txt");
    for (const std::string & target :
         { "/tmp/" + name, "/dev/shm/" + name, project_file.string(), "/" + name, "/usr/" + name }) {
        const std::string body = "    open('" + target + "', 'w').write('escaped')\n    return sum(xs)\n";
        const auto        r    = run_humaneval_test(with_body(body), k_test, "add", fast_limits());
        if (r.sandbox != "bwrap") {
            std::error_code ec;
            fs::remove(target, ec);
            GTEST_SKIP() << "bwrap unavailable (" << r.sandbox << "): /tmp and /dev/shm are shared with the host";
        }
        EXPECT_FALSE(r.passed) << target;
        EXPECT_NE(r.error_text.find("Error"), std::string::npos) << r.error_text;
        EXPECT_FALSE(fs::exists(target)) << target;
    }
    EXPECT_FALSE(leaves_files(name));
}

TEST(RunHumanEval, PlantedFileUnderTmpIsNotVisible) {
    const std::string name    = marker("planted");
    const fs::path    planted = fs::path("/tmp") / name;
    std::ofstream(planted) << "secret";
    fs::permissions(planted,
                    fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read | fs::perms::others_read);
    const std::string body =
        "    import os\n"
        "    assert open('" +
        planted.string() +
        "').read() == 'secret'\n"
        "    return sum(xs)\n";
    const auto        r = run_humaneval_test(with_body(body), k_test, "add", fast_limits());
    const std::string listing_body =
        "    import os\n"
        "    assert '" +
        name +
        "' in os.listdir('/tmp')\n"
        "    return sum(xs)\n";
    const auto listing = run_humaneval_test(with_body(listing_body), k_test, "add", fast_limits());
    fs::remove(planted);
    if (r.sandbox != "bwrap") {
        GTEST_SKIP() << "bwrap unavailable (" << r.sandbox << "): world-readable files under /tmp are visible";
    }
    EXPECT_FALSE(r.passed);
    EXPECT_NE(r.error_text.find("FileNotFoundError"), std::string::npos) << r.error_text;
    EXPECT_FALSE(listing.passed);
}

TEST(RunHumanEval, OwnProcView) {
    // The host's /proc lists every process of the machine; the sandbox's only its own few.
    const std::string body =
        "    import os\n"
        "    pids = [p for p in os.listdir('/proc') if p.isdigit()]\n"
        "    assert len(pids) > 5, pids\n"
        "    return sum(xs)\n";
    const auto r = run_humaneval_test(with_body(body), k_test, "add", fast_limits());
    if (r.sandbox != "bwrap") {
        GTEST_SKIP() << "bwrap unavailable (" << r.sandbox << "): /proc is the host's";
    }
    EXPECT_FALSE(r.passed);
    EXPECT_NE(r.error_text.find("AssertionError"), std::string::npos) << r.error_text;
}

TEST(RunHumanEval, LoopbackServerIsUnreachable) {
    const int server = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(server, 0);
    sockaddr_in a{};
    a.sin_family      = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::bind(server, reinterpret_cast<sockaddr *>(&a), sizeof a), 0);
    ASSERT_EQ(::listen(server, 4), 0);
    socklen_t len = sizeof a;
    ::getsockname(server, reinterpret_cast<sockaddr *>(&a), &len);
    const std::string body =
        "    import socket\n"
        "    socket.create_connection(('127.0.0.1', " +
        std::to_string(ntohs(a.sin_port)) +
        "), timeout=2).close()\n"
        "    return sum(xs)\n";
    const auto r = run_humaneval_test(with_body(body), k_test, "add", fast_limits());
    ::close(server);
    if (!r.network_isolated) {
        GTEST_SKIP() << "no network namespace here (" << r.sandbox << "): loopback is reachable";
    }
    EXPECT_FALSE(r.passed);
    EXPECT_NE(r.error_text.find("ConnectionRefusedError"), std::string::npos) << r.error_text;
}

// The process limit is per user and machine-wide: each sandbox runs as a uid of its own, so that
// a program holding all of its processes cannot make the sandbox beside it fail to start (under
// one shared `nobody` the second program failed with "Resource temporarily unavailable").
TEST(RunHumanEval, AForkBombDoesNotStarveTheSandboxBesideIt) {
    if (::geteuid() != 0) GTEST_SKIP() << "no privilege drop when not root: both run as the harness user";
    auto bomb_limits      = fast_limits();
    bomb_limits.wall_time = 4s;
    // Fills its process limit with sleeping children, then holds them until the wall limit.
    const std::string bomb =
        "    import os, time\n"
        "    for _ in range(1000):\n"
        "        try:\n"
        "            if os.fork() == 0:\n"
        "                time.sleep(30)\n"
        "                os._exit(0)\n"
        "        except OSError:\n"
        "            break\n"
        "    time.sleep(30)\n";
    std::thread bomb_thread([&] { run_humaneval_test(with_body(bomb), k_test, "add", bomb_limits); });
    std::this_thread::sleep_for(1500ms);  // the bomb has filled its limit by now
    std::vector<test_outcome> beside;
    for (int i = 0; i < 3; ++i)
        beside.push_back(run_humaneval_test(with_body("    return sum(xs)\n"), k_test, "add", fast_limits()));
    bomb_thread.join();
    for (const auto & r : beside) EXPECT_TRUE(r.passed) << r.sandbox << ": " << r.error_text;
}

TEST(RunHumanEval, UnboundedForkIsCountedFailedAndLeavesNothing) {
    const std::string name = marker("fork");
    auto              l    = fast_limits();
    l.wall_time            = 3s;
    // Every child becomes a long `sleep` named after the test, until the process limit stops
    // the loop; none of them may outlive the sandbox.
    const std::string body =
        "    import os\n"
        "    while True:\n"
        "        if os.fork() == 0:\n" +
        leave_files(name, "            ") + "            os.execv('/bin/sleep', ['" + name + "', '30'])\n";
    const auto start = std::chrono::steady_clock::now();
    const auto r     = run_humaneval_test(with_body(body), k_test, "add", l);
    EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
    EXPECT_FALSE(r.passed);
    if (r.sandbox == "fork") {
        GTEST_SKIP() << "no PID namespace here: forked processes may outlive the sandbox";
    }
    EXPECT_FALSE(process_survives(name));
    if (r.sandbox == "bwrap") {
        EXPECT_FALSE(leaves_files(name));
    }
}

TEST(RunHumanEval, UnboundedAllocationIsCountedFailedAndLeavesNothing) {
    const std::string name = marker("alloc");
    const std::string body = "    import os\n" + leave_files(name, "    ") +
                             "    hoard = []\n"
                             "    while True:\n"
                             "        hoard.append(bytearray(64 << 20))\n";
    const auto r = run_humaneval_test(with_body(body), k_test, "add", fast_limits());
    EXPECT_FALSE(r.passed);
    EXPECT_FALSE(r.timed_out) << r.error_text;
    EXPECT_NE(r.error_text.find("MemoryError"), std::string::npos) << r.error_text;
    if (r.sandbox == "bwrap") {
        EXPECT_FALSE(leaves_files(name));
    }
}

TEST(RunHumanEval, SleepPastTheLimitIsCountedFailedAndLeavesNothing) {
    const std::string name = marker("sleep");
    auto              l    = fast_limits();
    l.wall_time            = 1s;
    const std::string body =
        "    import os\n" + leave_files(name, "    ") + "    os.execv('/bin/sleep', ['" + name + "', '30'])\n";
    const auto start = std::chrono::steady_clock::now();
    const auto r     = run_humaneval_test(with_body(body), k_test, "add", l);
    EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);
    EXPECT_FALSE(r.passed);
    EXPECT_TRUE(r.timed_out) << r.error_text;
    EXPECT_FALSE(process_survives(name));
    if (r.sandbox == "bwrap") {
        EXPECT_FALSE(leaves_files(name));
    }
}

TEST(RunHumanEval, CanonicalSolutionsFromSampleData) {
    const auto r = load_builtin_dataset("humaneval", POWERSAMPLE_TEST_DATA_DIR);
    ASSERT_EQ(r.problems.size(), 3u);
    for (const auto & p : r.problems) {
        const auto entry   = p.raw.at("entry_point").get<std::string>();
        const auto program = extract_python_function(p.reference, p.question, entry);
        const auto ok      = run_humaneval_test(program, p.raw.at("test").get<std::string>(), entry, fast_limits());
        EXPECT_TRUE(ok.passed) << p.id << ": " << ok.error_text;
        // Returning None is wrong for every HumanEval task.
        const auto bad = run_humaneval_test(p.question + "    return None\n", p.raw.at("test").get<std::string>(),
                                            entry, fast_limits());
        EXPECT_FALSE(bad.passed) << p.id;
    }
}

// ---- statistics ----

TEST(PassAtK, MatchesExactBinomials) {
    // Expected values from Python's math.comb: 1 - comb(n-c, k) / comb(n, k).
    EXPECT_NEAR(pass_at_k(10, 3, 1), 0.3, 1e-12);
    EXPECT_NEAR(pass_at_k(10, 3, 5), 0.9166666666666666, 1e-12);
    EXPECT_NEAR(pass_at_k(200, 13, 10), 0.4975511147306061, 1e-12);
    EXPECT_NEAR(pass_at_k(100, 1, 50), 0.5, 1e-12);
    EXPECT_EQ(pass_at_k(5, 0, 1), 0.0);
    EXPECT_EQ(pass_at_k(5, 5, 1), 1.0);
    EXPECT_EQ(pass_at_k(10, 7, 4), 1.0);
    // Large n would overflow naive binomials.
    const double big = pass_at_k(100000, 100, 1000);
    EXPECT_GT(big, 0.0);
    EXPECT_LT(big, 1.0);
    EXPECT_NEAR(pass_at_k(100000, 100, 1), 0.001, 1e-12);
}

TEST(PassAtK, RejectsInvalidArguments) {
    EXPECT_THROW(pass_at_k(0, 0, 1), std::invalid_argument);
    EXPECT_THROW(pass_at_k(5, 6, 1), std::invalid_argument);
    EXPECT_THROW(pass_at_k(5, 1, 0), std::invalid_argument);
    EXPECT_THROW(pass_at_k(5, 1, 6), std::invalid_argument);
}

TEST(Wilson, KnownValues) {
    // Expected values from the closed-form Wilson score formula evaluated in Python.
    auto w = wilson_interval(5, 10);
    EXPECT_NEAR(w.lower, 0.23658959361548731, 1e-12);
    EXPECT_NEAR(w.upper, 0.7634104063845126, 1e-12);
    w = wilson_interval(80, 100);
    EXPECT_NEAR(w.lower, 0.7111690380734977, 1e-12);
    EXPECT_NEAR(w.upper, 0.8666340774409013, 1e-12);
    w = wilson_interval(1, 1319);
    EXPECT_NEAR(w.lower, 0.00013384120709045242, 1e-12);
    EXPECT_NEAR(w.upper, 0.004282107006210369, 1e-12);
    w = wilson_interval(0, 10);
    EXPECT_EQ(w.lower, 0.0);
    EXPECT_NEAR(w.upper, 0.2775401687666166, 1e-12);
    w = wilson_interval(10, 10);
    EXPECT_NEAR(w.lower, 0.7224598312333834, 1e-12);
    EXPECT_EQ(w.upper, 1.0);
    w = wilson_interval(0, 0);
    EXPECT_EQ(w.lower, 0.0);
    EXPECT_EQ(w.upper, 1.0);
    EXPECT_THROW(wilson_interval(3, 2), std::invalid_argument);
}

TEST(Wilson, WiderForHigherConfidence) {
    const auto w95 = wilson_interval(30, 100);
    const auto w99 = wilson_interval(30, 100, 2.576);
    EXPECT_LT(w99.lower, w95.lower);
    EXPECT_GT(w99.upper, w95.upper);
}

// Model output is arbitrary text; graders must treat garbage as a wrong answer, not crash.
TEST(Robustness, GradersNeverThrowOnRandomInput) {
    const std::string alphabet = "0123456789.,-+/$%{}()[]\\ \n=#:abxAnswerisboxedfracsqrtext^_\xE2\x88\x92`";
    const std::vector<std::string> pieces{ "\\boxed{",  "\\frac",      "\\sqrt",       "\\text{",  "####",
                                           "answer is", "```python\n", "\\left(",      "\\right]", "def f(",
                                           "1,000",     "-$",          "\\dfrac{1}{2}" };
    std::mt19937_64                rng(12345);
    for (int iter = 0; iter < 3000; ++iter) {
        std::string s;
        const auto  len = uniform_below(rng, 40);
        for (std::uint64_t i = 0; i < len; ++i) {
            if (uniform_below(rng, 5) == 0) {
                s += pieces[uniform_below(rng, pieces.size())];
            } else {
                s += alphabet[uniform_below(rng, alphabet.size())];
            }
        }
        EXPECT_NO_THROW({
            extract_boxed(s);
            extract_numeric_answer(s);
            parse_number(s);
            grade_numeric(s, "12");
            normalize_math_answer(s);
            math_equal(s, s.substr(0, s.size() / 2));
            grade_math(s, "\\frac{1}{2}");
            extract_python_function(s, "def f():\n", "f");
        }) << s;
    }
}

// The gold GSM8K solutions end in "#### N"; grading them against their own reference must
// succeed for every item, and a shifted answer must fail.
TEST(GradeNumeric, RealReferencesGradeThemselves) {
    const fs::path shared = POWERSAMPLE_SHARED_DATA_DIR;
    if (!fs::exists(shared / "gsm8k_test.jsonl")) {
        GTEST_SKIP() << "shared datasets not present";
    }
    for (const char * name :
         { "gsm8k", "mawps-singleop", "mawps-addsub", "mawps-singleeq", "mawps-multiarith", "svamp" }) {
        const auto r = load_builtin_dataset(name, shared);
        ASSERT_FALSE(r.problems.empty()) << name;
        for (const auto & p : r.problems) {
            const std::string response = std::string(name) == "gsm8k" ? p.raw.at("answer").get<std::string>()
                                                                      : "The answer is " + p.reference + ".";
            EXPECT_TRUE(grade_numeric(response, p.reference)) << p.id << ": " << p.reference;
            const double wrong = *parse_number(p.reference) + 1.0;
            EXPECT_FALSE(grade_numeric("The answer is " + format_number(wrong), p.reference)) << p.id;
        }
    }
}
