#include "datasets.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <unistd.h>
#include <vector>

namespace fs = std::filesystem;
using namespace powersample::eval;

namespace {

const fs::path k_data   = POWERSAMPLE_TEST_DATA_DIR;
const fs::path k_shared = POWERSAMPLE_SHARED_DATA_DIR;

// A per-test directory under the system temp dir, removed at the end.
class temp_dir {
public:
    temp_dir() {
        std::string templ = (fs::temp_directory_path() / "powersample-test-XXXXXX").string();
        if (!::mkdtemp(templ.data())) {
            throw std::runtime_error("mkdtemp failed");
        }
        path_ = templ;
    }
    ~temp_dir() {
        std::error_code ec;
        fs::remove_all(path_, ec);
    }
    fs::path write(const std::string & name, const std::string & content) const {
        const auto p = path_ / name;
        std::ofstream(p, std::ios::binary) << content;
        return p;
    }
    const fs::path & path() const { return path_; }

private:
    fs::path path_;
};

std::vector<std::string> ids(const load_result & r) {
    std::vector<std::string> out;
    for (const auto & p : r.problems) {
        out.push_back(p.id);
    }
    return out;
}

}  // namespace

TEST(Datasets, BuiltinNamesAreStable) {
    const std::vector<std::string> expected{ "gsm8k",          "math500",          "mawps-singleop", "mawps-addsub",
                                             "mawps-singleeq", "mawps-multiarith", "svamp",          "humaneval" };
    EXPECT_EQ(builtin_dataset_names(), expected);
    EXPECT_TRUE(is_builtin_dataset("svamp"));
    EXPECT_FALSE(is_builtin_dataset("gsm8"));
    EXPECT_EQ(builtin_dataset_file("humaneval"), "HumanEval.jsonl.gz");
    EXPECT_EQ(builtin_dataset_file("mawps-addsub"), "mawps_addsub.jsonl");
}

TEST(Datasets, UnknownNameListsValidNames) {
    try {
        load_builtin_dataset("gsm9k", k_data);
        FAIL() << "expected std::invalid_argument";
    } catch (const std::invalid_argument & e) {
        const std::string msg = e.what();
        EXPECT_NE(msg.find("'gsm9k'"), std::string::npos) << msg;
        for (const auto & name : builtin_dataset_names()) {
            EXPECT_NE(msg.find(name), std::string::npos) << name << " missing from: " << msg;
        }
    }
}

TEST(Datasets, MissingFileThrowsWithPath) {
    temp_dir dir;
    try {
        load_builtin_dataset("gsm8k", dir.path());
        FAIL() << "expected std::runtime_error";
    } catch (const std::runtime_error & e) {
        EXPECT_NE(std::string(e.what()).find("gsm8k_test.jsonl"), std::string::npos) << e.what();
    }
}

TEST(Datasets, DefaultDataDirIsSharedDatasets) {
    ::unsetenv("POWERSAMPLE_DATA_DIR");
    // ../shared/datasets from the working directory, else beside the source tree: found from the
    // test's build directory too.
    const fs::path found = default_data_dir();
    EXPECT_EQ(found.filename(), "datasets");
    EXPECT_EQ(found.parent_path().filename(), "shared");
    EXPECT_TRUE(fs::is_regular_file(found / "gsm8k_test.jsonl")) << found;
    ::setenv("POWERSAMPLE_DATA_DIR", "/some/where", 1);
    EXPECT_EQ(default_data_dir(), fs::path("/some/where"));
    ::unsetenv("POWERSAMPLE_DATA_DIR");
}

TEST(Datasets, Gsm8kSample) {
    const auto r = load_builtin_dataset("gsm8k", k_data);
    EXPECT_TRUE(r.warnings.empty());
    ASSERT_EQ(r.problems.size(), 4u);
    const auto & p = r.problems[0];
    EXPECT_EQ(p.id, "gsm8k/0");
    EXPECT_EQ(p.task, "numeric");
    EXPECT_EQ(p.reference, "18");
    EXPECT_EQ(p.question.substr(0, 37), "Janet\u2019s ducks lay 16 eggs per day. ");
    EXPECT_TRUE(p.raw.contains("answer"));
    EXPECT_EQ(r.problems[1].reference, "3");
    EXPECT_EQ(r.problems[2].reference, "2125");  // "#### 2,125"
    EXPECT_EQ(r.problems[3].reference, "-10");
    EXPECT_EQ(r.problems[3].id, "gsm8k/3");
}

