// Scalable Power Sampling (ref: arXiv 2601.21590, Thm. 3.1 and Alg. 2), block-wise.
//
// The power distribution's next block c after a prefix s is
//     pi(c | s) ∝ p(c | s)^alpha * zeta(c),   zeta(c) = sum_f p(f | s, c)^alpha,
// low-temperature sampling times a future-quality factor. With rollouts f drawn from the model at
// temperature 1/alpha (q), p(f)^alpha / q(f) = exp(sum_i w_i), w_i the same per-token term the MH
// sampler caches, so zeta_hat(c) = mean_j exp(W_j) is unbiased for zeta (up to the look-ahead
// horizon). At each block boundary:
//   1. draw sps_candidates blocks of block_size tokens from q (all in one batch per round),
//   2. keep the sps_top_k most likely distinct ones,
//   3. run sps_rollouts rollouts after each kept block (all K * M in one batch per round),
//   4. form P(c) ∝ p(c)^alpha * zeta_hat(c) over the kept blocks, correct the bias of that ratio
//      estimator with the leave-one-out jackknife  P_JK = M P - (M - 1) mean_j P^(-j)  (clipped
//      at 0, renormalised), and draw one block from it.
// Approximate by design: the candidate set is truncated, the ratio is estimated from M rollouts
// and the look-ahead may be cut. Every candidate and rollout token is counted as decoded.
#include "powersample/engine.h"
#include "request-runner.h"
#include "token-sampler.h"

#include <algorithm>
#include <cmath>
#include <map>

namespace powersample {

namespace {

// A sequence being extended from q: a candidate block or a rollout.
struct branch {
    int32_t               seq = -1;
    std::vector<token_id> tokens;
    std::vector<double>   token_log_p;
    double                log_p       = 0.0;  // sum of token_log_p
    double                sum_weight  = 0.0;  // sum of w_i = alpha log p_i - log q_i
    int32_t               limit       = 0;    // tokens to draw at most
    bool                  active      = false;
    token_id              pending     = 0;
    int32_t               parent      = -1;   // a rollout's kept candidate (index into candidates)
};

enum class stage { candidates, rollouts, done };

struct sps_chain {
    int32_t               main_seq = -1;
    std::vector<int32_t>  candidate_seqs;
    std::vector<int32_t>  rollout_seqs;
    std::vector<token_id> x;
    std::vector<double>   x_log_p;
    token_id              pending = 0;  // last token of prompt + x, not yet in main_seq
    random_stream         token_rng;
    random_stream         select_rng;
    stage                 at = stage::candidates;
    std::vector<branch>   candidates;
    std::vector<size_t>   kept;       // indices into candidates
    std::vector<branch>   rollouts;   // kept.size() * M, grouped by kept candidate
    sample_result         result;
};

double log_sum_exp(const double * v, size_t n) {
    double mx = -INFINITY;
    for (size_t i = 0; i < n; ++i) mx = std::max(mx, v[i]);
    if (!std::isfinite(mx)) return mx;
    double s = 0.0;
    for (size_t i = 0; i < n; ++i) s += std::exp(v[i] - mx);
    return mx + std::log(s);
}

std::vector<double> softmax(const std::vector<double> & scores) {
    const double lz = log_sum_exp(scores.data(), scores.size());
    std::vector<double> out;
    for (double s : scores) out.push_back(std::exp(s - lz));
    return out;
}

class sps_runner : public request_runner {
public:
    sps_runner(language_model & lm, const std::vector<token_id> & prompt, const sampling_params & params,
               const completion_end & ends, std::vector<int32_t> seqs)
        : lm_(lm), params_(params), ends_(ends) {
        const int32_t P = int32_t(prompt.size());
        const size_t per_chain = size_t(sequences_needed(params) - 1) / size_t(params.n_chains);
        chains_.resize(size_t(params.n_chains));
        for (int32_t c = 0; c < params.n_chains; ++c) {
            sps_chain & ch = chains_[size_t(c)];
            size_t next = 1 + size_t(c) * per_chain;
            ch.main_seq = seqs[next++];
            for (int32_t i = 0; i < params.sps_candidates; ++i) ch.candidate_seqs.push_back(seqs[next++]);
            for (int32_t i = 0; i < params.sps_top_k * params.sps_rollouts; ++i) ch.rollout_seqs.push_back(seqs[next++]);
            ch.token_rng  = random_stream(params.seed, uint64_t(c), 0);
            ch.select_rng = random_stream(params.seed, uint64_t(c), 1);
            ch.pending    = prompt.back();
            lm_.seq_copy_prefix(seqs[0], ch.main_seq, P - 1);
            start_candidates(ch);
        }
        proposal_.inv_temperature = params.alpha;
    }

