// The Metropolis-Hastings power sampler as a state machine per chain, driven in batched rounds.
// ref: arXiv 2510.14901, Alg. 1, with the exact acceptance ratio of docs/algorithm.md.
#include "powersample/engine.h"
#include "powersample/knobs.h"

#include "completion-end.h"
#include "mh-kernel.h"
#include "request-runner.h"
#include "token-sampler.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cmath>
#include <deque>
#include <mutex>
#include <set>
#include <string>

namespace powersample {

namespace {

using clock_type = std::chrono::steady_clock;

enum class phase { extending, proposing, done };

struct chain_state {
    int32_t index    = 0;
    // Every token of this chain is decoded into seq_work; seq_kept holds the state x while a
    // proposal grows in seq_work. Decoding into one fixed id per chain lets a KV cache with one
    // stream per sequence batch all chains together (llama.cpp puts only consecutive sequence
    // ids in one micro-batch), and keeps each sequence's cells in position order.
    int32_t seq_kept = -1;
    int32_t seq_work = -1;
    bool    kept_holds_x = false;  // seq_kept's KV = x without its last token
    bool    work_holds_x = false;  // seq_work's KV = x without its last token
    random_stream token_rng;     // block extensions' token draws
    random_stream proposal_rng;  // the current proposal's token draws: a stream per proposal, so
                                 // that a proposal stopped early (early rejection) shifts no later draw
    random_stream kernel_rng;    // positions and accept uniforms, so token draws never shift them
    uint64_t      chain_seed_index = 0;

    // Current state x, with the per-token values cached when each token was drawn.
    std::vector<token_id> x;
    std::vector<double>   x_log_p;
    std::vector<double>   x_weight;  // w_i = alpha * log p_i - log q_i
    std::vector<double>   x_entropy; // H_i: entropy of p_i, for entropy-guided cuts

    // Proposal under construction: x'[0:m] = x[0:m], then these tokens.
    int32_t               suffix_start = 0;
    std::vector<token_id> y;
    std::vector<double>   y_log_p;
    std::vector<double>   y_weight;
    std::vector<double>   y_entropy;
    double                log_cut_forward = 0.0;  // log q_cut(m | x) of the step under way
    // The step's accept uniform, drawn before its proposal (so early rejection can use it), and
    // for early rejection: sum_{i>=m} w_i of x and the proposal's partial sum of w'.
    double                log_u = 0.0;
    bool                  early_rejection = false;
    double                suffix_weight_current = 0.0;
    double                proposal_weight_so_far = 0.0;

    phase   state      = phase::extending;
    int32_t block      = 1;
    int32_t step       = 0;
    int32_t target_len = 0;

    bool         has_pending = false;
    decode_entry pending{};

