// powersample: the sampling knobs, each described once.
//
// Every field of sampling_params that a user sets is listed here with its name, its flag, its
// range and its help line. The frontends are driven by this list and spell none of it again:
//   * the command-line flags of power-sampling and power-sampling-eval (and their --help),
//   * every JSON writer and reader: the CLI's and the eval's --json, the eval's result records,
//     the server's requests and its statistics,
//   * the Python package's SamplingParams attributes and its method_options keywords,
//   * validate()'s range checks and the field of invalid_argument_error.
//
// One vocabulary (README, "The knobs, and their names in JSON"): a knob common to every method
// is a top-level key ("alpha", "max_tokens", "chains"); a method's own knobs nest under its group
// ("smc": {"particles": 32}, "sps": {"top_k": 8}). A knob's name is "group.key" or "key": that is
// what invalid_argument_error::field() holds and what the server and Python name in errors.
// Where a seed or OpenAI names a thing the name follows it (steps, max_tokens); the aliases a
// frontend accepts at its edge (the server's "n" for chains, Python's max_len) are the
// frontend's, not the table's.
//
// The list is a visitor in the manner of gemma.cpp's args (ForEach): for_each_knob(visit) calls
// visit(info, member) once per knob, member a pointer to the sampling_params field, so one loop
// reads, writes, registers or prints every knob of any sampling_params object.
#pragma once

#include "powersample/sampling.h"

#include <algorithm>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

namespace powersample {

struct knob_info {
    const char * group;   // "" for every method's knobs, else the method group the knob nests in:
                          // "power_entropy", "smc", "sps", "best_of_n"
    const char * key;     // the name inside the group (JSON key, request field, Python keyword)
    const char * member;  // the sampling_params member (and the Python SamplingParams attribute)
    const char * flags;   // command-line names, CLI11 style ("-n,--n-predict"); "" = none. For a
                          // bool knob the flag sets the opposite of the default.
    const char * help;    // what it does, for --help
    // Valid values of a number: [min, max], an end exclusive where *_open; infinite = no bound.
    // Doubles must also be finite. Cross-field rules (sps.top_k <= sps.candidates) are validate()'s.
    double       min      = -std::numeric_limits<double>::infinity();
    double       max      = std::numeric_limits<double>::infinity();
    bool         min_open = false, max_open = false;
    const char * note = "";  // what special values mean, e.g. "0 = off"; shown in help and errors

