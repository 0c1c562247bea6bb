// One Metropolis-Hastings power-sampling chain: ref arXiv 2510.14901, Alg. 1, with the exact
// acceptance ratio of docs/algorithm.md (and the entropy-guided cuts of arXiv 2605.30327).
//
// The chain holds the state x with the values cached when each token was drawn, draws each
// step's cut m and accept uniform, collects the proposal as it comes, decides, splices the
// accepted suffix into x, counts, and records the trace. It generates no token itself: the
// batching engine feeds it one token at a time from the model in process, the remote driver a
// whole suffix from a server. Both run this one chain, so the two cannot drift.
//
//   mh_chain chain(params, chain_index);
//   chain.extend(token, log_p, log_q, entropy);      // block extension, token by token
//   const int32_t m = chain.begin_step();            // then x'[0:m] = x[0:m] + ...
//   chain.propose(token, log_p, log_q, entropy);     // ... the proposal's tokens, as they come
//   if (chain.cannot_be_accepted(target_len)) ...    // early rejection: stop generating it
//   bool accepted = chain.end_step(block, target_len, stopped_early);
#pragma once

#include "powersample/engine.h"
#include "powersample/sampling.h"

#include "core/token-sampler.h"

#include <cstdint>
#include <vector>

namespace powersample {

// q_cut(m | x) for every cut m of a state with next-token entropies H (ref: arXiv 2605.30327): a
// mixture of the entropy-rise weights g(m) = max(0, H_m - H_{m-1})^beta (H_{-1} = 0) and, with
// weight `floor`, the uniform cut, so that every position stays reachable and the chain stays
// irreducible. With no rise anywhere the cut is uniform.
std::vector<double> cut_probabilities(const std::vector<double> & H, double beta, double floor);

class mh_chain {
public:
    mh_chain() = default;
    // The chain `chain_index` of a request with these parameters; its kernel stream (cuts and
    // accept uniforms) is (seed, chain_index, 1), so that token draws never shift it.
    mh_chain(const sampling_params & params, uint64_t chain_index);

    // The state x: its tokens and their base-model log p.
    const std::vector<token_id> & tokens() const { return x_; }
    const std::vector<double> &   token_log_p() const { return x_log_p_; }
    double                        log_p() const;
    // Appends a drawn token to x (block extension). log_q: its log-probability under the
    // proposal that drew it; entropy: of the base model's distribution it was drawn from (used by
    // entropy-guided cuts only).
    void extend(token_id token, double log_p, double log_q, double entropy);

    // Starts a step: draws the cut m (uniform over x, or entropy-guided for power-entropy), then
    // the accept uniform, both from the kernel stream. Returns m; the proposal is x[0:m] + what
    // propose() is given.
    int32_t                       begin_step();
    int32_t                       cut() const { return m_; }
    void                          propose(token_id token, double log_p, double log_q, double entropy);
    const std::vector<token_id> & proposal() const { return y_; }
    // Early rejection (sampling_params::early_rejection, where early_rejection_applies()): true
    // once the proposal under way can no longer be accepted, whatever its next tokens. With
    // every remaining w' <= 0 and len(x') >= m + k, sum w'_<k - sum w + log len(x) - log(m + k)
    // bounds the final log A from above and never rises; it is compared with log u with a
    // 1e-9-per-remaining-token margin, so that rounding cannot turn a decision. Always false
    // where early rejection is not exact.
    bool cannot_be_accepted(int32_t target_len) const;
    // Ends the step: accepts with the MH ratio (or rejects, stopped_early: ended by
    // cannot_be_accepted, whose bound is recorded as log A), splices the proposal into x when
    // accepted, counts, and records the trace entry (block: 1-based). Returns whether accepted.
    bool end_step(int32_t block, int32_t target_len, bool stopped_early);

    // What the chain reports: counts, trace. The driver fills in the rest (tokens, finish,
    // tokens generated and decoded).
    sample_result &       result() { return result_; }
    const sample_result & result() const { return result_; }

    // Deliberately wrong variants, for the tests that show the exact chain is needed.
    void set_acceptance_variant(engine::acceptance_variant v) { variant_ = v; }

private:
    double early_rejection_bound(int32_t target_len) const;

    // What the chain needs of the request's parameters.
    double                     alpha_           = 1.0;
    bool                       entropy_cuts_    = false;
    double                     entropy_beta_    = 1.0;
    double                     entropy_floor_   = 0.1;
    bool                       early_rejection_ = false;
    bool                       record_trace_    = false;
    bool                       record_suffixes_ = false;
    engine::acceptance_variant variant_         = engine::acceptance_variant::exact;
    random_stream              kernel_rng_;

    // The state x, with the per-token values cached when each token was drawn.
    std::vector<token_id> x_;
    std::vector<double>   x_log_p_;
    std::vector<double>   x_weight_;   // w_i = alpha * log p_i - log q_i
    std::vector<double>   x_entropy_;  // H_i, for entropy-guided cuts

    // The step under way: x'[0:m] = x[0:m], then y.
    int32_t               m_ = 0;
    std::vector<token_id> y_;
    std::vector<double>   y_log_p_;
    std::vector<double>   y_weight_;
    std::vector<double>   y_entropy_;
    double                log_cut_forward_        = 0.0;  // log q_cut(m | x)
    double                log_u_                  = 0.0;  // the accept uniform, drawn with m
    double                suffix_weight_current_  = 0.0;  // sum_{i>=m} w_i of x
    double                proposal_weight_so_far_ = 0.0;  // sum of w' over y

    sample_result result_;
};

}  // namespace powersample