    sample_result result;
};

struct live_request {
    uint64_t                 id = 0;
    request                  req;
    proposal_config          proposal;
    std::unique_ptr<completion_end> ends;  // EOG and stop strings: where a completion ends
    int32_t                  n_steps   = 0;  // MH steps per block actually run
    int32_t                  n_blocks  = 1;
    int32_t                  block_len = 0;
    int64_t                  cells     = 0;  // reserved KV cells
    std::vector<chain_state> chains;
    clock_type::time_point   start;
    int64_t                  prompt_decoded = 0;
    int64_t                  n_decoded = 0;  // prompt and every entry so far: the budget's count
    bool                     cancelled = false;
    bool                     budget_exhausted = false;
    // method::smc and method::sps run as a state machine of their own over these sequences.
    std::unique_ptr<request_runner> runner;
    std::vector<int32_t>            runner_seqs;
    // Sampling done, request::n_top_log_p asked: `runner` now finds the alternatives, and this
    // is the result it completes.
    bool                            scoring = false;
    generation_result               sampled;
};

// q_cut(m | x) for every cut m of a state with next-token entropies H (ref: arXiv 2605.30327): a mixture of
// the entropy-rise weights g(m) = max(0, H_m - H_{m-1})^beta (H_{-1} = 0) and, with weight
// `floor`, the uniform cut, so that every position stays reachable and the chain stays
// irreducible. With no rise anywhere the cut is uniform.
std::vector<double> cut_probabilities(const std::vector<double> & H, double beta, double floor) {
    const size_t n = H.size();
    std::vector<double> g(n);
    double total = 0.0;
    for (size_t i = 0; i < n; ++i) {
        const double rise = std::max(0.0, H[i] - (i == 0 ? 0.0 : H[i - 1]));
        g[i] = std::pow(rise, beta);
        total += g[i];
    }
    for (size_t i = 0; i < n; ++i) {
        const double entropy_part = total > 0.0 ? g[i] / total : 1.0 / double(n);
        g[i] = (1.0 - floor) * entropy_part + floor / double(n);
    }
    return g;
}

}  // namespace

int32_t sps_candidate_sequences(const sampling_params & params) {
    // The last window may draw more candidates than a block; both use the same ids. The token
    // level holds one per top token.
    if (params.sps_level == sps_level::token) return std::max(params.sps_top_k, effective_sps_last_top_k(params));
    return std::max(params.sps_candidates, effective_sps_last_candidates(params));
}

int32_t sequences_needed(const sampling_params & params) {
    const int64_t chains = params.n_chains;
    int64_t n = 0;
    switch (params.method) {
        case method::smc: n = 1 + chains * 2 * int64_t(params.n_particles); break;
        case method::sps: {
            const int64_t candidates = sps_candidate_sequences(params);
            n = 1 + chains * (1 + candidates + int64_t(params.sps_top_k) * params.sps_rollouts);
            break;
        }
        case method::best_of_n: n = 1 + 2 * chains * params.best_of; break;
        default: n = 1 + 2 * chains; break;
    }
    return int32_t(std::min<int64_t>(n, INT32_MAX));
}

int64_t kv_cells_needed(int64_t n_prompt_tokens, const sampling_params & params, bool prefix_shared) {
    const int64_t T = params.max_new_tokens;
    const int64_t P = n_prompt_tokens;
    switch (params.method) {
        case method::smc: {
            // Every particle may own a distinct suffix; reordering by ancestor only shares cells.
            const int64_t per_particle = T + 1 + (prefix_shared ? 0 : P + T);
            return P + int64_t(params.n_chains) * params.n_particles * per_particle;
        }
        case method::sps: {
            const int64_t B = params.sps_level == sps_level::token ? 1 : params.block_size;
            const int64_t H = params.sps_lookahead > 0 ? params.sps_lookahead : T;
            const int64_t candidates = sps_candidate_sequences(params);
            int64_t per_chain =
                T + 1 + candidates * (B + 1) + int64_t(params.sps_top_k) * params.sps_rollouts * (H + 1);
            if (!prefix_shared) per_chain += (sequences_needed(params) / params.n_chains) * (P + T);
            return P + int64_t(params.n_chains) * per_chain;
        }
        default: break;
    }
    const bool mh = params.method == method::power || params.method == method::power_entropy;
    int64_t per_chain = mh ? 2 * T + 2 : T + 1;
    if (!prefix_shared) {
        per_chain += 2 * P;
    }
    const int64_t chains = int64_t(params.n_chains) * (params.method == method::best_of_n ? params.best_of : 1);
    return P + chains * per_chain;
}

decode_cost estimate_decode_cost(const sampling_params & params, int64_t n_prompt_tokens) {
    // Doubles, so that the largest knobs saturate instead of overflowing; exact below 2^53.
    const double T = params.max_new_tokens;
    const double B = std::max<int32_t>(1, params.block_size);
    const double K = std::ceil(T / B);
    const double sum_lengths = B * (K - 1) * K / 2 + T;  // sum_k min(k B, T)
    double expected = T, worst = T;
    switch (params.method) {
        case method::power:
        case method::power_entropy:
            worst    = T + double(params.n_steps_per_block) * sum_lengths;
            expected = T + double(params.n_steps_per_block) * (sum_lengths + K) / 2;
            break;
        case method::best_of_n: worst = expected = T * params.best_of; break;
        case method::smc: worst = expected = T * params.n_particles; break;
        case method::sps: {
            // n boundaries of B tokens (token level: 1), the last one the last window of
            // T - (n - 1) B tokens; after regular block k (k = 1 .. n - 1) the rollouts run
            // H_k = min(H, T - k B) tokens (H = 0: T - k B). With a = the blocks whose room
            // T - k B is at least H (none for H = 0), sum_k H_k = a H + sum_{k = a+1}^{n-1} (T - k B).
            const bool   token = params.sps_level == sps_level::token;
            const double Bs    = token ? 1.0 : B;
            const double n     = std::ceil(T / Bs);
            const double r     = n - 1;
            const double H     = params.sps_lookahead;
            const double a     = H > 0 ? std::clamp(std::floor((T - H) / Bs), 0.0, r) : 0.0;
            const double rollout_sum = a * H + (r - a) * T - Bs * (r * (r + 1) / 2 - a * (a + 1) / 2);
            const double candidate_tokens = token ? n
                                                  : double(params.sps_candidates) * Bs * r +
                                                        double(effective_sps_last_candidates(params)) * (T - r * Bs);
            worst = expected = candidate_tokens + double(params.sps_top_k) * params.sps_rollouts * rollout_sum;
            break;
        }
        default: break;
    }
    const double chains = params.n_chains;
    const double prompt = double(std::max<int64_t>(0, n_prompt_tokens - 1));
    auto saturate = [](double v) {
        return v >= 9.2e18 ? INT64_MAX : int64_t(std::llround(v));
    };
    return {saturate(prompt + chains * expected), saturate(prompt + chains * worst)};
}

struct engine::impl {
    language_model &          lm;
    uint64_t                  next_id = 0;
    std::deque<live_request>  queued;
    std::vector<live_request> live;
    std::vector<bool>         seq_free;
    int64_t                   cells_reserved = 0;
    std::vector<finished_request> finished;
    progress_callback         on_progress;
    acceptance_variant        variant = acceptance_variant::exact;
    draw_scratch              scratch;