    void collect(std::vector<decode_entry> & entries) override {
        round_.clear();
        round_chain_.clear();
        for (auto & ch : chains_) {
            if (ch.at == stage::done) continue;
            auto & branches = ch.at == stage::candidates ? ch.candidates : ch.rollouts;
            for (auto & b : branches) {
                if (!b.active) continue;
                entries.push_back({b.seq, b.pending, true});
                round_.push_back(&b);
                ch.result.n_tokens_decoded += 1;
            }
            round_chain_.resize(round_.size(), &ch);
        }
    }

    void deliver(int32_t k, const float * logits) override {
        branch &    b  = *round_[size_t(k)];
        sps_chain & ch = *round_chain_[size_t(k)];
        const token_draw d = draw_token(logits, lm_.n_vocab(), proposal_, ch.token_rng, scratch_);
        ch.result.n_tokens_generated += 1;
        b.tokens.push_back(d.token);
        b.token_log_p.push_back(d.log_p);
        b.log_p += d.log_p;
        b.sum_weight += params_.alpha * d.log_p - d.log_q;
        b.pending = d.token;
        // A candidate continues x; a rollout continues x and its candidate. Either stops where
        // the completion it would be part of ends (EOG or a stop string).
        static const std::vector<token_id> none;
        const auto & between = b.parent >= 0 ? ch.candidates[size_t(b.parent)].tokens : none;
        const completion_end_hit hit = ends_.at({span_of(ch.x), span_of(between), span_of(b.tokens)});
        const bool ends = hit.kind != completion_end_kind::none;
        if (ends || int32_t(b.tokens.size()) >= b.limit) b.active = false;
    }

    void end_round() override {
        for (auto & ch : chains_) {
            if (ch.at == stage::done) continue;
            auto & branches = ch.at == stage::candidates ? ch.candidates : ch.rollouts;
            const bool all_done = std::none_of(branches.begin(), branches.end(), [](const branch & b) { return b.active; });
            if (!all_done) continue;
            if (ch.at == stage::candidates) {
                start_rollouts(ch);
            } else {
                choose_block(ch);
            }
        }
    }

    bool done() const override {
        return std::all_of(chains_.begin(), chains_.end(), [](const sps_chain & c) { return c.at == stage::done; });
    }

    void cancel() override {
        for (auto & ch : chains_) {
            if (ch.at != stage::done) finish(ch, finish_reason::cancelled);
        }
    }

    std::vector<sample_result> take_results() override {
        std::vector<sample_result> out;
        for (auto & ch : chains_) out.push_back(std::move(ch.result));
        return out;
    }

private:
    // A branch of `src` (holding the history minus `pending`) on `seq`, drawing at most `limit` tokens.
    branch open_branch(int32_t src, int32_t seq, token_id pending, int32_t limit) {
        lm_.seq_copy_prefix(src, seq, lm_.seq_length(src));
        branch b;
        b.seq     = seq;
        b.pending = pending;
        b.limit   = limit;
        b.active  = limit > 0;
        return b;
    }

    void start_candidates(sps_chain & ch) {
        const int32_t room = params_.max_new_tokens - int32_t(ch.x.size());
        const int32_t len  = std::min(params_.block_size, room);
        ch.candidates.clear();
        for (int32_t seq : ch.candidate_seqs) ch.candidates.push_back(open_branch(ch.main_seq, seq, ch.pending, len));
        ch.at = stage::candidates;
    }

    bool ends_completion(const sps_chain & ch, const branch & c) const {
        return ends_.at({span_of(ch.x), span_of(c.tokens)}).kind != completion_end_kind::none ||
               int32_t(ch.x.size() + c.tokens.size()) >= params_.max_new_tokens;
    }

    void start_rollouts(sps_chain & ch) {
        // The sps_top_k most likely distinct candidates (ties: first drawn first).
        std::map<std::vector<token_id>, size_t> first_of;
        for (size_t i = 0; i < ch.candidates.size(); ++i) first_of.emplace(ch.candidates[i].tokens, i);
        std::vector<size_t> distinct;
        for (const auto & kv : first_of) distinct.push_back(kv.second);
        std::sort(distinct.begin(), distinct.end(), [&](size_t a, size_t b) {
            return ch.candidates[a].log_p > ch.candidates[b].log_p ||
                   (ch.candidates[a].log_p == ch.candidates[b].log_p && a < b);
        });
        distinct.resize(std::min(distinct.size(), size_t(params_.sps_top_k)));
        ch.kept = distinct;

        const int32_t M = params_.sps_rollouts;
        ch.rollouts.clear();
        size_t next_seq = 0;
        for (size_t k : ch.kept) {
            const branch & c = ch.candidates[k];
            const int32_t room = params_.max_new_tokens - int32_t(ch.x.size() + c.tokens.size());
            const int32_t horizon = params_.sps_lookahead > 0 ? std::min(params_.sps_lookahead, room) : room;
            for (int32_t j = 0; j < M; ++j) {
                // A block that ends the completion has no future: zeta = 1, no rollout needed.
                const int32_t limit = ends_completion(ch, c) ? 0 : horizon;
                ch.rollouts.push_back(open_branch(c.seq, ch.rollout_seqs[next_seq++], c.tokens.back(), limit));
                ch.rollouts.back().parent = int32_t(k);
            }
        }
        ch.at = stage::rollouts;
        // Kept candidates that end the completion need no decoding: choose at once if none do.
        if (std::none_of(ch.rollouts.begin(), ch.rollouts.end(), [](const branch & b) { return b.active; })) {
            choose_block(ch);
        }
    }