TEST(Datasets, Math500Sample) {
    const auto r = load_builtin_dataset("math500", k_data);
    EXPECT_TRUE(r.warnings.empty());
    ASSERT_EQ(r.problems.size(), 4u);
    EXPECT_EQ(r.problems[0].task, "math");
    EXPECT_EQ(r.problems[0].id, "math500/0");
    EXPECT_EQ(r.problems[0].reference, "\\left( 3, \\frac{\\pi}{2} \\right)");
    EXPECT_EQ(r.problems[1].reference, "p - q");
    EXPECT_EQ(r.problems[2].reference, "\\frac{14}{3}");
    EXPECT_EQ(r.problems[3].reference, "9");
    EXPECT_EQ(r.problems[0].question.substr(0, 25), "Convert the point $(0,3)$");
}

TEST(Datasets, MawpsSamples) {
    const auto single = load_builtin_dataset("mawps-singleop", k_data);
    ASSERT_EQ(single.problems.size(), 4u);
    EXPECT_EQ(single.problems[0].id, "mawps-singleop/0");
    EXPECT_EQ(single.problems[0].reference, "14");  // stored as 14.0
    EXPECT_EQ(single.problems[3].reference, "3.33333");
    EXPECT_EQ(single.problems[0].question.substr(0, 20), "If there are 7 bottl");

    const auto addsub = load_builtin_dataset("mawps-addsub", k_data);
    ASSERT_EQ(addsub.problems.size(), 3u);
    EXPECT_EQ(addsub.problems[0].reference, "43");
    EXPECT_EQ(addsub.problems[2].reference, "6");

    const auto eq = load_builtin_dataset("mawps-singleeq", k_data);
    ASSERT_EQ(eq.problems.size(), 3u);
    EXPECT_EQ(eq.problems[2].reference, "135");

    const auto multi = load_builtin_dataset("mawps-multiarith", k_data);
    ASSERT_EQ(multi.problems.size(), 3u);
    EXPECT_EQ(multi.problems[0].reference, "39");  // stored as the integer 39
    EXPECT_EQ(multi.problems[0].task, "numeric");
}

TEST(Datasets, SvampJoinsBodyAndQuestion) {
    const auto r = load_builtin_dataset("svamp", k_data);
    ASSERT_EQ(r.problems.size(), 3u);
    const auto & p = r.problems[0];
    EXPECT_EQ(p.id, "chal-777");
    EXPECT_EQ(p.reference, "145");
    EXPECT_EQ(p.question,
              "There are 87 oranges and 290 bananas in Philip's collection. If the bananas are organized into 2 "
              "groups and oranges are organized into 93 groups How big is each group of bananas?");
    EXPECT_EQ(r.problems[2].reference, "3");
}

TEST(Datasets, HumanEvalFromGzip) {
    const auto r = load_builtin_dataset("humaneval", k_data);
    EXPECT_TRUE(r.warnings.empty());
    ASSERT_EQ(r.problems.size(), 3u);
    const auto & p = r.problems[0];
    EXPECT_EQ(p.id, "HumanEval/0");
    EXPECT_EQ(p.task, "humaneval");
    EXPECT_EQ(p.raw.at("entry_point"), "has_close_elements");
    EXPECT_EQ(p.question.substr(0, 24), "from typing import List\n");
    EXPECT_EQ(p.reference.substr(0, 43), "    for idx, elem in enumerate(numbers):\n  ");
    EXPECT_NE(p.raw.at("test").get<std::string>().find("def check(candidate):"), std::string::npos);
    EXPECT_EQ(r.problems[2].id, "HumanEval/2");
}