    std::mutex       cancel_mutex;
    std::set<uint64_t> cancel_ids;
    std::atomic<bool> cancel_everything{false};

    explicit impl(language_model & model) : lm(model), seq_free(size_t(model.n_seq_max()), true) {}

    int32_t n_free_seqs() const { return int32_t(std::count(seq_free.begin(), seq_free.end(), true)); }

    // Work sequences come from the low ids and kept/prompt sequences from the high ids, so the
    // ids decoded in one round form long consecutive runs.
    int32_t take_seq(bool low) {
        const int32_t n = int32_t(seq_free.size());
        for (int32_t i = 0; i < n; ++i) {
            const int32_t s = low ? i : n - 1 - i;
            if (seq_free[size_t(s)]) {
                seq_free[size_t(s)] = false;
                return s;
            }
        }
        throw error("engine: no free sequence id (internal accounting error)");
    }

    void release_seq(int32_t s) {
        if (s >= 0) {
            lm.seq_clear(s);
            seq_free[size_t(s)] = true;
        }
    }

    bool fits(const live_request & r) const {
        return n_free_seqs() >= sequences_needed(r.req.params) && cells_reserved + r.cells <= lm.n_cells();
    }

    void admit(live_request & r) {
        const auto & prompt = r.req.prompt;
        const int32_t P = int32_t(prompt.size());
        r.start = clock_type::now();
        cells_reserved += r.cells;

        // Decode the prompt once (all but its last token) and share it with every chain.
        const int32_t prompt_seq = take_seq(false);
        if (P > 1) {
            std::vector<decode_entry> entries;
            entries.reserve(size_t(P - 1));
            for (int32_t i = 0; i < P - 1; ++i) {
                entries.push_back({prompt_seq, prompt[size_t(i)], false});
            }
            lm.decode(entries);
            r.prompt_decoded = P - 1;
        }
        r.n_decoded = r.prompt_decoded;
        const auto & sp = r.req.params;
        if (sp.method == method::smc || sp.method == method::sps) {
            r.runner_seqs.push_back(prompt_seq);
            while (int32_t(r.runner_seqs.size()) < sequences_needed(sp)) r.runner_seqs.push_back(take_seq(true));
            r.runner = sp.method == method::smc
                           ? make_power_smc_runner(lm, prompt, sp, *r.ends, r.runner_seqs,
                                                   variant != acceptance_variant::without_bridging_term)
                           : make_scalable_power_sampling_runner(lm, prompt, sp, *r.ends, r.runner_seqs);
            return;
        }
        const int32_t n_chains = sp.n_chains * (sp.method == method::best_of_n ? sp.best_of : 1);
        r.chains.resize(size_t(n_chains));
        for (int32_t c = 0; c < n_chains; ++c) {
            chain_state & ch = r.chains[size_t(c)];
            ch.index      = c;
            ch.seq_work   = take_seq(true);
            ch.seq_kept   = take_seq(false);
            ch.token_rng  = random_stream(sp.seed, uint64_t(c), 0);
            ch.kernel_rng = random_stream(sp.seed, uint64_t(c), 1);
            ch.chain_seed_index = uint64_t(c);
            ch.target_len = std::min(r.block_len, sp.max_new_tokens);
            lm.seq_copy_prefix(prompt_seq, ch.seq_work, P - 1);
            // The last prompt token is decoded per chain: its logits give x_0.
            ch.pending     = {ch.seq_work, prompt.back(), true};
            ch.has_pending = true;
        }
        release_seq(prompt_seq);
    }

    void report(const live_request & r, const chain_state & ch) {
        if (!on_progress) {
            return;
        }
        progress p{};
        p.request_id         = r.id;
        p.chain              = ch.index;
        p.block              = ch.block;
        p.n_blocks           = r.n_blocks;
        p.step               = ch.step;
        p.n_steps            = r.n_steps;
        p.length             = int32_t(ch.x.size());
        p.n_proposals        = ch.result.n_proposals;
        p.n_accepted         = ch.result.n_accepted;
        p.n_tokens_generated = ch.result.n_tokens_generated;
        p.done               = ch.state == phase::done;
        on_progress(p);
    }

    token_id token_before(const live_request & r, const chain_state & ch, int32_t m) const {
        return m == 0 ? r.req.prompt.back() : ch.x[size_t(m - 1)];
    }

