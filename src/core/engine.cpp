// The scheduler: admits requests as their sequence ids and KV cells allow, decodes one batch per
// round for every request's method (a request_runner: MH, SMC, SPS, ...), and enforces budgets
// and cancellation. What a method decides lives in its runner, not here.
#include "powersample/engine.h"
#include "powersample/knobs.h"

#include "core/completion-end.h"
#include "core/request-runner.h"

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

struct live_request {
    uint64_t                        id = 0;
    request                         req;
    std::unique_ptr<completion_end> ends;       // EOG and stop strings: where a completion ends
    int64_t                         cells = 0;  // reserved KV cells
    clock_type::time_point          start;
    int64_t                         prompt_decoded   = 0;
    int64_t                         n_decoded        = 0;  // prompt and every entry so far: the budget's count
    bool                            cancelled        = false;
    bool                            budget_exhausted = false;
    // The method's state machine (request-runner.h) and the sequence ids it holds.
    std::unique_ptr<request_runner> runner;
    std::vector<int32_t>            runner_seqs;
    // Sampling done, request::n_top_log_p asked: `runner` now finds the alternatives, and this
    // is the result it completes.
    bool              scoring = false;
    generation_result sampled;
};

}  // namespace

int32_t sps_candidate_sequences(const sampling_params & params) {
    // The last window may draw more candidates than a block; both use the same ids. The token
    // level holds one per top token.
    if (params.sps_level == sps_level::token) return std::max(params.sps_top_k, effective_sps_last_top_k(params));
    return std::max(params.sps_candidates, effective_sps_last_candidates(params));
}

int32_t sequences_needed(const sampling_params & params) {
    const int64_t chains = params.n_chains;
    int64_t       n      = 0;
    switch (params.method) {
        case method::smc: n = 1 + chains * 2 * int64_t(params.n_particles); break;
        case method::sps: {
            const int64_t candidates = sps_candidate_sequences(params);
            n                        = 1 + chains * (1 + candidates + int64_t(params.sps_top_k) * params.sps_rollouts);
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
            const int64_t B          = params.sps_level == sps_level::token ? 1 : params.block_size;
            const int64_t H          = params.sps_lookahead > 0 ? params.sps_lookahead : T;
            const int64_t candidates = sps_candidate_sequences(params);
            int64_t       per_chain =
                T + 1 + candidates * (B + 1) + int64_t(params.sps_top_k) * params.sps_rollouts * (H + 1);
            if (!prefix_shared) per_chain += (sequences_needed(params) / params.n_chains) * (P + T);
            return P + int64_t(params.n_chains) * per_chain;
        }
        default: break;
    }
    const bool mh        = params.method == method::power || params.method == method::power_entropy;
    int64_t    per_chain = mh ? 2 * T + 2 : T + 1;
    if (!prefix_shared) {
        per_chain += 2 * P;
    }
    const int64_t chains = int64_t(params.n_chains) * (params.method == method::best_of_n ? params.best_of : 1);
    return P + chains * per_chain;
}

decode_cost estimate_decode_cost(const sampling_params & params, int64_t n_prompt_tokens) {
    // Doubles, so that the largest knobs saturate instead of overflowing; exact below 2^53.
    const double T           = params.max_new_tokens;
    const double B           = std::max<int32_t>(1, params.block_size);
    const double K           = std::ceil(T / B);
    const double sum_lengths = B * (K - 1) * K / 2 + T;  // sum_k min(k B, T)
    double       expected = T, worst = T;
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
            const bool   token            = params.sps_level == sps_level::token;
            const double Bs               = token ? 1.0 : B;
            const double n                = std::ceil(T / Bs);
            const double r                = n - 1;
            const double H                = params.sps_lookahead;
            const double a                = H > 0 ? std::clamp(std::floor((T - H) / Bs), 0.0, r) : 0.0;
            const double rollout_sum      = a * H + (r - a) * T - Bs * (r * (r + 1) / 2 - a * (a + 1) / 2);
            const double candidate_tokens = token ? n
                                                  : double(params.sps_candidates) * Bs * r +
                                                        double(effective_sps_last_candidates(params)) * (T - r * Bs);
            worst = expected = candidate_tokens + double(params.sps_top_k) * params.sps_rollouts * rollout_sum;
            break;
        }
        default: break;
    }
    const double chains   = params.n_chains;
    const double prompt   = double(std::max<int64_t>(0, n_prompt_tokens - 1));
    auto         saturate = [](double v) { return v >= 9.2e18 ? INT64_MAX : int64_t(std::llround(v)); };
    return { saturate(prompt + chains * expected), saturate(prompt + chains * worst) };
}

