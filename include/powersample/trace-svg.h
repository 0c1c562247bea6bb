// powersample: a chain's trace as a picture.
//
// trace_to_svg() draws log p(x | prompt) of the chain's state after every Metropolis-Hastings
// step: a line for the state, one marker per step (green: accepted proposal, red: rejected
// proposal, drawn at the log p the proposal would have had), dashed lines between blocks, labelled
// axes. The SVG is self-contained (no scripts, fonts or style sheets). Each marker is a
// <circle class="step accepted|rejected" data-step="i" ...> with a <title> giving the step's
// block, position, lengths, log A and decision, so that tools and tests can read it back.
//
// The proposal markers need step_record::log_p_suffix_current/_proposal, which the engine always
// records with the trace. Thread safety: the functions are pure apart from the file written.
#pragma once

#include "powersample/sampling.h"

#include <string>

namespace powersample {

struct trace_svg_options {
    std::string title;         // drawn above the plot; empty = "Power sampling: log p per MCMC step"
    int32_t     width  = 880;  // pixels; >= 200
    int32_t     height = 440;  // pixels; >= 150
};

// The SVG document for one chain. A chain without steps (method other than power, or
// n_steps_per_block = 0) gives a valid SVG that says so.
std::string trace_to_svg(const sample_result & chain, const trace_svg_options & options = {});

// Throws invalid_argument_error naming the path when a file cannot be created there (missing or
// unwritable directory, or the path is a directory). Lets a tool fail before a long run.
void check_svg_path(const std::string & path);

// Writes trace_to_svg() to `path` atomically: a temporary file in the same directory, then
// rename(), so a reader never sees half a picture. Throws invalid_argument_error naming the path
// when it cannot be written.
void write_trace_svg(const std::string & path, const sample_result & chain, const trace_svg_options & options = {});

}  // namespace powersample
