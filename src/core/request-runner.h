// The engine's interface to every sampling method. Each method is a per-request state machine:
// every round the engine asks it for the tokens it wants decoded, puts them into the one batch it
// decodes for all requests (continuous batching), hands back the logits, and lets it advance. The
// engine itself only schedules: sequence ids, KV cells, budgets, cancellation.
#pragma once

#include "core/completion-end.h"
#include "powersample/engine.h"
#include "powersample/language-model.h"
#include "powersample/sampling.h"

#include <functional>
#include <memory>
#include <vector>

namespace powersample {

class request_runner {
public:
    virtual ~request_runner() = default;

    // Appends the entries to decode this round. Collecting none while not done() is allowed
    // only when the runner advances in end_round() without logits (it never does so twice).
    virtual void collect(std::vector<decode_entry> & entries) = 0;
    // The logits after the k-th entry collected this round (k from 0, in collect order).
    virtual void deliver(int32_t k, const float * logits) = 0;
    // Called once per round after every deliver(): weights, resampling, selection.
    virtual void end_round() = 0;

    virtual bool done() const = 0;
    // Stops at the current state; results are finish_reason::cancelled.
    virtual void cancel() = 0;
    // One result per chain, in chain order; valid once done().
    virtual std::vector<sample_result> take_results() = 0;
    // Sequence ids of the runner's that it no longer uses (a chain that has finished), so that
    // the engine can admit other requests before this one ends. The rest go back when it ends.
    virtual std::vector<int32_t> take_released_seqs() { return {}; }
};

// A chain's progress, with progress::request_id left for the engine to fill in.
using chain_progress = std::function<void(const progress &)>;

// method::power and power_entropy (the MH power sampler), the plain decoders greedy, sample and
// low_temp (the same chains with no MH step and one block the length of the cap) and best_of_n
// (best_of such chains per chain, the most likely kept, carrying its group's cost).
// prompt_seq holds the prompt minus its last token and is read in the constructor only (the
// caller may release it after); seqs are two per chain (best_of_n: best_of per chain), the
// chain's work and kept ids in turn, and are the runner's alone. `report` (may be empty) is
// called when a chain finishes a block extension or an MH step, and when it ends.
std::unique_ptr<request_runner> make_mh_runner(language_model & lm, const std::vector<token_id> & prompt,
                                               const sampling_params & params, const completion_end & ends,
                                               int32_t prompt_seq, std::vector<int32_t> seqs,
                                               engine::acceptance_variant variant, chain_progress report);

// method::sps: the candidate sequence ids of one chain (sequences_needed() counts them).
int32_t sps_candidate_sequences(const sampling_params & params);

// The sequence ids `seqs` are the runner's alone; seqs[0] holds the prompt minus its last token.
// Both constructors expect validated params of their method; `ends` (EOG and stop strings,
// built for these params) must outlive the runner.
// with_bridging = false drops the ramp's bridging term: a broken control for the tests only.
std::unique_ptr<request_runner> make_power_smc_runner(language_model & lm, const std::vector<token_id> & prompt,
                                                      const sampling_params & params, const completion_end & ends,
                                                      std::vector<int32_t> seqs, bool with_bridging = true);
std::unique_ptr<request_runner> make_scalable_power_sampling_runner(language_model &              lm,
                                                                    const std::vector<token_id> & prompt,
                                                                    const sampling_params &       params,
                                                                    const completion_end &        ends,
                                                                    std::vector<int32_t>          seqs);

// Not a sampler: after a request's chains are done, finds each chain's top-n alternatives per
// completion token (engine::request::n_top_log_p) by decoding prompt + completion again, up to
// `chunk` tokens per chain per round so that the logits of one round stay small. seqs[0]
// receives the prompt minus its last token, seqs[1] each chain in turn. take_results() returns
// `samples` with top_log_p filled in (for the chains it reached, if cancelled).
std::unique_ptr<request_runner> make_top_log_p_runner(language_model & lm, const std::vector<token_id> & prompt,
                                                      std::vector<sample_result> samples, int32_t n_top,
                                                      std::vector<int32_t> seqs, int32_t chunk = 64);

}  // namespace powersample
