// power-sampling --batch: many prompts through one context with continuous batching.
//
// Input: JSONL, one object per line: {"prompt": "...", "id": "..."} plus optional overrides:
// any knob by its JSON name (the knob table, powersample/knobs.h: "alpha", "max_tokens",
// "method", "smc": {"particles": 8}, ...), "chat" and "system". Output: JSONL in input order, each line written
// (and flushed) as soon as it and every line before it are finished, so an interrupted run keeps
// its finished prefix; --resume skips the ids already in the output file.
#pragma once

#include "powersample/powersample.h"

#include <atomic>
#include <string>

struct batch_options {
    std::string input;
    std::string output;  // empty = stdout
    std::string system_prompt;
    bool        resume        = false;
    bool        strict        = false;
    bool        chat          = false;
    bool        show_progress = false;
    bool        quiet         = false;
};

// Returns the process exit code (0, 1 for input errors, 130 when interrupted).
int run_batch(powersample::power_sampler & sampler, const powersample::sampling_params & defaults,
              const batch_options & options, std::atomic<bool> & interrupted);
