// powersample: the sampling engine over any language_model.
//
// The engine runs many requests (prompts), each with one or more chains, through one
// language_model with continuous batching: every decode() carries the next token of every live
// chain of every admitted request; a request that finishes frees its sequences for the next.
//
// KV discipline (see ../../docs/algorithm.md): each chain owns two sequence ids, work and kept.
// Every token of the chain is decoded into work; kept holds the state x while a proposal grows.
// A proposal from completion position m copies the first P + m - 1 tokens of kept into work (no
// recompute), decodes the token at P + m - 1 again to get the logits for x'_m, then generates the
// suffix. Accepting leaves the new state in work (kept is refreshed by a copy when the next
// proposal starts); rejecting leaves kept as it is. A step decodes its suffix's tokens plus one.
// Work ids are taken from the low end and kept ids from the high end, so that the ids decoded
// in one round are consecutive: llama.cpp batches only consecutive ids across KV streams. Where a
// copy would decode again (language_model::shares_prefix_cells() false) the engine swaps the two
// ids instead of copying a whole state, so a step re-decodes its prefix once, as the paper's code.
//
// Usage:
//     powersample::engine eng(lm);
//     auto id = eng.submit({prompt_tokens, params});
//     while (eng.step()) { for (auto & done : eng.take_finished()) use(done); }
//
// Thread safety: none; drive an engine from one thread. cancel() and cancel_all() may be called
// from any thread (they only set flags read by step()).
#pragma once

#include "powersample/language-model.h"
#include "powersample/sampling.h"

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <utility>
#include <vector>

namespace powersample {

struct request {
    std::vector<token_id> prompt;  // at least one token
    sampling_params       params;
    // > 0: each returned chain's sample_result::top_log_p gets, per completion token, the
    // n_top_log_p most likely tokens at that position under the base model (OpenAI's
    // top_logprobs). Computed after sampling, in one extra pass over prompt + completion per
    // chain that decides nothing and is not counted in n_tokens_decoded or max_tokens_decoded.
    // In [0, max_top_log_p]; 0 = none.
    int32_t n_top_log_p = 0;
};
constexpr int32_t max_top_log_p = 20;  // OpenAI's limit for top_logprobs

struct finished_request {
    uint64_t          id;
    generation_result result;  // sample_result::text is left empty: the engine has no tokenizer
};

using progress_callback = std::function<void(const progress &)>;

// KV cells a request can occupy at its peak: the prompt, and per chain the current suffix plus a
// proposal suffix with its re-decoded boundary token (MH); every particle's suffix (smc); the
// main suffix, every candidate block and every rollout (sps); plus prompt copies per sequence
// when the backend does not share prefix cells. The engine admits requests by this count; a
// backend sizes its context by it.
int64_t kv_cells_needed(int64_t n_prompt_tokens, const sampling_params & params, bool prefix_shared);
// Sequence ids a request holds while it runs: 2 per chain plus 1 for the prompt (MH and plain
// methods; best_of_n counts best_of chains per chain), 1 + 2 * n_particles per chain (smc: a
// second set for reordering by ancestor), 1 + (1 + max(sps_candidates, L_w) + sps_top_k *
// sps_rollouts) per chain (sps: the main sequence, the candidates, whose ids the last window's
// L_w = effective_sps_last_candidates() reuse, and the rollouts; the token level holds
// max(sps_top_k, K_w) candidate ids instead). llama.cpp allows at most 256.
int32_t sequences_needed(const sampling_params & params);

// Tokens a request puts through the model (generation_result::n_tokens_decoded), before it runs:
// what a server compares with its budget (sampling_params::max_tokens_decoded). With
// T = max_new_tokens, B = block_size, N = steps, K = ceil(T / B) blocks of lengths
// L_k = min(k B, T), per chain:
//   power, power_entropy: T for the blocks, plus per MH step at block k the suffix from the cut
//     m, L_k - m tokens (the boundary token again and the new suffix but its last token):
//       worst    = T + N * sum_k L_k              (every cut at m = 0)
//       expected = T + N * sum_k (L_k + 1) / 2    (uniform cuts; entropy-guided ones are taken
//                                                  as uniform)
//     e.g. T 256, B 1, N 32: worst 1,052,928, expected 530,688 per chain;
//   sample, greedy, low_temp: T; best_of_n: best_of * T; smc: n_particles * T;
//   sps (the paper's accounting, sampling_params::sps_proposal): with L, K, M, H the sps_*
//     knobs and n = ceil(T / B) boundaries, the last one the last window of T - (n - 1) B
//     tokens with L_w candidates,
//       L B (n - 1) + L_w (T - (n - 1) B) + K M sum_{k=1}^{n-1} H_k,   H_k = min(H or T, T - k B)
//     (the chosen block is a candidate already decoded: nothing more); token level (B = 1, one
//     decode of the candidates per token): T + K M sum_{k=1}^{T-1} H_k.
// Plus the prompt, P - 1 tokens. Both assume no early end of generation (which only lowers the
// cost); saturates at INT64_MAX.
struct decode_cost {
    int64_t expected = 0;
    int64_t worst    = 0;
};
decode_cost estimate_decode_cost(const sampling_params & params, int64_t n_prompt_tokens);

class engine {
public:
    explicit engine(language_model & lm);
    ~engine();
    engine(const engine &)             = delete;
    engine & operator=(const engine &) = delete;

    // Queues a request and returns its id (ids count up from 0). Throws invalid_argument_error
    // for bad parameters, an empty prompt, stop strings on a model without token bytes, or a
    // request that could never fit the model's sequences or cells (see sequences_needed() and
    // kv_cells_needed()).
    uint64_t submit(request req);

    // One round: admits waiting requests that fit, then decodes the next token of every live
    // chain in one batch and advances the chains. Returns false once nothing is queued or live.
    bool step();

    // Requests finished (or cancelled) since the last call, in the order they finished.
    std::vector<finished_request> take_finished();

    // Cancels one request / all requests: their chains stop at the next step() and are reported
    // with finish_reason::cancelled and the state reached so far.
    void cancel(uint64_t id);
    void cancel_all();

    void set_progress_callback(progress_callback cb);

    size_t n_queued() const;  // submitted, not yet admitted
    size_t n_live() const;    // admitted, not yet finished

    // Runs until every queued request has finished and returns them ordered by id.
    std::vector<finished_request> run_all();

    // Testing hook: the variants of the acceptance ratio that the exactness tests
    // (docs/algorithm.md, "Testing exactness") use as broken controls. without_length_correction drops the cut-probability ratio (for
    // power_entropy: both the forward and the reverse cut probabilities); without_reverse_cut
    // keeps the forward cut probability and forgets the reverse one; without_bridging_term
    // makes Power-SMC forget the ramp's bridging weight; early_bound_assuming_full_length keeps
    // the exact ratio but stops proposals with an early-rejection bound that takes len(x') to be
    // the block's target instead of at least m + k (forgetting that EOG can end the proposal
    // sooner: not an upper bound, so it rejects proposals that would be accepted);
    // stop_in_last_token_only keeps the ratio exact but matches stop strings only inside the
    // newest token's bytes (missing those that span tokens) in the MH chain and the plain
    // decoders. Never change it outside tests.
    enum class acceptance_variant {
        exact,
        without_proposal_terms,
        without_length_correction,
        without_reverse_cut,
        without_bridging_term,
        early_bound_assuming_full_length,
        stop_in_last_token_only,
    };
    void set_acceptance_variant_for_testing(acceptance_variant v);

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

}  // namespace powersample