    // "group.key", or "key" for a common knob: the field an error names.
    std::string name() const { return *group ? std::string(group) + "." + key : std::string(key); }
    // The command-line names, one per entry: {"-n", "--n-predict"}.
    std::vector<std::string> flag_names() const {
        std::vector<std::string> out;
        const std::string        all = flags;
        for (size_t at = 0; at < all.size();) {
            const size_t end = std::min(all.find(',', at), all.size());
            out.push_back(all.substr(at, end - at));
            at = end + 1;
        }
        return out;
    }
    // The flag an error names: the first long one ("--n-predict"), or "" when there is none.
    std::string long_flag() const {
        for (const std::string & one : flag_names()) {
            if (one.rfind("--", 0) == 0) return one;
        }
        return "";
    }
    // The range as a phrase: "> 0", ">= 1", "in (0, 1]"; "" when unbounded.
    std::string range_text() const;
};

namespace knob_detail {
constexpr double inf = std::numeric_limits<double>::infinity();
inline knob_info at_least(knob_info k, double lo, const char * note = "") {
    k.min  = lo;
    k.note = note;
    return k;
}
inline knob_info above(knob_info k, double lo, const char * note = "") {
    k.min      = lo;
    k.min_open = true;
    k.note     = note;
    return k;
}
inline knob_info in_range(knob_info k, double lo, bool lo_open, double hi, bool hi_open, const char * note = "") {
    k.min      = lo;
    k.min_open = lo_open;
    k.max      = hi;
    k.max_open = hi_open;
    k.note     = note;
    return k;
}
}  // namespace knob_detail

// Calls visit(const knob_info &, T sampling_params::* member) for every knob, in the order
// --help and JSON show them. T is one of: double, int32_t, int64_t, uint64_t, bool,
// std::vector<std::string>, enum method, enum sps_proposal, enum sps_level.
template <class Visitor> void for_each_knob(Visitor && visit) {
    using namespace knob_detail;
    using P = sampling_params;
    // Every method's knobs.
    visit(knob_info{ "", "method", "method", "--method", "the sampler (docs/methods.md)" }, &P::method);
    visit(above({ "", "alpha", "alpha", "--alpha", "target exponent: pi ∝ p^alpha" }, 0), &P::alpha);
    visit(at_least({ "", "block_size", "block_size", "--block-size", "tokens per block, B" }, 1), &P::block_size);
    visit(at_least({ "", "steps", "n_steps_per_block", "--steps", "MH steps per block, N" }, 0), &P::n_steps_per_block);
    visit(at_least({ "", "max_tokens", "max_new_tokens", "-n,--n-predict,--max-new-tokens",
                     "cap on completion length in tokens, T" },
                   1),
          &P::max_new_tokens);
    visit(at_least({ "", "temperature", "temperature", "--temp", "proposal temperature" }, 0,
                   "0 = 1/alpha for power and low-temp, 1 for sample"),
          &P::temperature);
    visit(at_least({ "", "top_k", "top_k", "--top-k",
                     "proposal top-k; the chain then samples pi restricted to what the proposal can produce" },
                   0, "0 = off"),
          &P::top_k);
    visit(in_range({ "", "top_p", "top_p", "--top-p", "proposal nucleus" }, 0, true, 1, false, "1 = off"), &P::top_p);
    visit(in_range({ "", "min_p", "min_p", "--min-p", "proposal min-p" }, 0, false, 1, true, "0 = off"), &P::min_p);
    visit(knob_info{ "", "seed", "seed", "-s,--seed", "RNG seed; each chain derives its own streams" }, &P::seed);
    visit(at_least({ "", "chains", "n_chains", "--chains", "independent chains (samples) of the prompt" }, 1),
          &P::n_chains);
    visit(knob_info{ "", "early_rejection", "early_rejection", "--no-early-rejection",
                     "power, power-entropy: stop decoding a proposal once it cannot be accepted (exact: the same "
                     "answers from fewer tokens)" },
          &P::early_rejection);
    visit(at_least({ "", "max_tokens_decoded", "max_tokens_decoded", "",
                     "compute budget: tokens the request may put through the model" },
                   0, "0 = no limit"),
          &P::max_tokens_decoded);
    visit(knob_info{ "", "stop", "stop", "--stop",
                     "stop string: the completion ends with the token that completes it, its text before it (up to 4, "
                     "each up to 64 bytes)" },
          &P::stop);
    // power-entropy
    visit(at_least(
              { "power_entropy", "beta", "entropy_beta", "--entropy-beta", "power-entropy: cut weight exponent beta" },
              0, "0 = uniform cuts"),
          &P::entropy_beta);
    visit(in_range(
              { "power_entropy", "floor", "entropy_floor", "--entropy-floor", "power-entropy: uniform share of cuts" },
              0, true, 1, false, "every cut must stay reachable"),
          &P::entropy_floor);
    // smc
    visit(at_least({ "smc", "particles", "n_particles", "--particles", "smc: particles N" }, 1), &P::n_particles);
    visit(in_range({ "smc", "ess_threshold", "ess_threshold", "--ess-threshold",
                     "smc: resample when ESS < kappa * N; kappa" },
                   0, true, 1, false),
          &P::ess_threshold);
    visit(at_least({ "smc", "resample_interval", "resample_interval", "--resample-interval",
                     "smc: tokens between ESS checks" },
                   1),
          &P::resample_interval);
    visit(at_least({ "smc", "alpha_ramp_tokens", "alpha_ramp_tokens", "--alpha-ramp",
                     "smc: tokens over which alpha rises from 1" },
                   0, "0 = no ramp"),
          &P::alpha_ramp_tokens);
    // sps
    visit(knob_info{ "sps", "proposal", "sps_proposal", "--sps-proposal",
                     "sps: where candidates and rollouts come from: the base model at T = 1 (the paper) or at "
                     "T = 1/alpha, importance-weighted" },
          &P::sps_proposal);
    visit(knob_info{ "sps", "level", "sps_level", "--sps-level",
                     "sps: sampled candidate blocks (Alg. 2) or the top-K tokens (Alg. 1)" },
          &P::sps_level);
    visit(
        at_least({ "sps", "candidates", "sps_candidates", "--sps-candidates", "sps: candidate blocks per boundary, L" },
                 1),
        &P::sps_candidates);
    visit(at_least({ "sps", "top_k", "sps_top_k", "--sps-top-k", "sps: candidates kept, K (<= sps.candidates)" }, 1),
          &P::sps_top_k);
    visit(at_least({ "sps", "rollouts", "sps_rollouts", "--sps-rollouts", "sps: rollouts per candidate, M" }, 2,
                   "the jackknife leaves one out"),
          &P::sps_rollouts);
    visit(at_least({ "sps", "lookahead", "sps_lookahead", "--sps-lookahead", "sps: tokens per rollout, H" }, 0,
                   "0 = to the cap"),
          &P::sps_lookahead);
    visit(at_least({ "sps", "last_candidates", "sps_last_candidates", "--sps-last-candidates",
                     "sps: candidates of the last window, L_w" },
                   0, "0 = sps.candidates"),
          &P::sps_last_candidates);
    visit(
        at_least({ "sps", "last_top_k", "sps_last_top_k", "--sps-last-top-k", "sps: last-window candidates kept, K_w" },
                 0, "0 = sps.top_k"),
        &P::sps_last_top_k);
    // best-of-n
    visit(at_least({ "best_of_n", "best_of", "best_of", "--best-of", "best-of-n: samples per answer" }, 1),
          &P::best_of);
}

// The method groups, in table order; each method's own knobs nest under its group.
inline const char * const knob_groups[] = { "power_entropy", "smc", "sps", "best_of_n" };
// The group of a method's own knobs ("smc" for method::smc), or "" for a method without any.
const char * knob_group(enum method m);

// The knob whose member this is; nullptr-like (key "") when none. For naming a field in an
// error raised outside the table's loops: knob_for(&sampling_params::n_particles).name().
template <class T> knob_info knob_for(T sampling_params::*member) {
    knob_info found{ "", "", "", "", "" };
    for_each_knob([&](const knob_info & k, auto m) {
        if constexpr (std::is_same_v<decltype(m), T sampling_params::*>) {
            if (m == member) found = k;
        }
    });
    return found;
}

// Copies the knobs of one group ("sps"; "" = the common ones) from `from` into `to`.
inline void copy_knobs(const sampling_params & from, sampling_params & to, const char * group) {
    for_each_knob([&](const knob_info & k, auto member) {
        if (std::string(k.group) == group) to.*member = from.*member;
    });
}

// The names of a choice knob's values, and parsing them (throws invalid_argument_error naming
// the knob and listing the valid names).
inline const char *             choice_name(enum method v) { return method_name(v); }
inline const char *             choice_name(enum sps_proposal v) { return sps_proposal_name(v); }
inline const char *             choice_name(enum sps_level v) { return sps_level_name(v); }
inline std::vector<std::string> choice_names(enum method) { return method_names(); }
inline std::vector<std::string> choice_names(enum sps_proposal) {
    return { sps_proposal_name(sps_proposal::base), sps_proposal_name(sps_proposal::low_temp) };
}
inline std::vector<std::string> choice_names(enum sps_level) {
    return { sps_level_name(sps_level::block), sps_level_name(sps_level::token) };
}
inline void parse_choice(const std::string & name, enum method & v) { v = method_from_name(name); }
inline void parse_choice(const std::string & name, enum sps_proposal & v) { v = sps_proposal_from_name(name); }
inline void parse_choice(const std::string & name, enum sps_level & v) { v = sps_level_from_name(name); }

}  // namespace powersample