    void start_proposal(live_request & r, chain_state & ch) {
        const auto & sp = r.req.params;
        const int32_t P = int32_t(r.req.prompt.size());
        int32_t m = 0;
        if (sp.method == method::power_entropy) {
            const auto q_cut = cut_probabilities(ch.x_entropy, sp.entropy_beta, sp.entropy_floor);
            const double u = ch.kernel_rng.uniform_open01();
            double cum = 0.0;
            m = int32_t(q_cut.size()) - 1;
            for (size_t i = 0; i < q_cut.size(); ++i) {
                cum += q_cut[i];
                if (u < cum) {
                    m = int32_t(i);
                    break;
                }
            }
            ch.log_cut_forward = std::log(q_cut[size_t(m)]);
        } else {
            m = int32_t(ch.kernel_rng.uniform_below(uint32_t(ch.x.size())));
            ch.log_cut_forward = -std::log(double(ch.x.size()));
        }
        ch.suffix_start = m;
        // The accept uniform comes right after m from the same stream, in the same order as if
        // it were drawn at the step's end: decisions do not depend on early rejection.
        ch.log_u = std::log(ch.kernel_rng.uniform_open01());
        ch.early_rejection = early_rejection_applies(sp);
        ch.suffix_weight_current = 0.0;
        for (size_t i = size_t(m); i < ch.x.size(); ++i) ch.suffix_weight_current += ch.x_weight[i];
        ch.proposal_weight_so_far = 0.0;
        ch.proposal_rng = random_stream(sp.seed, ch.chain_seed_index, 2 + uint64_t(ch.result.n_proposals));
        ch.y.clear();
        ch.y_log_p.clear();
        ch.y_weight.clear();
        ch.y_entropy.clear();
        // Share the prefix; the token at P + m - 1 is decoded again because its logits row (the
        // distribution of x'_m) was not kept: one extra token per step, no prefix recompute.
        if (!ch.kept_holds_x) {
            if (lm.shares_prefix_cells()) {
                lm.seq_copy_prefix(ch.seq_work, ch.seq_kept, P + int32_t(ch.x.size()) - 1);
            } else {
                // A copy would decode the whole state again: swap the ids instead (free; it only
                // costs the consecutive ids that batching across chains prefers).
                std::swap(ch.seq_work, ch.seq_kept);
            }
            ch.kept_holds_x = true;
        }
        lm.seq_copy_prefix(ch.seq_kept, ch.seq_work, P + m - 1);
        ch.work_holds_x = false;
        ch.pending      = {ch.seq_work, token_before(r, ch, m), true};
        ch.has_pending = true;
        ch.state       = phase::proposing;
    }

    void finish_chain(live_request & r, chain_state & ch, finish_reason why, int32_t stop_index = -1) {
        ch.state       = phase::done;
        ch.has_pending = false;
        sample_result & res = ch.result;
        res.finish      = why;
        if (stop_index >= 0) res.stop = r.ends->stops()[size_t(stop_index)];
        res.tokens      = ch.x;
        res.token_log_p = ch.x_log_p;
        res.log_p       = 0.0;
        for (double lp : ch.x_log_p) res.log_p += lp;
        release_seq(ch.seq_kept);
        release_seq(ch.seq_work);
        ch.seq_kept = ch.seq_work = -1;
        report(r, ch);
    }

    void end_block(live_request & r, chain_state & ch) {
        const auto & sp = r.req.params;
        if (const completion_end_hit hit = r.ends->at({span_of(ch.x)}); hit.kind != completion_end_kind::none) {
            finish_chain(r, ch, finish_of(hit), hit.stop_index);
            return;
        }
        if (int32_t(ch.x.size()) >= sp.max_new_tokens) {
            finish_chain(r, ch, finish_reason::length);
            return;
        }
        ch.block += 1;
        ch.step       = 0;
        ch.target_len = std::min<int64_t>(int64_t(ch.block) * r.block_len, sp.max_new_tokens);
        ch.state      = phase::extending;
        if (!ch.work_holds_x) {
            const int32_t P = int32_t(r.req.prompt.size());
            if (lm.shares_prefix_cells()) {
                lm.seq_copy_prefix(ch.seq_kept, ch.seq_work, P + int32_t(ch.x.size()) - 1);
            } else {
                std::swap(ch.seq_work, ch.seq_kept);  // as in start_proposal
                ch.kept_holds_x = false;
            }
            ch.work_holds_x = true;
        }
        ch.pending    = {ch.seq_work, ch.x.back(), true};
        ch.has_pending = true;
    }

    void after_extension(live_request & r, chain_state & ch) {
        ch.work_holds_x = true;  // the block was decoded into seq_work
        ch.kept_holds_x = false;
        report(r, ch);
        if (r.n_steps > 0) {
            start_proposal(r, ch);
        } else {
            end_block(r, ch);
        }
    }

    double log_p_of(const chain_state & ch) const {
        double s = 0.0;
        for (double lp : ch.x_log_p) s += lp;
        return s;
    }