TEST(Datasets, BadLinesAreReportedAndSkipped) {
    temp_dir                  dir;
    const auto                file = dir.write("gsm8k_test.jsonl",
                                               "{\"question\": \"q0\", \"answer\": \"x\\n#### 7\"}\n"
                                                              "{\"question\": \"q1\", \"answer\": \"x\\n#### 1,000\"}\r\n"
                                                              "\n"
                                                              "{not json\n"
                                                              "{\"answer\": \"#### 3\"}\n"
                                                              "{\"question\": 5, \"answer\": \"#### 3\"}\n"
                                                              "{\"question\": \"q5\", \"answer\": \"no marker\"}\n"
                                                              "[1, 2]\n"
                                                              "{\"question\": \"q7\", \"answer\": \"#### 9\"}");
    std::vector<load_warning> seen;
    load_options              opts;
    opts.on_warning = [&](const load_warning & w) { seen.push_back(w); };
    const auto r    = load_builtin_dataset("gsm8k", dir.path(), opts);
    ASSERT_EQ(r.problems.size(), 3u);
    EXPECT_EQ(r.problems[0].reference, "7");
    EXPECT_EQ(r.problems[1].reference, "1000");
    EXPECT_EQ(r.problems[2].question, "q7");
    // Ids count non-blank lines, so good rows keep their position-based id.
    EXPECT_EQ(ids(r), (std::vector<std::string>{ "gsm8k/0", "gsm8k/1", "gsm8k/7" }));

    ASSERT_EQ(r.warnings.size(), 5u);
    ASSERT_EQ(seen.size(), 5u);
    const std::vector<std::size_t> lines{ 4, 5, 6, 7, 8 };
    for (std::size_t i = 0; i < lines.size(); ++i) {
        EXPECT_EQ(r.warnings[i].line, lines[i]);
        EXPECT_EQ(r.warnings[i].file, file.string());
        EXPECT_EQ(seen[i].line, lines[i]);
    }
    EXPECT_NE(r.warnings[0].reason.find("invalid JSON"), std::string::npos) << r.warnings[0].reason;
    EXPECT_NE(r.warnings[1].reason.find("missing field 'question'"), std::string::npos) << r.warnings[1].reason;
    EXPECT_NE(r.warnings[2].reason.find("'question' is not a string"), std::string::npos) << r.warnings[2].reason;
    EXPECT_NE(r.warnings[3].reason.find("####"), std::string::npos) << r.warnings[3].reason;
    EXPECT_NE(r.warnings[4].reason.find("not a JSON object"), std::string::npos) << r.warnings[4].reason;
}

TEST(Datasets, MawpsNonNumericTargetIsReported) {
    temp_dir dir;
    dir.write("mawps_addsub.jsonl", "{\"input\": \"a\", \"target\": \"12\"}\n{\"input\": \"b\", \"target\": 2.5}\n");
    const auto r = load_builtin_dataset("mawps-addsub", dir.path());
    ASSERT_EQ(r.problems.size(), 1u);
    EXPECT_EQ(r.problems[0].reference, "2.5");
    ASSERT_EQ(r.warnings.size(), 1u);
    EXPECT_EQ(r.warnings[0].line, 1u);
    EXPECT_NE(r.warnings[0].reason.find("'target' is not a number"), std::string::npos) << r.warnings[0].reason;
}

TEST(Datasets, CorruptGzipThrows) {
    temp_dir dir;
    // A valid gzip header followed by garbage: the stream cannot be inflated.
    dir.write("HumanEval.jsonl.gz", std::string("\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03garbage-garbage", 24));
    EXPECT_THROW(load_builtin_dataset("humaneval", dir.path()), std::runtime_error);
}

TEST(Datasets, UserFileWithFieldMapping) {
    temp_dir      dir;
    const auto    file = dir.write("my-set.jsonl",
                                   "{\"q\": \"What is 2+2?\", \"a\": 4, \"uid\": \"first\"}\n"
                                      "{\"q\": \"Half of 1?\", \"a\": \"\\\\frac{1}{2}\", \"uid\": 17}\n"
                                      "{\"q\": \"No id\", \"a\": 1.5}\n"
                                      "{\"q\": \"No answer\"}\n"
                                      "{\"q\": \"Bad answer\", \"a\": [1]}\n");
    field_mapping m;
    m.question_field = "q";
    m.answer_field   = "a";
    m.id_field       = "uid";
    m.task           = "math";
    const auto r     = load_jsonl_dataset(file, m);
    ASSERT_EQ(r.problems.size(), 3u);
    EXPECT_EQ(ids(r), (std::vector<std::string>{ "first", "17", "my-set/2" }));
    EXPECT_EQ(r.problems[0].reference, "4");
    EXPECT_EQ(r.problems[1].reference, "\\frac{1}{2}");
    EXPECT_EQ(r.problems[2].reference, "1.5");
    EXPECT_EQ(r.problems[0].task, "math");
    EXPECT_EQ(r.problems[0].question, "What is 2+2?");
    ASSERT_EQ(r.warnings.size(), 2u);
    EXPECT_EQ(r.warnings[0].line, 4u);
    EXPECT_NE(r.warnings[0].reason.find("missing field 'a'"), std::string::npos);
    EXPECT_EQ(r.warnings[1].line, 5u);
    EXPECT_NE(r.warnings[1].reason.find("'a' is neither a string nor a number"), std::string::npos);
}

