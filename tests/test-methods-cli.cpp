// The other methods (docs/methods.md) through the power-sampling command on the real default
// model: same seed, same tokens; every token of every particle, candidate and rollout counted;
// bad values named by their flag.
#include "run-command.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <string>
#include <sys/wait.h>
#include <unistd.h>

namespace {

run_result run_cli(const std::string & args) {
    return run_command(std::string(POWERSAMPLE_CLI) + " -m " + POWERSAMPLE_MODEL_PATH + " -t 1 " + args);
}

// Runs a method twice with one seed; returns the first run's chain.
nlohmann::json run_twice(const std::string & args) {
    const std::string full = "-p 'What is 7*8?' --json -q -s 7 -n 12 " + args;
    const run_result  a = run_cli(full), b = run_cli(full);
    EXPECT_EQ(a.exit_code, 0) << a.err;
    EXPECT_EQ(b.exit_code, 0) << b.err;
    if (a.exit_code != 0 || b.exit_code != 0) return {};
    const auto   ja = nlohmann::json::parse(a.out), jb = nlohmann::json::parse(b.out);
    const auto & c = ja["runs"][0]["chains"][0];
    EXPECT_EQ(c["tokens"], jb["runs"][0]["chains"][0]["tokens"]) << args;
    EXPECT_FALSE(c["tokens"].empty());
    double sum = 0.0;
    for (double v : c["token_log_p"]) sum += v;
    EXPECT_NEAR(sum, c["log_p"].get<double>(), 1e-9);
    return ja["runs"][0];
}

}  // namespace

TEST(methods_cli, smc_is_reproducible_and_counts_every_particle) {
    const auto run = run_twice("--method smc --particles 4 --alpha-ramp 4");
    if (run.empty()) return;
    EXPECT_EQ(run["params"]["method"], "smc");
    const auto & c = run["chains"][0];
    // Four particles all decode their first tokens; the answer is one of them.
    const auto len = int64_t(c["tokens"].size());
    EXPECT_GE(c["n_tokens_decoded"].get<int64_t>(), 4 * std::min<int64_t>(len, 1) + len - 1);
    EXPECT_GT(c["n_tokens_decoded"].get<int64_t>(), len);
}

TEST(methods_cli, sps_is_reproducible_and_counts_candidates_and_rollouts) {
    const auto run = run_twice(
        "--method sps --block-size 4 --sps-candidates 4 --sps-top-k 2 --sps-rollouts 2 "
        "--sps-lookahead 4");
    if (run.empty()) return;
    const auto & c   = run["chains"][0];
    const auto   len = int64_t(c["tokens"].size());
    // Per block: 4 candidates of up to 4 tokens, then 2 x 2 rollouts: well beyond the answer.
    EXPECT_GT(c["n_tokens_decoded"].get<int64_t>(), 2 * len);
}

TEST(methods_cli, sps_variants_are_selected_and_reported) {
    // The importance-weighted proposal at the token level, with its own last window.
    const auto run = run_twice(
        "--method sps --sps-proposal low-temp --sps-level token --sps-top-k 2 "
        "--sps-rollouts 2 --sps-lookahead 2 --sps-last-top-k 3");
    if (run.empty()) return;
    // The method's own knobs nest under its group, as the knob table names them.
    EXPECT_EQ(run["params"]["sps"]["proposal"], "low-temp");
    EXPECT_EQ(run["params"]["sps"]["level"], "token");
    EXPECT_EQ(run["params"]["sps"]["last_top_k"], 3);
    EXPECT_EQ(run["params"]["sps"]["last_candidates"], 16);  // 0 = --sps-candidates
    EXPECT_FALSE(run["params"].contains("smc"));             // only the method's own group
    const auto & c = run["chains"][0];
    // One decode per token for its candidates, plus 2 x 2 rollouts of up to 2 tokens after each
    // but the last.
    const auto len = int64_t(c["tokens"].size());
    EXPECT_GT(c["n_tokens_decoded"].get<int64_t>(), 2 * len);
    EXPECT_LE(c["n_tokens_decoded"].get<int64_t>(), len + 2 * 2 * 2 * len);
    const auto paper = run_twice("--method sps --block-size 4 --sps-candidates 4 --sps-top-k 2 --sps-rollouts 2");
    if (paper.empty()) return;
    EXPECT_EQ(paper["params"]["sps"]["proposal"], "base");  // the paper's, by default
    EXPECT_EQ(paper["params"]["sps"]["level"], "block");
}

TEST(methods_cli, power_entropy_is_reproducible_and_runs_its_steps) {
    const auto run = run_twice("--method power-entropy --block-size 6 --steps 2 --entropy-beta 2");
    if (run.empty()) return;
    const auto & c = run["chains"][0];
    EXPECT_GE(c["n_proposals"].get<int>(), 2);
    EXPECT_EQ(c["trace"].size(), size_t(c["n_proposals"].get<int>()));
}

TEST(methods_cli, best_of_n_is_reproducible_and_counts_all_samples) {
    const auto run = run_twice("--method best-of-n --best-of 3");
    if (run.empty()) return;
    const auto & c = run["chains"][0];
    EXPECT_GE(c["n_tokens_generated"].get<int64_t>(), int64_t(c["tokens"].size()) + 2);
}

TEST(methods_cli, bad_values_name_the_flag) {
    const std::pair<const char *, const char *> cases[] = {
        { "--method smc --particles 0", "--particles = 0" },
        { "--method smc --ess-threshold 1.5", "--ess-threshold = 1.5" },
        { "--method smc --ess-threshold 0", "--ess-threshold = 0" },
        { "--method sps --sps-top-k 9 --sps-candidates 4", "--sps-top-k = 9" },
        { "--method sps --sps-rollouts 1", "--sps-rollouts = 1" },
        { "--method sps --sps-lookahead -1", "--sps-lookahead = -1" },
        { "--method sps --block-size 0", "--block-size = 0" },
        { "--method sps --sps-last-candidates 2 --sps-last-top-k 3", "--sps-last-top-k = 3" },
        { "--method sps --sps-last-candidates 2", "--sps-last-candidates = 2" },
        { "--method sps --sps-proposal q", "--sps-proposal = 'q'" },
        { "--method sps --sps-level word", "--sps-level = 'word'" },
        { "--method sps --block-size 8", "--n-predict = 4" },  // T 4 cannot hold a block of 8
        { "--method power-entropy --entropy-beta -1", "--entropy-beta = -1" },
        { "--method power-entropy --entropy-floor 0", "--entropy-floor = 0" },
        { "--method best-of-n --best-of 0", "--best-of = 0" },
        { "--method smc --top-p 0.9", "--top-p = 0.9" },
        { "--method nope", "nope" },
    };
    for (const auto & [args, needle] : cases) {
        const run_result r = run_cli(std::string("-p hi -n 4 -s 1 -q ") + args);
        EXPECT_EQ(r.exit_code, 1) << args << "\n" << r.err;
        EXPECT_NE(r.err.find(needle), std::string::npos) << args << "\n" << r.err;
        EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << args << "\n" << r.err;
        EXPECT_TRUE(r.out.empty()) << args;
    }
}
