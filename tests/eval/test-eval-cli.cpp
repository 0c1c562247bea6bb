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
    int         exit_code = -1;
    std::string output;  // stdout and stderr together
};

run_result run(const std::string & args) {
    const std::string cmd = std::string(POWERSAMPLE_EVAL_BINARY) + " " + args + " 2>&1";
    run_result        r;
    FILE *            p = ::popen(cmd.c_str(), "r");
    if (!p) return r;
    std::array<char, 4096> buf;
    size_t                 n;
    while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) r.output.append(buf.data(), n);
    const int status = ::pclose(p);
    r.exit_code      = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
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

// CLI11's own errors (an unknown flag, a value that is not a number) exit 1 like every usage
// error, not with CLI11's codes (104, 105, ...); --version prints one line and exits 0.
TEST(CliBadInput, ParserErrorsExitOneAndVersionExitsZero) {
    EXPECT_EQ(run("--no-such-flag").exit_code, 1);
    EXPECT_EQ(run("--limit many").exit_code, 1);
    const auto v = run("--version");
    EXPECT_EQ(v.exit_code, 0);
    EXPECT_EQ(v.output.rfind("powersample ", 0), 0u) << v.output;
    EXPECT_NE(v.output.find(" (commit "), std::string::npos) << v.output;
    EXPECT_NE(v.output.find("llama.cpp "), std::string::npos) << v.output;
}

TEST(CliBadInput, MissingDataDirNamesTheFlag) {
    const auto r = run("-d gsm8k --methods greedy --data-dir /no/such/dir");
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.output.find("/no/such/dir/gsm8k_test.jsonl not found; give --data-dir DIR"), std::string::npos)
        << r.output;
}

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

TEST(CliBadInput, MethodKnobsOutOfRangeNameTheFlag) {
    // The library names its field (invalid_argument_error::field()); the eval answers with the flag.
    for (const auto & [args, flag] : std::vector<std::pair<std::string, std::string>>{
             { "--methods smc --particles 0", "--particles = 0" },
             { "--methods smc --particles -3", "--particles = -3" },  // not mistaken for "unset"
             { "--methods smc --ess-threshold 1.5", "--ess-threshold = 1.5" },
             { "--methods sps --sps-rollouts 1", "--sps-rollouts = 1" },
             { "--methods sps --sps-top-k 9 --sps-candidates 8", "--sps-top-k = 9" },
             { "--methods sps --sps-lookahead -1", "--sps-lookahead = -1" },
             { "--methods sps --sps-last-candidates 2", "--sps-last-candidates = 2" },  // below K_w = K = 4
             { "--methods sps --sps-last-candidates 2 --sps-last-top-k 3", "--sps-last-top-k = 3" },
             { "--methods sps --sps-proposal q", "--sps-proposal = 'q'" },
             { "--methods sps --sps-level word", "--sps-level = 'word'" },
             { "--methods sps --max-new-tokens 8", "--n-predict = 8" },  // below sps-small's block of 16
             { "--methods power --steps -2", "--steps = -2" },           // -1 alone means the preset's
             { "--methods best-of-n -n 3", "--n-samples N" },            // -n is ambiguous across the tools
             { "--methods power --block-size -4", "--block-size = -4" },
             { "--methods power-entropy --entropy-floor 0", "--entropy-floor = 0" } }) {
        const auto r = run("-d mawps-multiarith " + args);
        EXPECT_EQ(r.exit_code, 1) << args;
        EXPECT_NE(r.output.find(flag), std::string::npos) << args << ": " << r.output;
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
    const auto dir  = fresh_dir("badlines");
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
    const auto        dir  = fresh_dir("resume");
    const std::string args = "-d mawps-multiarith --data-dir " POWERSAMPLE_TEST_DATA_DIR
                             " --limit 3 --methods greedy --max-new-tokens 8 -t 1 --out " +
                             dir.string();
    auto r = run(args);
    ASSERT_EQ(r.exit_code, 0) << r.output;
    EXPECT_NE(r.output.find("[greedy] 3 to run, 0 already done"), std::string::npos) << r.output;
    const fs::path        d = dir / "greedy";
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
        for (int i = 0; i < 6; ++i)
            f << "{\"question\": \"Reply with only an emoji of a smiling face.\", \"answer\": \"8\"}\n";
    }
    const std::string args = "-d " + (dir / "zh.jsonl").string() +
                             " --methods sample --max-new-tokens 1 -t 1 "
                             "--chat --out " +
                             (dir / "out").string();
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
    const auto        dir    = fresh_dir("matched");
    const std::string common = "-d mawps-multiarith --data-dir " POWERSAMPLE_TEST_DATA_DIR
                               " --limit 2 --max-new-tokens 8 --particles 4 -t 1 --out " +
                               dir.string();
    auto r = run(common + " --methods best-of-n@smc");
    EXPECT_EQ(r.exit_code, 1) << r.output;
    EXPECT_NE(r.output.find("[best-of-n@smc] skipped: no finished results of 'smc' to match (run it first)"),
              std::string::npos)
        << r.output;

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
        const auto j  = slurp(e.path());
        const auto at = j.rfind("\"n_tokens_generated\": ");
        sample_tokens += std::stod(j.substr(at + 22));
    }
    // Four particles of up to 8 tokens each against one sample of up to 8.
    const long n = std::lround(smc_tokens / std::max(1.0, sample_tokens));
    EXPECT_GE(n, 2);
    EXPECT_NE(r.output.find("[best-of-n@smc] N = " + std::to_string(n) + ": smc spent"), std::string::npos) << r.output;
    size_t files = 0;
    for (const auto & e : fs::directory_iterator(dir / "best-of-n@smc")) {
        if (e.path().extension() != ".json") continue;
        ++files;
        const auto j = slurp(e.path());
        EXPECT_NE(j.find("\"matched_to\": \"smc\""), std::string::npos) << j;
        EXPECT_NE(j.find("\"chains\": " + std::to_string(n)), std::string::npos) << j;  // params.chains
    }
    EXPECT_EQ(files, 2u);
    EXPECT_NE(r.output.find("| best-of-n@smc | 2 |"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("time x sample"), std::string::npos) << r.output;
    fs::remove_all(dir);
}

