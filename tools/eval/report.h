// The summary of an evaluation run: one row per method over its graded result files, rendered
// as a markdown table, JSON, and an HTML page with an inline SVG chart (no scripts, no fetches).
#pragma once

#include "graders.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace powersample::eval {

struct method_summary {
    std::string   method;
    std::uint64_t n_problems = 0;
    std::uint64_t n_correct  = 0;   // by the method's selected answer
    interval      accuracy_ci;      // 95% Wilson
    std::uint64_t n_no_answer = 0;  // problems whose selected answer is empty (counted wrong)
    // Samples that stopped at the token cap, of all samples: where this is large, the cap and
    // not the method decides the result.
    std::uint64_t n_samples_at_cap = 0, n_samples_total = 0;
    // Problems recorded as skipped (record["skipped"]: why, e.g. a prompt beyond the model's
    // context): not run, not in n_problems nor in the accuracy.
    std::uint64_t n_skipped = 0;
    // Samples per problem: the smallest count over the problems (pass@k needs k <= n for all).
    std::uint64_t n_samples = 0;
    // Unbiased pass@k averaged over problems, for k = 1 and k = n_samples; empty when each
    // problem has a single sample.
    std::vector<std::pair<std::uint64_t, double>> pass_at;
    double mean_tokens_generated = 0;  // per problem, all chains, rejected proposals included
    double mean_wall_seconds     = 0;  // per problem, admission to finish (latency in a batch)
    // Elapsed batch time divided by the problems it finished (throughput); nullopt when unknown.
    std::optional<double> seconds_per_problem;
    std::optional<double> acceptance_rate;  // MH acceptance over all power chains
    // seconds_per_problem over that of one plain sample (the "sample" row, else "greedy"): the
    // method's wall-time cost in samples; nullopt when either is unknown.
    std::optional<double> time_vs_sample;
    // Paired against the first method of the summary on the problems both solved or failed:
    // problems only this method got right (wins) and only the reference got right (losses),
    // with the exact two-sided sign (McNemar) test's p-value. Unset for the first row.
    struct paired_comparison {
        std::string   reference;
        std::uint64_t n_common = 0, wins = 0, losses = 0;
        double        p_value = 1.0;
    };
    std::optional<paired_comparison> paired;

    double accuracy() const { return n_problems ? double(n_correct) / double(n_problems) : 0.0; }
};

// Elapsed time of the generation batches of one method: seconds and problems finished.
struct batch_timing {
    double        seconds  = 0;
    std::uint64_t problems = 0;
};

// Two-sided exact sign test: the probability, under "each discordant problem is a fair coin",
// of a split at least as uneven as wins : losses. 1 when there are no discordant problems.
double sign_test_p_value(std::uint64_t wins, std::uint64_t losses);

// Summarises graded records (each with "method", "samples" and "grade"), one row per method in
// the order of `method_order` (methods without graded records are left out). Skipped records
// (with "skipped") are only counted.
std::vector<method_summary> summarize(const std::vector<nlohmann::json> &         records,
                                      const std::vector<std::string> &            method_order,
                                      const std::map<std::string, batch_timing> & timings = {});

// Run description shown above the table: model, dataset, settings (key -> value, in order).
using run_info = std::vector<std::pair<std::string, std::string>>;

std::string    summary_markdown(const std::vector<method_summary> & rows, const run_info & info);
nlohmann::json summary_json(const std::vector<method_summary> & rows, const run_info & info);
std::string    report_html(const std::vector<method_summary> & rows, const run_info & info);

}  // namespace powersample::eval