    void after_proposal(live_request & r, chain_state & ch) {
        const auto & sp = r.req.params;
        const size_t m = size_t(ch.suffix_start);

        // Both sums run over the whole suffix of each sequence, whatever their lengths.
        double w_cur = 0.0, w_prop = 0.0, lp_cur = 0.0, lp_prop = 0.0;
        for (size_t i = m; i < ch.x.size(); ++i) { w_cur += ch.x_weight[i]; lp_cur += ch.x_log_p[i]; }
        for (size_t i = 0; i < ch.y.size(); ++i) { w_prop += ch.y_weight[i]; lp_prop += ch.y_log_p[i]; }
        // log q_cut(m | x') - log q_cut(m | x): the reverse over the forward cut probability. For
        // uniform cuts this is log len(x) - log len(x'), as the choice depends on the length.
        double length_correction = uniform_cut_correction(ch.x.size(), m + ch.y.size());
        if (sp.method == method::power_entropy) {
            std::vector<double> h_prop(ch.x_entropy.begin(), ch.x_entropy.begin() + long(m));
            h_prop.insert(h_prop.end(), ch.y_entropy.begin(), ch.y_entropy.end());
            const auto q_cut_prop = cut_probabilities(h_prop, sp.entropy_beta, sp.entropy_floor);
            length_correction = std::log(q_cut_prop[m]) - ch.log_cut_forward;
        }

        double log_accept = 0.0;
        switch (variant) {
            case acceptance_variant::exact:
            case acceptance_variant::without_bridging_term:            // concerns Power-SMC only
            case acceptance_variant::early_bound_assuming_full_length:  // concerns the bound only
            case acceptance_variant::stop_in_last_token_only:           // concerns where chains end
                log_accept = log_acceptance_ratio(w_cur, w_prop, length_correction);
                break;
            case acceptance_variant::without_proposal_terms:
                log_accept = sp.alpha * (lp_prop - lp_cur) + length_correction;
                break;
            case acceptance_variant::without_length_correction:
                log_accept = w_prop - w_cur;
                break;
            case acceptance_variant::without_reverse_cut:
                log_accept = w_prop - w_cur - ch.log_cut_forward;
                break;
        }
        const bool accepted = ch.log_u < log_accept;
        finish_step(r, ch, accepted, log_accept, lp_cur, lp_prop, false);
    }

    // An upper bound on the final log A of the proposal under way that never rises with more
    // tokens (sampling_params::early_rejection): the remaining w' are <= 0 and len(x') >= m + k.
    // For entropy-guided cuts the reverse cut probability is <= 1, so its log is bounded by 0.
    double early_rejection_bound(const live_request & r, const chain_state & ch) const {
        const double partial = ch.proposal_weight_so_far - ch.suffix_weight_current;
        if (r.req.params.method == method::power_entropy) return partial - ch.log_cut_forward;
        const size_t shortest = variant == acceptance_variant::early_bound_assuming_full_length
                                    ? size_t(ch.target_len)
                                    : size_t(ch.suffix_start) + ch.y.size();
        return partial + uniform_cut_correction(ch.x.size(), shortest);
    }

    void reject_early(live_request & r, chain_state & ch, double bound) {
        double lp_cur = 0.0, lp_prop = 0.0;
        for (size_t i = size_t(ch.suffix_start); i < ch.x.size(); ++i) lp_cur += ch.x_log_p[i];
        for (double lp : ch.y_log_p) lp_prop += lp;
        ch.result.n_early_rejections += 1;
        ch.result.n_tokens_saved += std::max<int64_t>(0, int64_t(ch.target_len) - ch.suffix_start - int64_t(ch.y.size()));
        finish_step(r, ch, false, bound, lp_cur, lp_prop, true);
    }

    void finish_step(live_request & r, chain_state & ch, bool accepted, double log_accept, double lp_cur,
                     double lp_prop, bool stopped_early) {
        const auto & sp = r.req.params;
        const size_t m = size_t(ch.suffix_start);
        const double len_cur  = double(ch.x.size());
        const double len_prop = double(m + ch.y.size());

        step_record rec;
        if (sp.record_trace) {
            rec.log_p_suffix_current  = lp_cur;
            rec.log_p_suffix_proposal = lp_prop;
            if (sp.record_suffixes) {
                rec.suffix_current.assign(ch.x.begin() + std::ptrdiff_t(m), ch.x.end());
                rec.suffix_proposal = ch.y;
            }
        }

        ch.result.n_proposals += 1;
        if (accepted) {
            ch.result.n_accepted += 1;
            ch.x.resize(m);
            ch.x_log_p.resize(m);
            ch.x_weight.resize(m);
            ch.x_entropy.resize(m);
            ch.x_entropy.insert(ch.x_entropy.end(), ch.y_entropy.begin(), ch.y_entropy.end());
            ch.x.insert(ch.x.end(), ch.y.begin(), ch.y.end());
            ch.x_log_p.insert(ch.x_log_p.end(), ch.y_log_p.begin(), ch.y_log_p.end());
            ch.x_weight.insert(ch.x_weight.end(), ch.y_weight.begin(), ch.y_weight.end());
            // seq_work now holds the new x; seq_kept is brought up to date when next needed.
            ch.work_holds_x = true;
            ch.kept_holds_x = false;
        }

        if (sp.record_trace) {
            rec.block            = ch.block;
            rec.position         = int32_t(m);
            rec.len_current      = int32_t(len_cur);
            rec.len_proposal     = int32_t(len_prop);
            rec.log_accept_ratio = log_accept;
            rec.accepted         = accepted;
            rec.n_tokens_proposed = int32_t(ch.y.size());
            rec.stopped_early    = stopped_early;
            rec.log_p_after      = log_p_of(ch);
            ch.result.trace.push_back(std::move(rec));
        }
        ch.step += 1;
        report(r, ch);
        if (ch.step < r.n_steps) {
            start_proposal(r, ch);
        } else {
            end_block(r, ch);
        }
    }