TEST(Datasets, UserFileRejectsUnknownTask) {
    temp_dir      dir;
    const auto    file = dir.write("x.jsonl", "{}\n");
    field_mapping m;
    m.task = "essay";
    try {
        load_jsonl_dataset(file, m);
        FAIL() << "expected std::invalid_argument";
    } catch (const std::invalid_argument & e) {
        const std::string msg = e.what();
        EXPECT_NE(msg.find("'essay'"), std::string::npos) << msg;
        EXPECT_NE(msg.find("numeric, math, humaneval"), std::string::npos) << msg;
    }
}

TEST(Datasets, OffsetAndLimit) {
    temp_dir    dir;
    std::string content;
    for (int i = 0; i < 10; ++i) {
        content += "{\"input\": \"q" + std::to_string(i) + "\", \"target\": " + std::to_string(i) + "}\n";
    }
    dir.write("mawps_singleop.jsonl", content);
    load_options o;
    o.offset = 3;
    o.limit  = 4;
    auto r   = load_builtin_dataset("mawps-singleop", dir.path(), o);
    EXPECT_EQ(ids(r), (std::vector<std::string>{ "mawps-singleop/3", "mawps-singleop/4", "mawps-singleop/5",
                                                 "mawps-singleop/6" }));
    o.offset = 8;
    o.limit  = 5;
    r        = load_builtin_dataset("mawps-singleop", dir.path(), o);
    EXPECT_EQ(ids(r), (std::vector<std::string>{ "mawps-singleop/8", "mawps-singleop/9" }));
    o.offset = 20;
    r        = load_builtin_dataset("mawps-singleop", dir.path(), o);
    EXPECT_TRUE(r.problems.empty());
    o.offset = 0;
    o.limit  = 0;
    r        = load_builtin_dataset("mawps-singleop", dir.path(), o);
    EXPECT_TRUE(r.problems.empty());
}

TEST(Datasets, ShuffleIsDeterministicAndAppliedBeforeOffset) {
    temp_dir    dir;
    std::string content;
    for (int i = 0; i < 10; ++i) {
        content += "{\"input\": \"q\", \"target\": " + std::to_string(i) + "}\n";
    }
    dir.write("mawps_singleop.jsonl", content);
    load_options o;
    o.shuffle                    = true;
    o.seed                       = 42;
    const auto               all = load_builtin_dataset("mawps-singleop", dir.path(), o);
    std::vector<std::string> refs;
    for (const auto & p : all.problems) {
        refs.push_back(p.reference);
    }
    EXPECT_EQ(refs, (std::vector<std::string>{ "1", "7", "9", "0", "3", "8", "4", "2", "5", "6" }));
    o.offset        = 2;
    o.limit         = 3;
    const auto page = load_builtin_dataset("mawps-singleop", dir.path(), o);
    ASSERT_EQ(page.problems.size(), 3u);
    EXPECT_EQ(page.problems[0].reference, "9");
    EXPECT_EQ(page.problems[2].reference, "3");
}

// The expected permutations come from an independent Python implementation of
// mt19937_64 with the same rejection sampling, so they pin cross-library behaviour.
TEST(Shuffle, MatchesReferencePermutation) {
    EXPECT_EQ(shuffled_indices(10, 42), (std::vector<std::size_t>{ 1, 7, 9, 0, 3, 8, 4, 2, 5, 6 }));
    EXPECT_EQ(shuffled_indices(10, 0), (std::vector<std::size_t>{ 7, 2, 0, 8, 3, 9, 6, 1, 5, 4 }));
    const auto big = shuffled_indices(1319, 2024);
    EXPECT_EQ(std::vector<std::size_t>(big.begin(), big.begin() + 8),
              (std::vector<std::size_t>{ 288, 146, 940, 918, 578, 1015, 232, 353 }));
    std::set<std::size_t> unique(big.begin(), big.end());
    EXPECT_EQ(unique.size(), 1319u);
    EXPECT_EQ(*unique.rbegin(), 1318u);
    EXPECT_TRUE(shuffled_indices(0, 1).empty());
    EXPECT_EQ(shuffled_indices(1, 1), std::vector<std::size_t>{ 0 });
}

TEST(Shuffle, EngineIsTheStandardMt19937_64) {
    // The standard requires the 10000th output of a default-seeded mt19937_64 to be this.
    std::mt19937_64 rng;
    rng.discard(9999);
    EXPECT_EQ(rng(), 9981545732273789042ULL);
}

