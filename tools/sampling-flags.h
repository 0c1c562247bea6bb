// The command-line flag for each field a library error can name (invalid_argument_error::field()),
// shared by power-sampling and power-sampling-eval, whose sampling flags are the same. The
// library speaks of its own fields ("block_size = 0: must be >= 1"); the user typed a flag, so the
// tools answer "--block-size = 0: must be >= 1".
#pragma once

#include "powersample/sampling.h"

#include <string>
#include <utility>

namespace powersample_tools {

inline const char * flag_for_field(const std::string & field) {
    static const std::pair<const char *, const char *> flags[] = {
        {"alpha", "--alpha"}, {"block_size", "--block-size"}, {"steps", "--steps"},
        {"max_new_tokens", "--n-predict"}, {"temperature", "--temp"}, {"top_k", "--top-k"},
        {"top_p", "--top-p"}, {"min_p", "--min-p"}, {"chains", "--chains"}, {"particles", "--particles"},
        {"ess_threshold", "--ess-threshold"}, {"resample_interval", "--resample-interval"},
        {"alpha_ramp_tokens", "--alpha-ramp"}, {"sps_candidates", "--sps-candidates"},
        {"sps_top_k", "--sps-top-k"}, {"sps_rollouts", "--sps-rollouts"}, {"sps_lookahead", "--sps-lookahead"},
        {"sps_last_candidates", "--sps-last-candidates"}, {"sps_last_top_k", "--sps-last-top-k"},
        {"sps_proposal", "--sps-proposal"}, {"sps_level", "--sps-level"}, {"entropy_beta", "--entropy-beta"},
        {"entropy_floor", "--entropy-floor"}, {"best_of", "--best-of"}, {"stop", "--stop"},
        {"method", "--method"}, {"preset", "--preset"}, {"n_threads", "--threads"}, {"n_ctx", "--ctx-size"},
        {"model", "-m/--model"}, {"url", "--remote"}, {"top_logprobs", "--remote-top-logprobs"},
        {"max_retries", "--remote-retries"}, {"timeout_seconds", "--remote-timeout"}};
    for (const auto & [name, flag] : flags) {
        if (field == name) return flag;
    }
    return nullptr;
}

// The same error, its message naming the flag instead of the field (unchanged when the field has
// no flag, or the message names the flag already).
inline powersample::invalid_argument_error name_the_flag(const powersample::invalid_argument_error & e) {
    const std::string & field = e.field();
    const char *        flag  = flag_for_field(field);
    const std::string   what  = e.what();
    if (!flag || what.rfind(flag, 0) == 0) return e;
    if (what.rfind(field, 0) == 0) return powersample::invalid_argument_error(field, flag + what.substr(field.size()));
    return powersample::invalid_argument_error(field, std::string(flag) + ": " + what);
}

}  // namespace powersample_tools