    // Rounding can make a w_i a few ulps positive where it is log sum p^alpha ~ 0 (one token
    // holds all the mass): allow 1e-9 per token still to come, so that no rounding can turn a
    // decision the full computation would make.
    static double early_rejection_margin(const chain_state & ch) {
        return 1e-9 * double(ch.target_len - ch.suffix_start - int32_t(ch.y.size()) + 1);
    }

    void on_logits(live_request & r, chain_state & ch, const float * row) {
        const auto & sp = r.req.params;
        random_stream & rng = ch.state == phase::extending ? ch.token_rng : ch.proposal_rng;
        const token_draw d = draw_token(row, lm.n_vocab(), r.proposal, rng, scratch);
        const double weight = sp.alpha * d.log_p - d.log_q;
        ch.result.n_tokens_generated += 1;

        if (ch.state == phase::extending) {
            ch.x.push_back(d.token);
            ch.x_log_p.push_back(d.log_p);
            ch.x_weight.push_back(weight);
            ch.x_entropy.push_back(d.entropy);
            const bool ends = r.ends->at({span_of(ch.x)}).kind != completion_end_kind::none;
            if (ends || int32_t(ch.x.size()) >= ch.target_len) {
                after_extension(r, ch);
            } else {
                ch.pending     = {ch.seq_work, d.token, true};
                ch.has_pending = true;
            }
        } else {
            ch.y.push_back(d.token);
            ch.y_log_p.push_back(d.log_p);
            ch.y_weight.push_back(weight);
            ch.y_entropy.push_back(d.entropy);
            ch.proposal_weight_so_far += weight;
            // The proposal x' = x[0:m] + y ends where the same rule ends it (EOG or a stop,
            // also one that starts inside the kept prefix).
            const bool ends =
                r.ends->at({span_of(ch.x, size_t(ch.suffix_start)), span_of(ch.y)}).kind != completion_end_kind::none;
            if (ends || ch.suffix_start + int32_t(ch.y.size()) >= ch.target_len) {
                after_proposal(r, ch);
            } else if (ch.early_rejection &&
                       early_rejection_bound(r, ch) + early_rejection_margin(ch) < ch.log_u) {
                reject_early(r, ch, early_rejection_bound(r, ch));
            } else {
                ch.pending     = {ch.seq_work, d.token, true};
                ch.has_pending = true;
            }
        }
    }

    // A finished runner's results; its sequences go back to the pool.
    std::vector<sample_result> take_runner_results(live_request & r) {
        auto results = r.runner->take_results();
        for (int32_t s : r.runner_seqs) release_seq(s);
        r.runner_seqs.clear();
        return results;
    }

    generation_result collect(live_request & r) {
        generation_result g;
        g.n_prompt_tokens  = int32_t(r.req.prompt.size());
        g.n_tokens_decoded = r.prompt_decoded;
        std::vector<sample_result> results;
        if (r.runner) {
            results = take_runner_results(r);
            // The runner was stopped by cancel(); to the caller it ran out of length, not intent.
            if (r.budget_exhausted && !r.cancelled) {
                for (auto & res : results) {
                    if (res.finish == finish_reason::cancelled) res.finish = finish_reason::length;
                }
            }
        } else {
            for (auto & ch : r.chains) results.push_back(std::move(ch.result));
        }
        if (r.req.params.method == method::best_of_n) {
            // Keep the most likely of each group of best_of samples; the cost is the group's.
            const size_t n = size_t(r.req.params.best_of);
            std::vector<sample_result> best;
            for (size_t start = 0; start + n <= results.size(); start += n) {
                size_t pick = start;
                int64_t generated = 0, decoded = 0;
                for (size_t i = start; i < start + n; ++i) {
                    if (results[i].log_p > results[pick].log_p) pick = i;
                    generated += results[i].n_tokens_generated;
                    decoded += results[i].n_tokens_decoded;
                }
                best.push_back(std::move(results[pick]));
                best.back().n_tokens_generated = generated;
                best.back().n_tokens_decoded   = decoded;
            }
            results = std::move(best);
        }
        for (auto & res : results) {
            g.n_tokens_decoded += res.n_tokens_decoded;
            g.chains.push_back(std::move(res));
        }
        g.wall_seconds     = std::chrono::duration<double>(clock_type::now() - r.start).count();
        g.budget_exhausted = r.budget_exhausted;
        return g;
    }