struct engine::impl {
    language_model &              lm;
    uint64_t                      next_id = 0;
    std::deque<live_request>      queued;
    std::vector<live_request>     live;
    std::vector<bool>             seq_free;
    int64_t                       cells_reserved = 0;
    std::vector<finished_request> finished;
    progress_callback             on_progress;
    acceptance_variant            variant = acceptance_variant::exact;

    std::mutex         cancel_mutex;
    std::set<uint64_t> cancel_ids;
    std::atomic<bool>  cancel_everything{ false };

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
        const auto &  prompt = r.req.prompt;
        const int32_t P      = int32_t(prompt.size());
        r.start              = clock_type::now();
        cells_reserved += r.cells;

        // Decode the prompt once (all but its last token) and share it with every chain.
        const int32_t prompt_seq = take_seq(false);
        if (P > 1) {
            std::vector<decode_entry> entries;
            entries.reserve(size_t(P - 1));
            for (int32_t i = 0; i < P - 1; ++i) {
                entries.push_back({ prompt_seq, prompt[size_t(i)], false });
            }
            lm.decode(entries);
            r.prompt_decoded = P - 1;
        }
        r.n_decoded     = r.prompt_decoded;
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
        // MH and the plain decoders: a work and a kept id per chain; the prompt's is shared once.
        const int32_t n_chains = sp.n_chains * (sp.method == method::best_of_n ? sp.best_of : 1);
        for (int32_t c = 0; c < n_chains; ++c) {
            r.runner_seqs.push_back(take_seq(true));
            r.runner_seqs.push_back(take_seq(false));
        }
        chain_progress report = [this, id = r.id](progress p) {
            if (!on_progress) return;
            p.request_id = id;
            on_progress(p);
        };
        r.runner = make_mh_runner(lm, prompt, sp, *r.ends, prompt_seq, r.runner_seqs, variant, std::move(report));
        release_seq(prompt_seq);
    }

    // Sequence ids a runner no longer uses go back to the pool.
    void reclaim_released_seqs(live_request & r) {
        for (int32_t s : r.runner->take_released_seqs()) {
            const auto it = std::find(r.runner_seqs.begin(), r.runner_seqs.end(), s);
            if (it == r.runner_seqs.end()) throw error("engine: a runner released a sequence id it does not hold");
            r.runner_seqs.erase(it);
            release_seq(s);
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
        g.n_prompt_tokens                  = int32_t(r.req.prompt.size());
        g.n_tokens_decoded                 = r.prompt_decoded;
        std::vector<sample_result> results = take_runner_results(r);
        // The runner was stopped by cancel(); to the caller it ran out of length, not intent.
        if (r.budget_exhausted && !r.cancelled) {
            for (auto & res : results) {
                if (res.finish == finish_reason::cancelled) res.finish = finish_reason::length;
            }
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
                finished.push_back({ it->id, generation_result{} });
                auto & g          = finished.back().result;
                g.n_prompt_tokens = int32_t(it->req.prompt.size());
                g.chains.resize(size_t(it->req.params.n_chains));
                for (auto & c : g.chains) c.finish = finish_reason::cancelled;
                it = queued.erase(it);
            } else {
                ++it;
            }
        }
        for (auto & r : live) {
            if (r.cancelled && !r.runner->done()) r.runner->cancel();
        }
    }

    // A request that has used its budget stops where it is, in the round that reached it, so it
    // decodes at most one round's entries (one per chain, particle or branch) beyond it.
    void stop_over_budget() {
        for (auto & r : live) {
            const int64_t budget = r.req.params.max_tokens_decoded;
            if (budget <= 0 || r.scoring || r.cancelled || r.budget_exhausted || r.n_decoded < budget) continue;
            r.budget_exhausted = true;
            if (!r.runner->done()) r.runner->cancel();
        }
    }

    void retire_finished() {
        for (size_t i = 0; i < live.size();) {
            auto & r = live[i];
            reclaim_released_seqs(r);
            if (!r.runner->done()) {
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
            finished.push_back({ r.id, std::move(r.sampled) });
            live.erase(live.begin() + long(i));
        }
    }

    // Two sequences for the alternatives' pass: this request's chains (or runner) have just
    // released theirs in this round, and nothing is admitted before the next, so they are free.
    // The request keeps its cells until the pass is over.
    void start_scoring(live_request & r) {
        r.scoring     = true;
        r.runner_seqs = { take_seq(false), take_seq(true) };
        r.runner =
            make_top_log_p_runner(lm, r.req.prompt, std::move(r.sampled.chains), r.req.n_top_log_p, r.runner_seqs);
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
        std::vector<size_t>       owner;         // the request of each entry
        std::vector<int32_t>      within_owner;  // its index among that runner's entries this round
        for (size_t ri = 0; ri < live.size(); ++ri) {
            if (live[ri].runner->done()) continue;
            const size_t before = entries.size();
            live[ri].runner->collect(entries);
            for (size_t e = before; e < entries.size(); ++e) {
                owner.push_back(ri);
                within_owner.push_back(int32_t(e - before));
            }
        }
        if (!entries.empty()) {
            lm.decode(entries);
            for (size_t e = 0; e < entries.size(); ++e) {
                auto & r = live[owner[e]];
                r.n_decoded += 1;
                r.runner->deliver(within_owner[e], entries[e].want_logits ? lm.logits(int32_t(e)) : nullptr);
            }
        }
        for (auto & r : live) {
            if (!r.runner->done()) r.runner->end_round();
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
        throw invalid_argument_error("n_top_log_p", "n_top_log_p: " + std::to_string(req.n_top_log_p) +
                                                        " is outside [0, " + std::to_string(max_top_log_p) + "]");
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
    const auto & sp            = req.params;
    r.ends                     = std::make_unique<completion_end>(impl_->lm, sp.stop,
                                              impl_->variant == acceptance_variant::stop_in_last_token_only);
    r.id                       = impl_->next_id++;
    const int32_t n_seq_needed = sequences_needed(sp);
    if (n_seq_needed > impl_->lm.n_seq_max()) {
        const std::string chains = knob_for(&sampling_params::n_chains).name();
        throw invalid_argument_error(chains, std::string("method ") + method_name(sp.method) + " with " + chains +
                                                 " = " + std::to_string(sp.n_chains) + ": needs " +
                                                 std::to_string(n_seq_needed) + " sequence ids, the context has " +
                                                 std::to_string(impl_->lm.n_seq_max()));
    }
    r.req                      = std::move(req);
    const int32_t per_sequence = impl_->lm.n_cells_per_sequence();
    // Cells drawn from a shared pool; none where every sequence has its own.
    r.cells = per_sequence > 0
                  ? 0
                  : kv_cells_needed(int64_t(r.req.prompt.size()), r.req.params, impl_->lm.shares_prefix_cells());
    if (per_sequence > 0) {
        // Each sequence has its own cells; the longest one is the prompt plus the completion.
        const int64_t longest = int64_t(r.req.prompt.size()) + sp.max_new_tokens;
        if (longest > per_sequence) {
            throw invalid_argument_error("prompt", "prompt (" + std::to_string(r.req.prompt.size()) + " tokens) + " +
                                                       knob_for(&sampling_params::max_new_tokens).name() + " = " +
                                                       std::to_string(sp.max_new_tokens) + " exceeds the " +
                                                       std::to_string(per_sequence) + " KV cells each sequence has");
        }
    } else if (r.cells > impl_->lm.n_cells()) {
        throw invalid_argument_error("prompt", "prompt (" + std::to_string(r.req.prompt.size()) + " tokens) + " +
                                                   knob_for(&sampling_params::max_new_tokens).name() + " = " +
                                                   std::to_string(sp.max_new_tokens) + " with " +
                                                   std::to_string(sp.n_chains) + " chain(s) needs " +
                                                   std::to_string(r.cells) + " KV cells, the context has " +
                                                   std::to_string(impl_->lm.n_cells()));
    }
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
    std::sort(all.begin(), all.end(),
              [](const finished_request & a, const finished_request & b) { return a.id < b.id; });
    return all;
}

void engine::set_acceptance_variant_for_testing(acceptance_variant v) { impl_->variant = v; }

}  // namespace powersample
