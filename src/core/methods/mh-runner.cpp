// The Metropolis-Hastings power sampler as a request runner: one state machine per chain, driven
// in the engine's batched rounds. ref: arXiv 2510.14901, Alg. 1, with the exact acceptance ratio
// of docs/algorithm.md. The plain decoders (greedy, sample, low-temp) are the same chains with no
// MH step and one block the length of the cap; best-of-n wraps them and keeps the most likely.
#include "core/completion-end.h"
#include "core/methods/mh-chain.h"
#include "core/request-runner.h"
#include "core/token-sampler.h"

#include <algorithm>

namespace powersample {

namespace {

enum class phase { extending, proposing, done };

struct chain_state {
    int32_t index = 0;
    // Every token of this chain is decoded into seq_work; seq_kept holds the state x while a
    // proposal grows in seq_work. Decoding into one fixed id per chain lets a KV cache with one
    // stream per sequence batch all chains together (llama.cpp puts only consecutive sequence
    // ids in one micro-batch), and keeps each sequence's cells in position order.
    int32_t       seq_kept     = -1;
    int32_t       seq_work     = -1;
    bool          kept_holds_x = false;  // seq_kept's KV = x without its last token
    bool          work_holds_x = false;  // seq_work's KV = x without its last token
    random_stream token_rng;             // block extensions' token draws
    random_stream proposal_rng;          // the current proposal's token draws: a stream per proposal, so
                                         // that a proposal stopped early (early rejection) shifts no later draw

    // The state x, the step under way and its decisions (mh-chain.h); this file feeds it tokens.
    mh_chain mh;

    phase   state      = phase::extending;
    int32_t block      = 1;
    int32_t step       = 0;
    int32_t target_len = 0;

    bool         has_pending = false;
    decode_entry pending{};
};

class mh_runner final : public request_runner {
public:
    mh_runner(language_model & lm, const std::vector<token_id> & prompt, const sampling_params & params,
              const completion_end & ends, int32_t prompt_seq, std::vector<int32_t> seqs, int32_t n_chains,
              engine::acceptance_variant variant, chain_progress report)
        : lm_(lm), prompt_(prompt), params_(params), ends_(ends), report_(std::move(report)) {
        proposal_.greedy          = params.method == method::greedy;
        proposal_.inv_temperature = proposal_.greedy ? 1.0 : 1.0 / effective_temperature(params);
        proposal_.top_k           = params.top_k;
        proposal_.top_p           = params.top_p;
        proposal_.min_p           = params.min_p;
        if (params.method == method::power || params.method == method::power_entropy) {
            n_steps_   = params.n_steps_per_block;
            block_len_ = params.block_size;
        } else {
            // Plain decoding: one block the length of the cap, no MH steps.
            n_steps_   = 0;
            block_len_ = params.max_new_tokens;
        }
        n_blocks_ = (params.max_new_tokens + block_len_ - 1) / block_len_;

        const int32_t P = int32_t(prompt.size());
        chains_.resize(size_t(n_chains));
        for (int32_t c = 0; c < n_chains; ++c) {
            chain_state & ch = chains_[size_t(c)];
            ch.index         = c;
            ch.seq_work      = seqs[size_t(2 * c)];
            ch.seq_kept      = seqs[size_t(2 * c + 1)];
            ch.token_rng     = random_stream(params.seed, uint64_t(c), 0);
            ch.mh            = mh_chain(params, uint64_t(c));
            ch.mh.set_acceptance_variant(variant);
            ch.target_len = std::min(block_len_, params.max_new_tokens);
            lm.seq_copy_prefix(prompt_seq, ch.seq_work, P - 1);
            // The last prompt token is decoded per chain: its logits give x_0.
            ch.pending     = { ch.seq_work, prompt.back(), true };
            ch.has_pending = true;
        }
    }

    void collect(std::vector<decode_entry> & entries) override {
        delivered_to_.clear();
        for (auto & ch : chains_) {
            if (ch.state != phase::done && ch.has_pending) {
                entries.push_back(ch.pending);
                delivered_to_.push_back(&ch);
                ch.has_pending = false;
            }
        }
    }

    void deliver(int32_t k, const float * logits) override {
        chain_state & ch = *delivered_to_[size_t(k)];
        ch.mh.result().n_tokens_decoded += 1;
        on_logits(ch, logits);
    }

    void end_round() override {}

    bool done() const override {
        return std::all_of(chains_.begin(), chains_.end(),
                           [](const chain_state & c) { return c.state == phase::done; });
    }

    void cancel() override {
        for (auto & ch : chains_) {
            if (ch.state != phase::done) finish_chain(ch, finish_reason::cancelled);
        }
    }

    std::vector<sample_result> take_results() override {
        std::vector<sample_result> results;
        for (auto & ch : chains_) results.push_back(std::move(ch.mh.result()));
        return results;
    }