    void apply_cancellations() {
        std::set<uint64_t> ids;
        {
            std::lock_guard<std::mutex> lock(cancel_mutex);
            ids.swap(cancel_ids);
        }
        const bool all = cancel_everything.exchange(false);
        for (auto & r : live) {
            if (all || ids.count(r.id)) r.cancelled = true;
        }
        for (auto it = queued.begin(); it != queued.end();) {
            if (all || ids.count(it->id)) {
                finished.push_back({it->id, generation_result{}});
                auto & g = finished.back().result;
                g.n_prompt_tokens = int32_t(it->req.prompt.size());
                g.chains.resize(size_t(it->req.params.n_chains));
                for (auto & c : g.chains) c.finish = finish_reason::cancelled;
                it = queued.erase(it);
            } else {
                ++it;
            }
        }
        for (auto & r : live) {
            if (!r.cancelled) continue;
            if (r.runner && !r.runner->done()) r.runner->cancel();
            for (auto & ch : r.chains) {
                if (ch.state != phase::done) finish_chain(r, ch, finish_reason::cancelled);
            }
        }
    }

    // A request that has used its budget stops where it is, in the round that reached it, so it
    // decodes at most one round's entries (one per chain, particle or branch) beyond it.
    void stop_over_budget() {
        for (auto & r : live) {
            const int64_t budget = r.req.params.max_tokens_decoded;
            if (budget <= 0 || r.scoring || r.cancelled || r.budget_exhausted || r.n_decoded < budget) continue;
            r.budget_exhausted = true;
            if (r.runner) {
                if (!r.runner->done()) r.runner->cancel();
                continue;
            }
            for (auto & ch : r.chains) {
                if (ch.state != phase::done) finish_chain(r, ch, finish_reason::length);
            }
        }
    }

    void retire_finished() {
        for (size_t i = 0; i < live.size();) {
            auto & r = live[i];
            const bool all_done = r.runner ? r.runner->done()
                                           : std::all_of(r.chains.begin(), r.chains.end(),
                                                         [](const chain_state & c) { return c.state == phase::done; });
            if (!all_done) {
                ++i;
                continue;
            }
            if (r.scoring) {
                r.sampled.chains = take_runner_results(r);
                r.runner.reset();
            } else {
                r.sampled = collect(r);
                if (r.req.n_top_log_p > 0 && !r.cancelled) {
                    start_scoring(r);
                    ++i;
                    continue;
                }
            }
            cells_reserved -= r.cells;
            finished.push_back({r.id, std::move(r.sampled)});
            live.erase(live.begin() + long(i));
        }
    }

    // Two sequences for the alternatives' pass: this request's chains (or runner) have just
    // released theirs in this round, and nothing is admitted before the next, so they are free.
    // The request keeps its cells until the pass is over.
    void start_scoring(live_request & r) {
        r.scoring = true;
        r.runner_seqs = {take_seq(false), take_seq(true)};
        r.runner = make_top_log_p_runner(lm, r.req.prompt, std::move(r.sampled.chains), r.req.n_top_log_p,
                                         r.runner_seqs);
        r.sampled.chains.clear();
    }

