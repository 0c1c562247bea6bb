// How power-sampling shows results: plain text (stdout: completions; stderr: statistics),
// the step-by-step trace, the side-by-side comparison, JSON, and the progress bar.
#pragma once

#include "powersample/powersample.h"

#include <nlohmann/json.hpp>

#include <chrono>
#include <string>
#include <vector>

struct run_report {
    powersample::sampling_params   params;
    powersample::generation_result result;
};

struct output_style {
    bool json    = false;
    bool trace   = false;
    bool quiet   = false;
    bool compare = false;
};

void print_reports(const powersample::model & m, const std::string & prompt, const std::vector<run_report> & reports,
                   const output_style & style);

// The statistics of one run on stderr: a line per chain, then one for the run. Local and
// remote runs print the same lines (a remote run adds its own after them).
void print_summary(const run_report & r);

// The JSON form of one run: params, chains (text, tokens, log p, acceptance, trace), timing.
nlohmann::json report_to_json(const run_report & r);
nlohmann::json params_to_json(const powersample::sampling_params & p);

// A one-line progress bar on stderr, redrawn at most every 100 ms; silent when disabled.
class progress_display {
public:
    progress_display(bool enabled, const powersample::sampling_params & params);
    void update(const powersample::progress & p);
    void finish();

private:
    bool                                  enabled_;
    int32_t                               n_chains_;
    std::vector<powersample::progress>    latest_;
    std::chrono::steady_clock::time_point start_, last_draw_;
    bool                                  drawn_ = false;
};

// JSON text that never throws on invalid UTF-8 in model output (replaced by U+FFFD).
std::string dump_json(const nlohmann::json & j, int indent = -1);