    std::vector<int32_t> take_released_seqs() override {
        std::vector<int32_t> out;
        out.swap(released_);
        return out;
    }

private:
    void report(const chain_state & ch) {
        if (!report_) return;
        progress p{};
        p.chain              = ch.index;
        p.block              = ch.block;
        p.n_blocks           = n_blocks_;
        p.step               = ch.step;
        p.n_steps            = n_steps_;
        p.length             = int32_t(ch.mh.tokens().size());
        p.n_proposals        = ch.mh.result().n_proposals;
        p.n_accepted         = ch.mh.result().n_accepted;
        p.n_tokens_generated = ch.mh.result().n_tokens_generated;
        p.done               = ch.state == phase::done;
        report_(p);
    }

    token_id token_before(const chain_state & ch, int32_t m) const {
        return m == 0 ? prompt_.back() : ch.mh.tokens()[size_t(m - 1)];
    }

    void start_proposal(chain_state & ch) {
        const int32_t P     = int32_t(prompt_.size());
        const int32_t x_len = int32_t(ch.mh.tokens().size());
        const int32_t m     = ch.mh.begin_step();
        ch.proposal_rng     = random_stream(params_.seed, uint64_t(ch.index), 2 + uint64_t(ch.mh.result().n_proposals));
        // Share the prefix; the token at P + m - 1 is decoded again because its logits row (the
        // distribution of x'_m) was not kept: one extra token per step, no prefix recompute.
        if (!ch.kept_holds_x) {
            if (lm_.shares_prefix_cells()) {
                lm_.seq_copy_prefix(ch.seq_work, ch.seq_kept, P + x_len - 1);
            } else {
                // A copy would decode the whole state again: swap the ids instead (free; it only
                // costs the consecutive ids that batching across chains prefers).
                std::swap(ch.seq_work, ch.seq_kept);
            }
            ch.kept_holds_x = true;
        }
        lm_.seq_copy_prefix(ch.seq_kept, ch.seq_work, P + m - 1);
        ch.work_holds_x = false;
        ch.pending      = { ch.seq_work, token_before(ch, m), true };
        ch.has_pending  = true;
        ch.state        = phase::proposing;
    }

    void finish_chain(chain_state & ch, finish_reason why, int32_t stop_index = -1) {
        ch.state            = phase::done;
        ch.has_pending      = false;
        sample_result & res = ch.mh.result();
        res.finish          = why;
        if (stop_index >= 0) res.stop = ends_.stops()[size_t(stop_index)];
        res.tokens      = ch.mh.tokens();
        res.token_log_p = ch.mh.token_log_p();
        res.log_p       = ch.mh.log_p();
        // The chain's sequences go back to the engine's pool now, not when the request ends.
        released_.push_back(ch.seq_kept);
        released_.push_back(ch.seq_work);
        ch.seq_kept = ch.seq_work = -1;
        report(ch);
    }

    void end_block(chain_state & ch) {
        const std::vector<token_id> & x = ch.mh.tokens();
        if (const completion_end_hit hit = ends_.at({ span_of(x) }); hit.kind != completion_end_kind::none) {
            finish_chain(ch, finish_of(hit), hit.stop_index);
            return;
        }
        if (int32_t(x.size()) >= params_.max_new_tokens) {
            finish_chain(ch, finish_reason::length);
            return;
        }
        ch.block += 1;
        ch.step       = 0;
        ch.target_len = std::min<int64_t>(int64_t(ch.block) * block_len_, params_.max_new_tokens);
        ch.state      = phase::extending;
        if (!ch.work_holds_x) {
            const int32_t P = int32_t(prompt_.size());
            if (lm_.shares_prefix_cells()) {
                lm_.seq_copy_prefix(ch.seq_kept, ch.seq_work, P + int32_t(x.size()) - 1);
            } else {
                std::swap(ch.seq_work, ch.seq_kept);  // as in start_proposal
                ch.kept_holds_x = false;
            }
            ch.work_holds_x = true;
        }
        ch.pending     = { ch.seq_work, x.back(), true };
        ch.has_pending = true;
    }

    void after_extension(chain_state & ch) {
        ch.work_holds_x = true;  // the block was decoded into seq_work
        ch.kept_holds_x = false;
        report(ch);
        if (n_steps_ > 0) {
            start_proposal(ch);
        } else {
            end_block(ch);
        }
    }

    // The step is over: the chain decided (mh_chain::end_step); keep the KV cache's bookkeeping
    // and go on with the next step or block.
    void end_step(chain_state & ch, bool stopped_early) {
        if (ch.mh.end_step(ch.block, ch.target_len, stopped_early)) {
            // seq_work now holds the new x; seq_kept is brought up to date when next needed.
            ch.work_holds_x = true;
            ch.kept_holds_x = false;
        }
        ch.step += 1;
        report(ch);
        if (ch.step < n_steps_) {
            start_proposal(ch);
        } else {
            end_block(ch);
        }
    }