    bool step() {
        apply_cancellations();
        retire_finished();
        // Admit in order; a request that does not fit waits, and so do those behind it.
        while (!queued.empty() && fits(queued.front())) {
            live.push_back(std::move(queued.front()));
            queued.pop_front();
            admit(live.back());
        }
        if (live.empty()) {
            return !queued.empty();
        }

        std::vector<decode_entry> entries;
        std::vector<std::pair<size_t, size_t>> owners;  // (request, chain) of each entry
        constexpr size_t runner_owner = SIZE_MAX;        // chain slot of a runner's entry: its index
        std::vector<size_t> runner_entry_index;         // per entry of a runner: k within that runner
        for (size_t ri = 0; ri < live.size(); ++ri) {
            if (live[ri].runner && !live[ri].runner->done()) {
                const size_t before = entries.size();
                live[ri].runner->collect(entries);
                for (size_t e = before; e < entries.size(); ++e) {
                    owners.emplace_back(ri, runner_owner);
                }
            }
        }
        runner_entry_index.assign(entries.size(), 0);
        {
            std::vector<size_t> next(live.size(), 0);
            for (size_t e = 0; e < entries.size(); ++e) runner_entry_index[e] = next[owners[e].first]++;
        }
        for (size_t ri = 0; ri < live.size(); ++ri) {
            for (size_t ci = 0; ci < live[ri].chains.size(); ++ci) {
                chain_state & ch = live[ri].chains[ci];
                if (ch.state != phase::done && ch.has_pending) {
                    entries.push_back(ch.pending);
                    owners.emplace_back(ri, ci);
                    ch.has_pending = false;
                }
            }
        }
        if (!entries.empty()) {
            lm.decode(entries);
            for (size_t e = 0; e < entries.size(); ++e) {
                auto & r  = live[owners[e].first];
                r.n_decoded += 1;
                if (owners[e].second == runner_owner) {
                    r.runner->deliver(int32_t(runner_entry_index[e]),
                                      entries[e].want_logits ? lm.logits(int32_t(e)) : nullptr);
                    continue;
                }
                auto & ch = r.chains[owners[e].second];
                ch.result.n_tokens_decoded += 1;
                on_logits(r, ch, lm.logits(int32_t(e)));
            }
        }
        for (auto & r : live) {
            if (r.runner && !r.runner->done()) r.runner->end_round();
        }
        stop_over_budget();
        retire_finished();
        return !live.empty() || !queued.empty();
    }
};

engine::engine(language_model & lm) : impl_(std::make_unique<impl>(lm)) {}
engine::~engine() = default;

uint64_t engine::submit(request req) {
    validate(req.params);
    if (req.n_top_log_p < 0 || req.n_top_log_p > max_top_log_p) {
        throw invalid_argument_error("n_top_log_p", "n_top_log_p: " + std::to_string(req.n_top_log_p) + " is outside [0, " +
                                     std::to_string(max_top_log_p) + "]");
    }
    if (req.prompt.empty()) {
        throw invalid_argument_error("prompt", "prompt: empty (it must have at least one token)");
    }
    for (token_id t : req.prompt) {
        if (t < 0 || t >= impl_->lm.n_vocab()) {
            throw invalid_argument_error("prompt", "prompt: token id " + std::to_string(t) + " outside the vocabulary");
        }
    }
    live_request r;
    const auto & sp = req.params;
    r.ends = std::make_unique<completion_end>(impl_->lm, sp.stop,
                                              impl_->variant == acceptance_variant::stop_in_last_token_only);
    r.id  = impl_->next_id++;
    const int32_t n_seq_needed = sequences_needed(sp);
    if (n_seq_needed > impl_->lm.n_seq_max()) {
        throw invalid_argument_error("chains", std::string("method ") + method_name(sp.method) + " with chains = " +
                                     std::to_string(sp.n_chains) + ": needs " + std::to_string(n_seq_needed) +
                                     " sequence ids, the context has " + std::to_string(impl_->lm.n_seq_max()));
    }
    r.req   = std::move(req);
    const int32_t per_sequence = impl_->lm.n_cells_per_sequence();
    // Cells drawn from a shared pool; none where every sequence has its own.
    r.cells = per_sequence > 0 ? 0
                               : kv_cells_needed(int64_t(r.req.prompt.size()), r.req.params,
                                                 impl_->lm.shares_prefix_cells());
    if (per_sequence > 0) {
        // Each sequence has its own cells; the longest one is the prompt plus the completion.
        const int64_t longest = int64_t(r.req.prompt.size()) + sp.max_new_tokens;
        if (longest > per_sequence) {
            throw invalid_argument_error("prompt", "prompt (" + std::to_string(r.req.prompt.size()) +
                                         " tokens) + " + knob_for(&sampling_params::max_new_tokens).name() + " = " + std::to_string(sp.max_new_tokens) +
                                         " exceeds the " + std::to_string(per_sequence) +
                                         " KV cells each sequence has");
        }
    } else if (r.cells > impl_->lm.n_cells()) {
        throw invalid_argument_error("prompt", "prompt (" + std::to_string(r.req.prompt.size()) +
                                     " tokens) + " + knob_for(&sampling_params::max_new_tokens).name() + " = " + std::to_string(sp.max_new_tokens) +
                                     " with " + std::to_string(sp.n_chains) + " chain(s) needs " +
                                     std::to_string(r.cells) + " KV cells, the context has " +
                                     std::to_string(impl_->lm.n_cells()));
    }
    const auto & p = r.req.params;
    r.proposal.greedy          = p.method == method::greedy;
    r.proposal.inv_temperature = r.proposal.greedy ? 1.0 : 1.0 / effective_temperature(p);
    r.proposal.top_k           = p.top_k;
    r.proposal.top_p           = p.top_p;
    r.proposal.min_p           = p.min_p;
    if (p.method == method::power || p.method == method::power_entropy) {
        r.n_steps   = p.n_steps_per_block;
        r.block_len = p.block_size;
    } else {
        // Plain decoding: one block the length of the cap, no MH steps.
        r.n_steps   = 0;
        r.block_len = p.max_new_tokens;
    }
    r.n_blocks = (p.max_new_tokens + r.block_len - 1) / r.block_len;
    const uint64_t id = r.id;
    impl_->queued.push_back(std::move(r));
    return id;
}

bool engine::step() { return impl_->step(); }

std::vector<finished_request> engine::take_finished() {
    std::vector<finished_request> out;
    out.swap(impl_->finished);
    return out;
}

void engine::cancel(uint64_t id) {
    std::lock_guard<std::mutex> lock(impl_->cancel_mutex);
    impl_->cancel_ids.insert(id);
}

void engine::cancel_all() { impl_->cancel_everything = true; }

void engine::set_progress_callback(progress_callback cb) { impl_->on_progress = std::move(cb); }

size_t engine::n_queued() const { return impl_->queued.size(); }
size_t engine::n_live() const { return impl_->live.size(); }

std::vector<finished_request> engine::run_all() {
    std::vector<finished_request> all;
    while (step()) {
        for (auto & f : take_finished()) all.push_back(std::move(f));
    }
    for (auto & f : take_finished()) all.push_back(std::move(f));
    std::sort(all.begin(), all.end(), [](const finished_request & a, const finished_request & b) { return a.id < b.id; });
    return all;
}

void engine::set_acceptance_variant_for_testing(acceptance_variant v) { impl_->variant = v; }

}  // namespace powersample