// SIGINT in the middle of a batch: nothing cancelled is written as finished, and the rerun
// completes the rest.
TEST(RunResume, InterruptLosesOnlyProblemsInFlight) {
    const auto        dir  = fresh_dir("sigint");
    const std::string args = "-d mawps-multiarith --data-dir " POWERSAMPLE_TEST_DATA_DIR
                             " --limit 3 --methods greedy,sample --max-new-tokens 32 -t 1 --out " +
                             dir.string();
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        const std::string cmd = std::string("exec ") + POWERSAMPLE_EVAL_BINARY + " " + args + " >/dev/null 2>&1";
        ::execl("/bin/sh", "sh", "-c", cmd.c_str(), (char *)nullptr);
        ::_exit(127);
    }
    // Interrupt once the model is generating: after the first result of the first method.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    bool       started  = false;
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

namespace {

// Lines of `file` (0 when missing).
size_t count_lines(const fs::path & file) {
    std::ifstream in(file);
    size_t        n = 0;
    for (std::string line; std::getline(in, line);) n += !line.empty();
    return n;
}

// Cell `column` (0: the method) of `method`'s row of the summary table, spaces included; "" if absent.
std::string table_cell(const std::string & output, const std::string & method, size_t column) {
    const auto start = output.find("| " + method + " |");
    if (start == std::string::npos) return {};
    const auto row = output.substr(start + 1, output.find('\n', start) - start - 1);
    size_t     at  = 0;
    for (size_t i = 0; i < column; ++i) {
        at = row.find('|', at);
        if (at == std::string::npos) return {};
        ++at;
    }
    return row.substr(at, row.find('|', at) - at);
}

size_t count_results(const fs::path & dir) {
    size_t          n = 0;
    std::error_code ec;
    for (const auto & e : fs::directory_iterator(dir, ec)) {
        const auto name = e.path().filename().string();
        n += e.path().extension() == ".json" && name[0] != '_';
    }
    return n;
}

}  // namespace

// --out is checked before the model loads: the model path here does not exist, so reaching the
// model would end in a --model error instead.
TEST(CliBadInput, OutMustBeAWritableDirectory) {
    const auto dir  = fresh_dir("out");
    const auto file = dir / "a-file";
    std::ofstream(file) << "x";
    const std::string common = "-d mawps-multiarith --data-dir " POWERSAMPLE_TEST_DATA_DIR
                               " --limit 1 --methods greedy -m /nonexistent/model.gguf ";
    auto r = run(common + "--out " + file.string());
    EXPECT_EQ(r.exit_code, 1) << r.output;
    EXPECT_EQ(r.output,
              "power-sampling-eval: --out '" + file.string() + "': '" + file.string() + "' is not a directory\n");
    // A method directory that is a file is caught as well.
    fs::create_directories(dir / "out2");
    std::ofstream(dir / "out2" / "greedy") << "x";
    r = run(common + "--out " + (dir / "out2").string());
    EXPECT_EQ(r.exit_code, 1) << r.output;
    EXPECT_NE(r.output.find("out2/greedy' is not a directory"), std::string::npos) << r.output;

    // Read-only: as root only a read-only mount refuses writes, so the binary runs in a mount
    // namespace where the directory is bound read-only.
    const auto ro = dir / "ro";
    fs::create_directories(ro);
    std::string cmd_prefix;
    if (::geteuid() == 0) {
        if (std::system("unshare -m true >/dev/null 2>&1") != 0) GTEST_SKIP() << "unshare -m unavailable";
        cmd_prefix = "unshare -m sh -c 'mount --bind " + ro.string() + " " + ro.string() +
                     " && mount -o remount,ro,bind " + ro.string() + " " + ro.string() + " && exec \"$0\" \"$@\"' ";
    } else {
        fs::permissions(ro, fs::perms::owner_read | fs::perms::owner_exec);
    }
    const std::string cmd = cmd_prefix + POWERSAMPLE_EVAL_BINARY + " " + common + "--out " + ro.string() + " 2>&1";
    FILE *            p   = ::popen(cmd.c_str(), "r");
    ASSERT_NE(p, nullptr);
    std::string            out;
    std::array<char, 4096> buf;
    for (size_t n; (n = std::fread(buf.data(), 1, buf.size(), p)) > 0;) out.append(buf.data(), n);
    const int status = ::pclose(p);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 1) << status << ": " << out;
    EXPECT_NE(out.find("power-sampling-eval: --out '" + ro.string() + "': "), std::string::npos) << out;
    EXPECT_TRUE(out.find("Read-only file system") != std::string::npos ||
                out.find("Permission denied") != std::string::npos)
        << out;
    EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << out;
    fs::permissions(ro, fs::perms::owner_all);
    fs::remove_all(dir);
}

