// Scalable Power Sampling (ref: arXiv 2601.21590, Thm. 3.1, Alg. 1 and Alg. 2).
//
// The power distribution's next block c after a prefix s is
//     pi(c | s) ∝ p(c | s)^alpha * zeta(c),   zeta(c) = sum_f p(f | s, c)^alpha,
// the low-temperature block distribution times a future-quality factor. zeta is an expectation
// over rollouts f; which distribution draws them decides its estimator:
//   base (the paper, Eqs. 11-16): f ~ p, zeta(c) = E_p[p(f)^(alpha - 1)], so
//       zeta_hat(c) = mean_r exp((alpha - 1) log p(f_r));
//   low_temp: f ~ q (temperature 1/alpha), p(f)^alpha / q(f) = exp(sum_i w_i), w_i the per-token
//       term the MH sampler caches, so zeta_hat(c) = mean_r exp(W_r).
// At each block boundary, while more than one block's worth of budget remains:
//   1. draw sps_candidates blocks of block_size tokens from the proposal (one batch per round),
//   2. keep the sps_top_k most likely distinct ones,
//   3. run sps_rollouts rollouts of up to sps_lookahead tokens after each kept block (all K * M in
//      one batch per round),
//   4. form p_hat(c) ∝ p(c)^alpha * zeta_hat(c) over the kept blocks, correct the bias of that
//      ratio estimator with the leave-one-out jackknife  p_JK = M p_hat - (M - 1) mean_s p_hat_(-s)
//      (clipped at 0, renormalised: a deviation, the paper leaves negative entries open), and
//      draw one block from it.
// The last window (T - len(x) <= B): sps_last_candidates candidates of the remaining length, the
// sps_last_top_k most likely distinct kept, one drawn by p^alpha normalised over them, no
// rollouts. The token level (Alg. 1) runs the same steps one token at a time with the top-K
// tokens of p as the candidates, read from one decode. Approximate by design: the candidate set
// is truncated, the ratio is estimated from M rollouts and the look-ahead may be cut. Every
// candidate and rollout token is counted as decoded.
#include "powersample/engine.h"
#include "core/request-runner.h"
#include "core/token-sampler.h"

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
    double                log_p      = 0.0;  // sum of token_log_p
    double                sum_weight = 0.0;  // sum of w_i = alpha log p_i - log q_i
    int32_t               limit      = 0;    // tokens to draw at most
    bool                  active     = false;
    token_id              pending    = 0;
    int32_t               parent     = -1;     // a rollout's kept candidate (index into candidates)
    bool                  probe      = false;  // token level: decodes the pending token for its logits only
};

enum class stage { candidates, rollouts, done };

struct sps_chain {
    int32_t                                  main_seq = -1;
    std::vector<int32_t>                     candidate_seqs;
    std::vector<int32_t>                     rollout_seqs;
    std::vector<token_id>                    x;
    std::vector<double>                      x_log_p;
    token_id                                 pending = 0;  // last token of prompt + x, not yet in main_seq
    random_stream                            token_rng;
    random_stream                            select_rng;
    stage                                    at = stage::candidates;
    std::vector<branch>                      candidates;
    std::vector<size_t>                      kept;                 // indices into candidates
    std::vector<branch>                      rollouts;             // kept.size() * M, grouped by kept candidate
    bool                                     last_window = false;  // this boundary draws the final T - len(x) tokens
    std::vector<std::pair<token_id, double>> probe_top;            // token level: the top tokens and their log p
    sample_result                            result;
};

std::vector<double> softmax(const std::vector<double> & scores) {
    const double        lz = log_sum_exp(scores.data(), scores.size());
    std::vector<double> out;
    for (double s : scores) out.push_back(std::exp(s - lz));
    return out;
}

class sps_runner : public request_runner {
public:
    sps_runner(language_model & lm, const std::vector<token_id> & prompt, const sampling_params & params,
               const completion_end & ends, std::vector<int32_t> seqs)
        : lm_(lm), params_(params), ends_(ends) {
        const int32_t P         = int32_t(prompt.size());
        const size_t  per_chain = size_t(sequences_needed(params) - 1) / size_t(params.n_chains);
        chains_.resize(size_t(params.n_chains));
        for (int32_t c = 0; c < params.n_chains; ++c) {
            sps_chain & ch   = chains_[size_t(c)];
            size_t      next = 1 + size_t(c) * per_chain;
            ch.main_seq      = seqs[next++];
            for (int32_t i = 0; i < sps_candidate_sequences(params); ++i) ch.candidate_seqs.push_back(seqs[next++]);
            for (int32_t i = 0; i < params.sps_top_k * params.sps_rollouts; ++i)
                ch.rollout_seqs.push_back(seqs[next++]);
            ch.token_rng  = random_stream(params.seed, uint64_t(c), 0);
            ch.select_rng = random_stream(params.seed, uint64_t(c), 1);
            ch.pending    = prompt.back();
            lm_.seq_copy_prefix(seqs[0], ch.main_seq, P - 1);
            start_candidates(ch);
        }
        // The paper draws candidates and rollouts from the base model itself.
        proposal_.inv_temperature = params.sps_proposal == sps_proposal::base ? 1.0 : params.alpha;
    }

