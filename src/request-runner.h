// The engine's interface to samplers that are not a set of independent MH chains (Power-SMC,
// Scalable Power Sampling). Each is a per-request state machine: every round the engine asks it
// for the tokens it wants decoded, puts them into the one batch it decodes for all requests
// (continuous batching), hands back the logits, and lets it advance.
#pragma once

#include "completion-end.h"
#include "powersample/language-model.h"
#include "powersample/sampling.h"

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
};

// method::sps: the candidate sequence ids of one chain (sequences_needed() counts them).
int32_t sps_candidate_sequences(const sampling_params & params);

// The sequence ids `seqs` are the runner's alone; seqs[0] holds the prompt minus its last token.
// Both constructors expect validated params of their method; `ends` (EOG and stop strings,
// built for these params) must outlive the runner.
// with_bridging = false drops the ramp's bridging term: a broken control for the tests only.
std::unique_ptr<request_runner> make_power_smc_runner(language_model & lm, const std::vector<token_id> & prompt,
                                                      const sampling_params & params, const completion_end & ends,
                                                      std::vector<int32_t> seqs, bool with_bridging = true);
std::unique_ptr<request_runner> make_scalable_power_sampling_runner(language_model & lm,
                                                                    const std::vector<token_id> & prompt,
                                                                    const sampling_params & params,
                                                                    const completion_end & ends,
                                                                    std::vector<int32_t> seqs);

// Not a sampler: after a request's chains are done, finds each chain's top-n alternatives per
// completion token (engine::request::n_top_log_p) by decoding prompt + completion again, up to
// `chunk` tokens per chain per round so that the logits of one round stay small. seqs[0]
// receives the prompt minus its last token, seqs[1] each chain in turn. take_results() returns
// `samples` with top_log_p filled in (for the chains it reached, if cancelled).
std::unique_ptr<request_runner> make_top_log_p_runner(language_model & lm, const std::vector<token_id> & prompt,
                                                      std::vector<sample_result> samples, int32_t n_top,
                                                      std::vector<int32_t> seqs, int32_t chunk = 64);

}  // namespace powersample