// One problem whose prompt is beyond the model's context is recorded as skipped, with the
// reason, and counted; the others run, on the first run and on every rerun.
TEST(RunSkip, OversizedProblemIsSkippedAndTheRestRun) {
    const auto  dir = fresh_dir("oversized");
    std::string huge;
    for (int i = 0; i < 20000; ++i) huge += "word ";
    std::ofstream(dir / "u.jsonl") << "{\"id\": \"a\", \"question\": \"What is 1+1?\", \"answer\": 2}\n"
                                   << "{\"id\": \"huge\", \"question\": \"" << huge << "\", \"answer\": 3}\n"
                                   << "{\"id\": \"c\", \"question\": \"What is 2+2?\", \"answer\": 4}\n";
    const std::string args = "-m smollm2-135m -d " + (dir / "u.jsonl").string() +
                             " --id-field id --raw --methods greedy --max-new-tokens 4 -t 1 --out " +
                             (dir / "out").string();
    for (const char * expected :
         { "[greedy] 2 to run, 0 already done, 1 skipped", "[greedy] 0 to run, 2 already done, 1 skipped" }) {
        const auto r = run(args);
        ASSERT_EQ(r.exit_code, 0) << r.output;
        EXPECT_NE(r.output.find(expected), std::string::npos) << r.output;
        EXPECT_NE(r.output.find("[greedy] skipped huge: prompt: "), std::string::npos) << r.output;
        EXPECT_NE(r.output.find("tokens, beyond the model's context of"), std::string::npos) << r.output;
        EXPECT_NE(r.output.find("| greedy | 2 |"), std::string::npos) << r.output;
        EXPECT_EQ(table_cell(r.output, "greedy", 7), " 1 ") << r.output;  // the skipped column
    }
    const auto rec = slurp(dir / "out" / "greedy" / "huge.json");
    EXPECT_NE(rec.find("\"skipped\": \"prompt: "), std::string::npos) << rec.substr(0, 400);
    EXPECT_NE(slurp(dir / "out" / "summary.json").find("\"n_skipped\": 1"), std::string::npos);
    fs::remove_all(dir);
}

// Time is recorded per finished problem as it finishes, so a killed run keeps the timing of
// the problems it finished.
TEST(RunTiming, TimePerFinishedProblemSurvivesAKill) {
    const auto        dir  = fresh_dir("timing");
    const std::string args = "-m smollm2-135m -d mawps-multiarith --data-dir " POWERSAMPLE_TEST_DATA_DIR
                             " --limit 3 --methods greedy --max-new-tokens 4 -t 1 --out " +
                             dir.string();
    auto r = run(args);
    ASSERT_EQ(r.exit_code, 0) << r.output;
    EXPECT_EQ(count_lines(dir / "greedy" / "_timing.jsonl"), 3u);
    EXPECT_NE(slurp(dir / "greedy" / "_timing.jsonl").find("\"problems\":1"), std::string::npos);

    const auto        killed    = fresh_dir("timing-kill");
    const std::string kill_args = "-m smollm2-135m -d mawps-multiarith --data-dir " POWERSAMPLE_TEST_DATA_DIR
                                  " --limit 3 --methods greedy --max-new-tokens 48 -t 1 --out " +
                                  killed.string();
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        const std::string cmd = std::string("exec ") + POWERSAMPLE_EVAL_BINARY + " " + kill_args + " >/dev/null 2>&1";
        ::execl("/bin/sh", "sh", "-c", cmd.c_str(), (char *)nullptr);
        ::_exit(127);
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    while (std::chrono::steady_clock::now() < deadline && count_lines(killed / "greedy" / "_timing.jsonl") == 0) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
    const size_t lines = count_lines(killed / "greedy" / "_timing.jsonl");
    const size_t files = count_results(killed / "greedy");
    EXPECT_GE(lines, 1u);
    // The result file is written just before its timing line: a kill may fall between them.
    EXPECT_TRUE(lines == files || lines + 1 == files) << lines << " lines, " << files << " files";
    r = run("--summary-only --methods greedy --out " + killed.string());
    ASSERT_EQ(r.exit_code, 0) << r.output;
    // The batched time per problem is known.
    EXPECT_NE(table_cell(r.output, "greedy", 10), " - ") << r.output;
    EXPECT_NE(table_cell(r.output, "greedy", 10), "") << r.output;
    fs::remove_all(dir);
    fs::remove_all(killed);
}