    void on_logits(chain_state & ch, const float * row) {
        random_stream &  rng = ch.state == phase::extending ? ch.token_rng : ch.proposal_rng;
        const token_draw d   = draw_token(row, lm_.n_vocab(), proposal_, rng, scratch_);
        ch.mh.result().n_tokens_generated += 1;

        if (ch.state == phase::extending) {
            ch.mh.extend(d.token, d.log_p, d.log_q, d.entropy);
            const std::vector<token_id> & x    = ch.mh.tokens();
            const bool                    ends = ends_.at({ span_of(x) }).kind != completion_end_kind::none;
            if (ends || int32_t(x.size()) >= ch.target_len) {
                after_extension(ch);
            } else {
                ch.pending     = { ch.seq_work, d.token, true };
                ch.has_pending = true;
            }
        } else {
            ch.mh.propose(d.token, d.log_p, d.log_q, d.entropy);
            // The proposal x' = x[0:m] + y ends where the same rule ends it (EOG or a stop,
            // also one that starts inside the kept prefix).
            const int32_t m = ch.mh.cut();
            const auto &  y = ch.mh.proposal();
            const bool    ends =
                ends_.at({ span_of(ch.mh.tokens(), size_t(m)), span_of(y) }).kind != completion_end_kind::none;
            if (ends || m + int32_t(y.size()) >= ch.target_len) {
                end_step(ch, false);
            } else if (ch.mh.cannot_be_accepted(ch.target_len)) {
                end_step(ch, true);
            } else {
                ch.pending     = { ch.seq_work, d.token, true };
                ch.has_pending = true;
            }
        }
    }

    language_model &           lm_;
    std::vector<token_id>      prompt_;  // copies: the engine moves its requests
    sampling_params            params_;
    const completion_end &     ends_;
    chain_progress             report_;
    proposal_config            proposal_;
    int32_t                    n_steps_   = 0;  // MH steps per block actually run
    int32_t                    n_blocks_  = 1;
    int32_t                    block_len_ = 0;
    std::vector<chain_state>   chains_;
    std::vector<chain_state *> delivered_to_;  // the chain of each entry collected this round
    std::vector<int32_t>       released_;
    draw_scratch               scratch_;
};

// method::best_of_n: best_of plain chains per chain asked; keeps the most likely of each group.
class best_of_n_runner final : public request_runner {
public:
    best_of_n_runner(std::unique_ptr<request_runner> samples, int32_t best_of)
        : samples_(std::move(samples)), best_of_(size_t(best_of)) {}

    void                 collect(std::vector<decode_entry> & entries) override { samples_->collect(entries); }
    void                 deliver(int32_t k, const float * logits) override { samples_->deliver(k, logits); }
    void                 end_round() override { samples_->end_round(); }
    bool                 done() const override { return samples_->done(); }
    void                 cancel() override { samples_->cancel(); }
    std::vector<int32_t> take_released_seqs() override { return samples_->take_released_seqs(); }

    std::vector<sample_result> take_results() override {
        std::vector<sample_result> results = samples_->take_results();
        // The kept sample carries its group's cost.
        std::vector<sample_result> best;
        for (size_t start = 0; start + best_of_ <= results.size(); start += best_of_) {
            size_t  pick      = start;
            int64_t generated = 0, decoded = 0;
            for (size_t i = start; i < start + best_of_; ++i) {
                if (results[i].log_p > results[pick].log_p) pick = i;
                generated += results[i].n_tokens_generated;
                decoded += results[i].n_tokens_decoded;
            }
            best.push_back(std::move(results[pick]));
            best.back().n_tokens_generated = generated;
            best.back().n_tokens_decoded   = decoded;
        }
        return best;
    }

private:
    std::unique_ptr<request_runner> samples_;
    size_t                          best_of_;
};

}  // namespace

std::unique_ptr<request_runner> make_mh_runner(language_model & lm, const std::vector<token_id> & prompt,
                                               const sampling_params & params, const completion_end & ends,
                                               int32_t prompt_seq, std::vector<int32_t> seqs,
                                               engine::acceptance_variant variant, chain_progress report) {
    const bool    best_of_n = params.method == method::best_of_n;
    const int32_t n_chains  = params.n_chains * (best_of_n ? params.best_of : 1);
    auto chains = std::make_unique<mh_runner>(lm, prompt, params, ends, prompt_seq, std::move(seqs), n_chains, variant,
                                              std::move(report));
    if (!best_of_n) return chains;
    return std::make_unique<best_of_n_runner>(std::move(chains), params.best_of);
}

}  // namespace powersample