    void collect(std::vector<decode_entry> & entries) override {
        round_.clear();
        round_chain_.clear();
        for (auto & ch : chains_) {
            if (ch.at == stage::done) continue;
            auto & branches = ch.at == stage::candidates ? ch.candidates : ch.rollouts;
            for (auto & b : branches) {
                if (!b.active) continue;
                entries.push_back({ b.seq, b.pending, true });
                round_.push_back(&b);
                ch.result.n_tokens_decoded += 1;
            }
            round_chain_.resize(round_.size(), &ch);
        }
    }

    void deliver(int32_t k, const float * logits) override {
        branch &    b  = *round_[size_t(k)];
        sps_chain & ch = *round_chain_[size_t(k)];
        if (b.probe) {
            read_top_tokens(ch, logits);
            b.active = false;
            return;
        }
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
        const auto &                       between = b.parent >= 0 ? ch.candidates[size_t(b.parent)].tokens : none;
        const completion_end_hit           hit     = ends_.at({ span_of(ch.x), span_of(between), span_of(b.tokens) });
        const bool                         ends    = hit.kind != completion_end_kind::none;
        if (ends || int32_t(b.tokens.size()) >= b.limit) b.active = false;
    }

    void end_round() override {
        for (auto & ch : chains_) {
            if (ch.at == stage::done) continue;
            auto &     branches = ch.at == stage::candidates ? ch.candidates : ch.rollouts;
            const bool all_done =
                std::none_of(branches.begin(), branches.end(), [](const branch & b) { return b.active; });
            if (!all_done) continue;
            if (ch.at == stage::candidates) {
                if (params_.sps_level == sps_level::token) expand_probe(ch);
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
        const int32_t room        = params_.max_new_tokens - int32_t(ch.x.size());
        const bool    token_level = params_.sps_level == sps_level::token;
        const int32_t len         = std::min(token_level ? 1 : params_.block_size, room);
        ch.last_window            = room <= len;
        ch.candidates.clear();
        ch.at = stage::candidates;
        if (token_level) {
            // One decode of the pending token gives the logits whose top tokens are the candidates.
            ch.candidates.push_back(open_branch(ch.main_seq, ch.candidate_seqs[0], ch.pending, 1));
            ch.candidates.back().probe = true;
            return;
        }
        const int32_t n = ch.last_window ? effective_sps_last_candidates(params_) : params_.sps_candidates;
        for (int32_t i = 0; i < n; ++i) {
            ch.candidates.push_back(open_branch(ch.main_seq, ch.candidate_seqs[size_t(i)], ch.pending, len));
        }
    }

    // Token level (Alg. 1): the K most likely tokens of p, deterministically (ties: lower id first).
    void read_top_tokens(sps_chain & ch, const float * logits) {
        const int32_t n_vocab = lm_.n_vocab();
        const int32_t k     = std::min(ch.last_window ? effective_sps_last_top_k(params_) : params_.sps_top_k, n_vocab);
        const double  log_z = log_sum_exp_scaled(logits, n_vocab, 1.0);
        std::vector<int32_t> & order = scratch_.order;
        order.resize(size_t(n_vocab));
        for (int32_t v = 0; v < n_vocab; ++v) order[size_t(v)] = v;
        std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](int32_t a, int32_t b) {
            return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
        });
        ch.probe_top.clear();
        for (int32_t i = 0; i < k; ++i) {
            ch.probe_top.emplace_back(token_id(order[size_t(i)]), double(logits[order[size_t(i)]]) - log_z);
        }
        ch.result.n_tokens_generated += k;
    }

    // Token level: one candidate per top token, each on its own copy of the probe's sequence
    // (which now holds the whole history).
    void expand_probe(sps_chain & ch) {
        const int32_t src = ch.candidate_seqs[0];
        ch.candidates.clear();
        for (size_t i = 0; i < ch.probe_top.size(); ++i) {
            const int32_t seq = ch.candidate_seqs[i];
            if (i > 0) lm_.seq_copy_prefix(src, seq, lm_.seq_length(src));
            branch c;
            c.seq         = seq;
            c.pending     = ch.probe_top[i].first;
            c.tokens      = { ch.probe_top[i].first };
            c.token_log_p = { ch.probe_top[i].second };
            c.log_p       = ch.probe_top[i].second;
            c.limit       = 1;
            ch.candidates.push_back(std::move(c));
        }
    }

