// Smoke test of power-sampling-bench on the default model: it runs, prints valid JSON of the
// documented schema, and every measured value is positive. A benchmark is never a timed
// pass/fail test, so no speed is asserted here.
#include "powersample/powersample.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <array>
#include <cstdio>
#include <string>
#include <sys/wait.h>

namespace {

std::string run_bench(const std::string & args, int & exit_code) {
    const std::string cmd  = std::string(POWERSAMPLE_BENCH_PATH) + " " + args;
    FILE *            pipe = popen(cmd.c_str(), "r");
    if (!pipe) {
        exit_code = -1;
        return {};
    }
    std::string            out;
    std::array<char, 4096> buf;
    size_t                 n;
    while ((n = fread(buf.data(), 1, buf.size(), pipe)) > 0) out.append(buf.data(), n);
    const int status = pclose(pipe);
    exit_code        = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return out;
}

}  // namespace

TEST(bench_smoke, json_schema_and_positive_values) {
    int               rc  = 0;
    const std::string out = run_bench(
        "-m smollm2-135m --tests decode-limit,mcmc-single -r 1 --no-warmup -t 1 -p 8 -n 8 "
        "--max-new-tokens 8 -o json",
        rc);
    ASSERT_EQ(rc, 0) << out;
    const auto rows = nlohmann::json::parse(out);  // stdout must be the JSON document alone
    ASSERT_TRUE(rows.is_array());
    ASSERT_EQ(rows.size(), 2u);
    EXPECT_EQ(rows[0]["test"], "decode-limit");
    EXPECT_EQ(rows[1]["test"], "mcmc-single");
    for (const auto & r : rows) {
        for (const char * key :
             { "commit", "model_file", "model_desc", "timer", "test", "params", "unit", "ratio_to" }) {
            ASSERT_TRUE(r.contains(key) && r[key].is_string()) << key << " in " << r.dump();
        }
        for (const char * key : { "n_threads", "n_gpu_layers", "seed", "n" }) {
            ASSERT_TRUE(r.contains(key) && r[key].is_number_integer()) << key << " in " << r.dump();
        }
        for (const char * key : { "value", "stddev", "n_tokens", "ratio" }) {
            ASSERT_TRUE(r.contains(key) && r[key].is_number()) << key << " in " << r.dump();
        }
        EXPECT_FALSE(r["commit"].get<std::string>().empty());
        EXPECT_EQ(r["model_file"], "SmolLM2-135M-Instruct.Q4_1.gguf");
        EXPECT_EQ(r["n_threads"], 1);
        EXPECT_EQ(r["n"], 1);
        EXPECT_EQ(r["timer"], "wall");
        EXPECT_EQ(r["unit"], "t/s");
        EXPECT_GT(r["value"].get<double>(), 0.0);
        EXPECT_GT(r["n_tokens"].get<double>(), 0.0);
        EXPECT_GT(r["ratio"].get<double>(), 0.0);
        EXPECT_EQ(r["ratio_to"], "decode-limit");
    }
}

// The early-rejection rows: the bench itself fails unless the chains are identical on and off;
// on decodes no more tokens than off, and the saved fraction is theirs.
TEST(bench_smoke, early_rejection_rows) {
    int               rc  = 0;
    const std::string out = run_bench(
        "-m smollm2-135m --tests early-rejection -r 1 --no-warmup -t 1 -p 8 "
        "--max-new-tokens 48 -o json",
        rc);
    ASSERT_EQ(rc, 0) << out;
    const auto rows = nlohmann::json::parse(out);
    ASSERT_EQ(rows.size(), 8u);  // quality and paper: off, on, saved, wall
    for (size_t i = 0; i < rows.size(); i += 4) {
        EXPECT_EQ(rows[i]["test"], "early-rejection");
        const double off = rows[i]["value"], on = rows[i + 1]["value"], saved = rows[i + 2]["value"];
        EXPECT_LE(on, off) << rows.dump();
        EXPECT_NEAR(saved, 1.0 - on / off, 1e-9);
        EXPECT_GT(rows[i + 3]["ratio"].get<double>(), 0.0);
    }
}

TEST(bench_smoke, usage_errors_exit_1) {
    int rc = 0;
    run_bench("--tests no-such-test 2>/dev/null", rc);
    EXPECT_EQ(rc, 1);
    run_bench("-o yaml 2>/dev/null", rc);
    EXPECT_EQ(rc, 1);
    run_bench("-r 0 2>/dev/null", rc);
    EXPECT_EQ(rc, 1);
}