TEST(Shuffle, UniformBelowStaysInRange) {
    std::mt19937_64  rng(7);
    std::vector<int> counts(3, 0);
    for (int i = 0; i < 3000; ++i) {
        const auto v = uniform_below(rng, 3);
        ASSERT_LT(v, 3u);
        ++counts[v];
    }
    for (int c : counts) {
        EXPECT_GT(c, 850);
        EXPECT_LT(c, 1150);
    }
    EXPECT_EQ(uniform_below(rng, 1), 0u);
    EXPECT_THROW(uniform_below(rng, 0), std::invalid_argument);
}

TEST(References, Gsm8k) {
    EXPECT_EQ(gsm8k_reference("blah\n#### 70000"), "70000");
    EXPECT_EQ(gsm8k_reference("#### 1,450,000"), "1450000");
    EXPECT_EQ(gsm8k_reference("#### -10"), "-10");
    EXPECT_EQ(gsm8k_reference("#### 0.5"), "0.5");
    EXPECT_EQ(gsm8k_reference("#### $12."), "12");
    EXPECT_EQ(gsm8k_reference("no marker 5"), std::nullopt);
    EXPECT_EQ(gsm8k_reference("#### twelve"), std::nullopt);
}

TEST(References, Math) {
    EXPECT_EQ(math_reference("so $\\boxed{\\frac{1}{2}}$.The answer is: \\frac12"), "\\frac{1}{2}");
    EXPECT_EQ(math_reference("\\boxed{1} then \\boxed{\\{a, \\{b\\}\\}}"), "\\{a, \\{b\\}\\}");
    EXPECT_EQ(math_reference("\\boxed{x^{2^{3}}}"), "x^{2^{3}}");
    EXPECT_EQ(math_reference("no box. The answer is: 42"), "42");
    EXPECT_EQ(math_reference("\\boxed{unterminated The answer is: 7"), "7");
    EXPECT_EQ(math_reference("nothing here"), std::nullopt);
}

TEST(References, FormatNumber) {
    EXPECT_EQ(format_number(14.0), "14");
    EXPECT_EQ(format_number(-3.0), "-3");
    EXPECT_EQ(format_number(0.0), "0");
    EXPECT_EQ(format_number(-0.0), "0");
    EXPECT_EQ(format_number(3.33333), "3.33333");
    EXPECT_EQ(format_number(0.6666666667), "0.6666666667");
    EXPECT_EQ(format_number(1e20), "1e+20");
}

// The real files are not part of the repository; these tests run where ../shared exists.
// The MAWPS counts are one higher than shared/datasets/README.md states: those files lack a
// final newline, so `wc -l` (where the README's numbers seem to come from) misses the last
// row; Python's json module also reads 562/395/508/600 rows.
class RealDatasets : public ::testing::TestWithParam<std::pair<const char *, std::size_t>> {};

TEST_P(RealDatasets, LoadsEveryItem) {
    if (!fs::exists(k_shared)) {
        GTEST_SKIP() << k_shared << " not present";
    }
    const auto [name, count] = GetParam();
    const auto r             = load_builtin_dataset(name, k_shared);
    EXPECT_TRUE(r.warnings.empty()) << r.warnings.front().file << ":" << r.warnings.front().line << ": "
                                    << r.warnings.front().reason;
    EXPECT_EQ(r.problems.size(), count);
    std::set<std::string> unique;
    for (const auto & p : r.problems) {
        EXPECT_FALSE(p.question.empty()) << p.id;
        EXPECT_FALSE(p.reference.empty()) << p.id;
        unique.insert(p.id);
    }
    EXPECT_EQ(unique.size(), count) << "ids must be unique";
}

INSTANTIATE_TEST_SUITE_P(Shared, RealDatasets,
                         ::testing::Values(std::make_pair("gsm8k", 1319), std::make_pair("math500", 500),
                                           std::make_pair("mawps-singleop", 562), std::make_pair("mawps-addsub", 395),
                                           std::make_pair("mawps-singleeq", 508),
                                           std::make_pair("mawps-multiarith", 600), std::make_pair("svamp", 1000),
                                           std::make_pair("humaneval", 164)),
                         [](const auto & info) {
                             std::string n = info.param.first;
                             for (auto & c : n) {
                                 if (c == '-') {
                                     c = '_';
                                 }
                             }
                             return n;
                         });