    void choose_block(sps_chain & ch) {
        const size_t K = ch.kept.size();
        const size_t M = size_t(params_.sps_rollouts);
        // W[k][j] = log p(f_kj)^alpha / q(f_kj); an empty rollout contributes exp(0) = 1.
        auto scores_without = [&](size_t left_out) {
            std::vector<double> scores(K);
            for (size_t k = 0; k < K; ++k) {
                std::vector<double> w;
                for (size_t j = 0; j < M; ++j) {
                    if (j != left_out) w.push_back(ch.rollouts[k * M + j].sum_weight);
                }
                const double log_zeta = log_sum_exp(w.data(), w.size()) - std::log(double(w.size()));
                scores[k] = params_.alpha * ch.candidates[ch.kept[k]].log_p + log_zeta;
            }
            return scores;
        };
        const std::vector<double> full = softmax(scores_without(M));
        std::vector<double> loo_mean(K, 0.0);
        for (size_t j = 0; j < M; ++j) {
            const std::vector<double> loo = softmax(scores_without(j));
            for (size_t k = 0; k < K; ++k) loo_mean[k] += loo[k] / double(M);
        }
        std::vector<double> prob(K);
        double total = 0.0;
        for (size_t k = 0; k < K; ++k) {
            prob[k] = std::max(0.0, double(M) * full[k] - double(M - 1) * loo_mean[k]);
            total += prob[k];
        }
        if (!(total > 0.0)) {
            prob  = full;
            total = 1.0;
        }
        const double u = ch.select_rng.uniform_open01() * total;
        double cum = 0.0;
        size_t pick = K - 1;
        for (size_t k = 0; k < K; ++k) {
            cum += prob[k];
            if (u < cum) {
                pick = k;
                break;
            }
        }
        const branch & chosen = ch.candidates[ch.kept[pick]];
        const bool ended = ends_completion(ch, chosen);
        ch.x.insert(ch.x.end(), chosen.tokens.begin(), chosen.tokens.end());
        ch.x_log_p.insert(ch.x_log_p.end(), chosen.token_log_p.begin(), chosen.token_log_p.end());
        ch.result.n_proposals += 1;  // one block decision
        // The chosen block's KV becomes the main sequence; the rest is dropped.
        lm_.seq_copy_prefix(chosen.seq, ch.main_seq, lm_.seq_length(chosen.seq));
        ch.pending = chosen.tokens.back();
        clear_branches(ch);
        if (ended) {
            const completion_end_hit hit = ends_.at({span_of(ch.x)});
            if (hit.kind == completion_end_kind::stop) ch.result.stop = ends_.stops()[size_t(hit.stop_index)];
            finish(ch, hit.kind != completion_end_kind::none ? finish_of(hit) : finish_reason::length);
        } else {
            start_candidates(ch);
        }
    }

    void clear_branches(sps_chain & ch) {
        for (int32_t s : ch.candidate_seqs) lm_.seq_clear(s);
        for (int32_t s : ch.rollout_seqs) lm_.seq_clear(s);
        ch.candidates.clear();
        ch.rollouts.clear();
        ch.kept.clear();
    }

    void finish(sps_chain & ch, finish_reason why) {
        clear_branches(ch);
        lm_.seq_clear(ch.main_seq);
        sample_result & res = ch.result;
        res.tokens      = ch.x;
        res.token_log_p = ch.x_log_p;
        res.log_p       = 0.0;
        for (double lp : ch.x_log_p) res.log_p += lp;
        res.finish = why;
        ch.at      = stage::done;
    }

    language_model &          lm_;
    sampling_params           params_;
    const completion_end &    ends_;
    proposal_config           proposal_;
    std::vector<sps_chain>    chains_;
    std::vector<branch *>     round_;        // the branch of each collected entry
    std::vector<sps_chain *>  round_chain_;  // and its chain
    draw_scratch              scratch_;
};

}  // namespace

std::unique_ptr<request_runner> make_scalable_power_sampling_runner(language_model & lm,
                                                                    const std::vector<token_id> & prompt,
                                                                    const sampling_params & params,
                                                                    const completion_end & ends,
                                                                    std::vector<int32_t> seqs) {
    return std::make_unique<sps_runner>(lm, prompt, params, ends, std::move(seqs));
}

}  // namespace powersample
