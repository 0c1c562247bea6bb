// End-to-end tests of the power-sampling-eval binary. The Cli* tests need no model (label unit);
// the Run* tests load the default model (label model) and keep generations to a few tokens.
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <csignal>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace fs = std::filesystem;

namespace {

struct run_result {
    int exit_code = -1;
    std::string output;  // stdout and stderr together
};

run_result run(const std::string & args) {
    const std::string cmd = std::string(POWERSAMPLE_EVAL_BINARY) + " " + args + " 2>&1";
    run_result r;
    FILE * p = ::popen(cmd.c_str(), "r");
    if (!p) return r;
    std::array<char, 4096> buf;
    size_t n;
    while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) r.output.append(buf.data(), n);
    const int status = ::pclose(p);
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return r;
}

fs::path fresh_dir(const std::string & name) {
    const fs::path dir = fs::temp_directory_path() / ("ps-eval-cli-" + name + "-" + std::to_string(::getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir);
    return dir;
}

std::string slurp(const fs::path & f) {
    std::ifstream in(f);
    return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace

TEST(CliBadInput, UnknownMethodListsValidOnes) {
    const auto r = run("-d mawps-multiarith --methods greedy,beam");
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_EQ(r.output,
              "power-sampling-eval: --methods: unknown method 'beam'; valid methods: greedy, sample, low-temp, "
              "power, power-entropy, smc, sps, best-of-n, maj-vote, power-maj-vote, best-of-n@METHOD, maj-vote@METHOD "
              "(compute-matched to METHOD)\n");
    // Greedy's budget is one sample: nothing to match.
    const auto m = run("-d mawps-multiarith --methods best-of-n@greedy");
    EXPECT_EQ(m.exit_code, 1);
    EXPECT_NE(m.output.find("--methods: unknown method 'best-of-n@greedy'"), std::string::npos) << m.output;
}

TEST(CliBadInput, MethodKnobsOutOfRangeNameTheField) {
    for (const auto & [args, field] : std::vector<std::pair<std::string, std::string>>{
             { "--methods smc --particles 0", "particles" },
             { "--methods smc --particles -3", "particles" },  // not mistaken for "unset"
             { "--methods smc --ess-threshold 1.5", "ess_threshold" },
             { "--methods sps --sps-rollouts 1", "sps_rollouts" },
             { "--methods sps --sps-top-k 9 --sps-candidates 8", "sps_top_k" },
             { "--methods power-entropy --entropy-floor 0", "entropy_floor" } }) {
        const auto r = run("-d mawps-multiarith " + args);
        EXPECT_EQ(r.exit_code, 1) << args;
        EXPECT_NE(r.output.find(field), std::string::npos) << args << ": " << r.output;
        EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
    }
}

TEST(CliBadInput, UnknownDatasetListsValidOnes) {
    const auto r = run("-d gsm9k --methods greedy");
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_EQ(r.output,
              "power-sampling-eval: --dataset: unknown dataset 'gsm9k'; valid names: gsm8k, math500, mawps-singleop, "
              "mawps-addsub, mawps-singleeq, mawps-multiarith, svamp, humaneval, or a .jsonl file\n");
}

TEST(CliBadInput, MissingJsonlFileIsUsageError) {
    const auto r = run("-d /nonexistent/x.jsonl");
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.output.find("--dataset: unknown dataset '/nonexistent/x.jsonl' (no such file)"), std::string::npos)
        << r.output;
}

TEST(CliBadInput, BadDatasetLinesAreReportedAndSkipped) {
    const auto dir = fresh_dir("badlines");
    const auto file = dir / "user.jsonl";
    std::ofstream(file) << "{\"q\": \"What is 1+1?\", \"a\": 2}\n"
                           "{\"q\": \"broken\n"
                           "{\"q\": \"no answer here\"}\n"
                           "{\"q\": \"What is 2+2?\", \"a\": 4}\n";
    const auto r = run("-d " + file.string() + " --question-field q --answer-field a --summary-only --out " +
                       (dir / "out").string());
    EXPECT_EQ(r.exit_code, 0) << r.output;
    EXPECT_NE(r.output.find(file.string() + ":2: skipped"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find(file.string() + ":3: skipped"), std::string::npos) << r.output;
    EXPECT_EQ(r.output.find(file.string() + ":1: skipped"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("2 problems from"), std::string::npos) << r.output;
    fs::remove_all(dir);
}

TEST(CliBadInput, UnknownTaskAndBadPreset) {
    const auto dir = fresh_dir("task");
    std::ofstream(dir / "u.jsonl") << "{\"question\": \"q\", \"answer\": 1}\n";
    const auto t = run("-d " + (dir / "u.jsonl").string() + " --task poetry");
    EXPECT_EQ(t.exit_code, 1);
    EXPECT_NE(t.output.find("--task: unknown task 'poetry'; valid tasks: numeric, math, humaneval"), std::string::npos)
        << t.output;
    fs::remove_all(dir);
    const auto r = run("-d mawps-multiarith --preset fastest");
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.output.find("--preset"), std::string::npos) << r.output;
}

// A run on 3 problems; one result file is deleted; the rerun recomputes exactly that one.
TEST(RunResume, RerunCompletesOnlyMissingFiles) {
    const auto dir = fresh_dir("resume");
    const std::string args = "-d mawps-multiarith --data-dir " POWERSAMPLE_TEST_DATA_DIR
                             " --limit 3 --methods greedy --max-new-tokens 8 -t 1 --out " + dir.string();
    auto r = run(args);
    ASSERT_EQ(r.exit_code, 0) << r.output;
    EXPECT_NE(r.output.find("[greedy] 3 to run, 0 already done"), std::string::npos) << r.output;
    const fs::path d = dir / "greedy";
    std::vector<fs::path> files;
    for (const auto & e : fs::directory_iterator(d)) {
        if (e.path().extension() == ".json") files.push_back(e.path());
    }
    std::sort(files.begin(), files.end());
    ASSERT_EQ(files.size(), 3u);
    const auto kept0 = slurp(files[0]), kept2 = slurp(files[2]);
    const auto time0 = fs::last_write_time(files[0]);
    fs::remove(files[1]);

    r = run(args);
    ASSERT_EQ(r.exit_code, 0) << r.output;
    EXPECT_NE(r.output.find("[greedy] 1 to run, 2 already done"), std::string::npos) << r.output;
    ASSERT_TRUE(fs::exists(files[1]));
    EXPECT_NE(slurp(files[1]).find("\"n_tokens_generated\": 8"), std::string::npos);
    EXPECT_EQ(slurp(files[0]), kept0);
    EXPECT_EQ(slurp(files[2]), kept2);
    EXPECT_EQ(fs::last_write_time(files[0]), time0);
    // The summary counts all three.
    EXPECT_NE(r.output.find("| greedy | 3 |"), std::string::npos) << r.output;
    EXPECT_TRUE(fs::exists(dir / "summary.json"));
    EXPECT_TRUE(fs::exists(dir / "report.html"));

    // A third run has nothing to do; --regrade regrades without the model.
    r = run(args);
    EXPECT_NE(r.output.find("[greedy] 0 to run, 3 already done"), std::string::npos) << r.output;
    r = run("--regrade --methods greedy --out " + dir.string());
    EXPECT_EQ(r.exit_code, 0) << r.output;
    EXPECT_NE(r.output.find("regraded 3 result files"), std::string::npos) << r.output;
    fs::remove_all(dir);
}

// A response cut inside a character is recorded as valid UTF-8, and a rerun resumes past it.
// SmolLM2 at T = 1, one token, seeds of problems zh_4 and zh_5: the first bytes of an emoji.
TEST(RunResume, ResponseCutInsideACharacterIsRecordedAndResumes) {
    const auto dir = fresh_dir("utf8");
    {
        std::ofstream f(dir / "zh.jsonl");
        for (int i = 0; i < 6; ++i) f << "{\"question\": \"Reply with only an emoji of a smiling face.\", \"answer\": \"8\"}\n";
    }
    const std::string args = "-d " + (dir / "zh.jsonl").string() + " --methods sample --max-new-tokens 1 -t 1 "
                             "--chat --out " + (dir / "out").string();
    auto r = run(args);
    ASSERT_EQ(r.exit_code, 0) << r.output;
    size_t files = 0, cut = 0;
    for (const auto & e : fs::directory_iterator(dir / "out" / "sample")) {
        if (e.path().extension() != ".json") continue;
        ++files;
        if (slurp(e.path()).find("\"text\": \"\xEF\xBF\xBD\"") != std::string::npos) ++cut;
    }
    EXPECT_EQ(files, 6u);
    EXPECT_EQ(cut, 2u);
    r = run(args);
    ASSERT_EQ(r.exit_code, 0) << r.output;
    EXPECT_NE(r.output.find("[sample] 0 to run, 6 already done"), std::string::npos) << r.output;
    fs::remove_all(dir);
}

// best-of-n@smc takes N from the tokens smc spent over the length of one T = 1 sample, and
// records both; without smc results it is skipped with a message and a non-zero exit.
TEST(RunMatched, BestOfNMatchedToSmcSpendsSmcsBudget) {
    const auto dir = fresh_dir("matched");
    const std::string common = "-d mawps-multiarith --data-dir " POWERSAMPLE_TEST_DATA_DIR
                               " --limit 2 --max-new-tokens 8 --particles 4 -t 1 --out " + dir.string();
    auto r = run(common + " --methods best-of-n@smc");
    EXPECT_EQ(r.exit_code, 1) << r.output;
    EXPECT_NE(r.output.find("[best-of-n@smc] skipped: no finished results of 'smc' to match (run it first)"),
              std::string::npos) << r.output;

    r = run(common + " --methods sample,smc,best-of-n@smc");
    ASSERT_EQ(r.exit_code, 0) << r.output;
    double smc_tokens = 0, sample_tokens = 0;
    for (const auto & e : fs::directory_iterator(dir / "smc")) {
        if (e.path().extension() != ".json") continue;
        const auto j = slurp(e.path());
        EXPECT_NE(j.find("\"particles\": 4"), std::string::npos) << j;
        const auto at = j.rfind("\"n_tokens_generated\": ");
        smc_tokens += std::stod(j.substr(at + 22));
    }
    for (const auto & e : fs::directory_iterator(dir / "sample")) {
        if (e.path().extension() != ".json") continue;
        const auto j = slurp(e.path());
        const auto at = j.rfind("\"n_tokens_generated\": ");
        sample_tokens += std::stod(j.substr(at + 22));
    }
    // Four particles of up to 8 tokens each against one sample of up to 8.
    const long n = std::lround(smc_tokens / std::max(1.0, sample_tokens));
    EXPECT_GE(n, 2);
    EXPECT_NE(r.output.find("[best-of-n@smc] N = " + std::to_string(n) + ": smc spent"), std::string::npos)
        << r.output;
    size_t files = 0;
    for (const auto & e : fs::directory_iterator(dir / "best-of-n@smc")) {
        if (e.path().extension() != ".json") continue;
        ++files;
        const auto j = slurp(e.path());
        EXPECT_NE(j.find("\"matched_to\": \"smc\""), std::string::npos) << j;
        EXPECT_NE(j.find("\"n_chains\": " + std::to_string(n)), std::string::npos) << j;
    }
    EXPECT_EQ(files, 2u);
    EXPECT_NE(r.output.find("| best-of-n@smc | 2 |"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("time x sample"), std::string::npos) << r.output;
    fs::remove_all(dir);
}

// SIGINT in the middle of a batch: nothing cancelled is written as finished, and the rerun
// completes the rest.
TEST(RunResume, InterruptLosesOnlyProblemsInFlight) {
    const auto dir = fresh_dir("sigint");
    const std::string args = "-d mawps-multiarith --data-dir " POWERSAMPLE_TEST_DATA_DIR
                             " --limit 3 --methods greedy,sample --max-new-tokens 32 -t 1 --out " + dir.string();
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        const std::string cmd = std::string("exec ") + POWERSAMPLE_EVAL_BINARY + " " + args + " >/dev/null 2>&1";
        ::execl("/bin/sh", "sh", "-c", cmd.c_str(), (char *) nullptr);
        ::_exit(127);
    }
    // Interrupt once the model is generating: after the first result of the first method.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    bool started = false;
    while (std::chrono::steady_clock::now() < deadline && !started) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        started = fs::exists(dir / "greedy") && !fs::is_empty(dir / "greedy");
    }
    ::kill(pid, SIGINT);
    int status = 0;
    ::waitpid(pid, &status, 0);
    ASSERT_TRUE(WIFEXITED(status));
    const int code = WEXITSTATUS(status);
    // 130 when the interrupt landed during generation, 0 when the run had already finished.
    EXPECT_TRUE(code == 130 || code == 0) << code;
    size_t finished_before = 0;
    for (const char * m : { "greedy", "sample" }) {
        if (!fs::exists(dir / m)) continue;
        for (const auto & e : fs::directory_iterator(dir / m)) {
            if (e.path().extension() != ".json") continue;
            ++finished_before;
            EXPECT_EQ(slurp(e.path()).find("\"cancelled\""), std::string::npos) << e.path();
        }
    }
    const auto r = run(args);
    ASSERT_EQ(r.exit_code, 0) << r.output;
    EXPECT_NE(r.output.find("| greedy | 3 |"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("| sample | 3 |"), std::string::npos) << r.output;
    if (code == 130) {
        EXPECT_LT(finished_before, 6u);
    }
    fs::remove_all(dir);
}