    bool ends_completion(const sps_chain & ch, const branch & c) const {
        return ends_.at({ span_of(ch.x), span_of(c.tokens) }).kind != completion_end_kind::none ||
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
        const int32_t top_k = ch.last_window ? effective_sps_last_top_k(params_) : params_.sps_top_k;
        distinct.resize(std::min(distinct.size(), size_t(top_k)));
        ch.kept = distinct;
        if (ch.last_window) {
            // No rollouts: none would fit before the cap, so zeta = 1 and p^alpha decides.
            choose_block(ch);
            return;
        }

        const int32_t M = params_.sps_rollouts;
        ch.rollouts.clear();
        size_t next_seq = 0;
        for (size_t k : ch.kept) {
            const branch & c       = ch.candidates[k];
            const int32_t  room    = params_.max_new_tokens - int32_t(ch.x.size() + c.tokens.size());
            const int32_t  horizon = params_.sps_lookahead > 0 ? std::min(params_.sps_lookahead, room) : room;
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

    // log zeta_hat's term for one rollout: log p(f)^(alpha - 1) (base) or log p(f)^alpha / q(f)
    // (low_temp). An empty rollout (its candidate ends the completion) contributes exp(0) = 1.
    double rollout_log_weight(const branch & f) const {
        return params_.sps_proposal == sps_proposal::base ? (params_.alpha - 1.0) * f.log_p : f.sum_weight;
    }

    // The kept candidates' selection probabilities (unnormalised is fine; their total is returned).
    std::vector<double> selection_probabilities(const sps_chain & ch, double & total) const {
        const size_t        K = ch.kept.size();
        std::vector<double> prob(K);
        if (ch.last_window) {
            std::vector<double> scores(K);
            for (size_t k = 0; k < K; ++k) scores[k] = params_.alpha * ch.candidates[ch.kept[k]].log_p;
            prob  = softmax(scores);
            total = 1.0;
            return prob;
        }
        const size_t M              = size_t(params_.sps_rollouts);
        auto         scores_without = [&](size_t left_out) {
            std::vector<double> scores(K);
            std::vector<double> w;
            for (size_t k = 0; k < K; ++k) {
                w.clear();
                for (size_t j = 0; j < M; ++j) {
                    if (j != left_out) w.push_back(rollout_log_weight(ch.rollouts[k * M + j]));
                }
                const double log_zeta = log_sum_exp(w.data(), w.size()) - std::log(double(w.size()));
                scores[k]             = params_.alpha * ch.candidates[ch.kept[k]].log_p + log_zeta;
            }
            return scores;
        };
        const std::vector<double> full = softmax(scores_without(M));
        std::vector<double>       loo_mean(K, 0.0);
        for (size_t j = 0; j < M; ++j) {
            const std::vector<double> loo = softmax(scores_without(j));
            for (size_t k = 0; k < K; ++k) loo_mean[k] += loo[k] / double(M);
        }
        // p_JK sums to 1; its negative entries are clipped (docs/methods.md: not in the paper).
        total = 0.0;
        for (size_t k = 0; k < K; ++k) {
            prob[k] = std::max(0.0, double(M) * full[k] - double(M - 1) * loo_mean[k]);
            total += prob[k];
        }
        if (!(total > 0.0)) {
            prob  = full;
            total = 1.0;
        }
        return prob;
    }

    void choose_block(sps_chain & ch) {
        const size_t              K     = ch.kept.size();
        double                    total = 0.0;
        const std::vector<double> prob  = selection_probabilities(ch, total);
        const double              u     = ch.select_rng.uniform_open01() * total;
        double                    cum   = 0.0;
        size_t                    pick  = K - 1;
        for (size_t k = 0; k < K; ++k) {
            cum += prob[k];
            if (u < cum) {
                pick = k;
                break;
            }
        }
        const branch & chosen = ch.candidates[ch.kept[pick]];
        const bool     ended  = ends_completion(ch, chosen);
        ch.x.insert(ch.x.end(), chosen.tokens.begin(), chosen.tokens.end());
        ch.x_log_p.insert(ch.x_log_p.end(), chosen.token_log_p.begin(), chosen.token_log_p.end());
        ch.result.n_proposals += 1;  // one block decision
        // The chosen block's KV becomes the main sequence; the rest is dropped.
        lm_.seq_copy_prefix(chosen.seq, ch.main_seq, lm_.seq_length(chosen.seq));
        ch.pending = chosen.tokens.back();
        clear_branches(ch);
        if (ended) {
            const completion_end_hit hit = ends_.at({ span_of(ch.x) });
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
        ch.probe_top.clear();
    }

    void finish(sps_chain & ch, finish_reason why) {
        clear_branches(ch);
        lm_.seq_clear(ch.main_seq);
        sample_result & res = ch.result;
        res.tokens          = ch.x;
        res.token_log_p     = ch.x_log_p;
        res.log_p           = 0.0;
        for (double lp : ch.x_log_p) res.log_p += lp;
        res.finish = why;
        ch.at      = stage::done;
    }

    language_model &         lm_;
    sampling_params          params_;
    const completion_end &   ends_;
    proposal_config          proposal_;
    std::vector<sps_chain>   chains_;
    std::vector<branch *>    round_;        // the branch of each collected entry
    std::vector<sps_chain *> round_chain_;  // and its chain
    draw_scratch             scratch_;
};

}  // namespace

std::unique_ptr<request_runner> make_scalable_power_sampling_runner(language_model &              lm,
                                                                    const std::vector<token_id> & prompt,
                                                                    const sampling_params &       params,
                                                                    const completion_end &        ends,
                                                                    std::vector<int32_t>          seqs) {
    return std::make_unique<sps_runner>(lm, prompt, params, ends, std::move(seqs));
}

}  // namespace powersample
