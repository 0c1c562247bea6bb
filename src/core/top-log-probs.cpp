// The most likely tokens at each position of a finished sample (engine::request::n_top_log_p),
// found by decoding the prompt and the sample again. The chains keep only the log p of the
// tokens they drew; storing every position's alternatives while sampling would cost a sort per
// drawn token in every proposal, almost all of them rejected. One pass over the one sample
// that is returned costs a prefill, batched with whatever else the engine decodes.
#include "core/request-runner.h"
#include "core/token-sampler.h"

#include <algorithm>
#include <cmath>

namespace powersample {

namespace {

// The n most likely tokens of the softmax of `logits`, most likely first, ties by lower id.
std::vector<token_alternative> top_tokens(const float * logits, int32_t n_vocab, int32_t n) {
    const double log_z = log_sum_exp_scaled(logits, n_vocab, 1.0);

    std::vector<token_id> ids(static_cast<size_t>(n_vocab));
    for (int32_t v = 0; v < n_vocab; ++v) ids[size_t(v)] = v;
    const auto more_likely = [&](token_id a, token_id b) {
        return logits[a] != logits[b] ? logits[a] > logits[b] : a < b;
    };
    const size_t k = size_t(std::min(n, n_vocab));
    std::partial_sort(ids.begin(), ids.begin() + std::ptrdiff_t(k), ids.end(), more_likely);
    std::vector<token_alternative> out;
    out.reserve(k);
    for (size_t i = 0; i < k; ++i) out.push_back({ ids[i], double(logits[ids[i]]) - log_z });
    return out;
}

class top_log_p_runner : public request_runner {
public:
    top_log_p_runner(language_model & lm, const std::vector<token_id> & prompt, std::vector<sample_result> samples,
                     int32_t n_top, std::vector<int32_t> seqs, int32_t chunk)
        : lm_(lm),
          prompt_(prompt),
          samples_(std::move(samples)),
          n_top_(n_top),
          chunk_(std::max(1, chunk)),
          seq_prompt_(seqs.at(0)),
          seq_work_(seqs.at(1)) {
        for (auto & s : samples_) s.top_log_p.clear();
        skip_empty();
    }

    void collect(std::vector<decode_entry> & entries) override {
        if (!prompt_ready_) {
            // Round one: the prompt without its last token, shared by every chain's pass.
            for (size_t i = 0; i + 1 < prompt_.size(); ++i) entries.push_back({ seq_prompt_, prompt_[i], false });
            collected_ = 0;
            return;
        }
        const auto & x = samples_[chain_].tokens;
        if (next_ == 0) {
            lm_.seq_clear(seq_work_);
            lm_.seq_copy_prefix(seq_prompt_, seq_work_, int32_t(prompt_.size()) - 1);
        }
        // The logits after token i - 1 of prompt.back() + x predict x_i.
        const size_t end = std::min(x.size(), next_ + size_t(chunk_));
        samples_[chain_].top_log_p.resize(end);
        for (size_t i = next_; i < end; ++i) {
            entries.push_back({ seq_work_, i == 0 ? prompt_.back() : x[i - 1], true });
        }
        collected_ = end - next_;
    }

    void deliver(int32_t k, const float * logits) override {
        if (!prompt_ready_ || logits == nullptr) return;
        samples_[chain_].top_log_p.at(next_ + size_t(k)) = top_tokens(logits, lm_.n_vocab(), n_top_);
    }

    void end_round() override {
        if (!prompt_ready_) {
            prompt_ready_ = true;
            skip_empty();
            return;
        }
        next_ += collected_;
        if (next_ >= samples_[chain_].tokens.size()) {
            chain_ += 1;
            next_ = 0;
            skip_empty();
        }
    }

    bool done() const override { return chain_ >= samples_.size(); }
    void cancel() override {
        // A chain scored in part gets none: top_log_p is all positions or empty.
        if (chain_ < samples_.size()) samples_[chain_].top_log_p.clear();
        chain_ = samples_.size();
    }
    std::vector<sample_result> take_results() override { return std::move(samples_); }

private:
    // A chain with no tokens has nothing to score.
    void skip_empty() {
        while (chain_ < samples_.size() && samples_[chain_].tokens.empty()) chain_ += 1;
    }

    language_model &           lm_;
    std::vector<token_id>      prompt_;
    std::vector<sample_result> samples_;
    int32_t                    n_top_;
    int32_t                    chunk_;
    int32_t                    seq_prompt_, seq_work_;
    bool                       prompt_ready_ = false;
    size_t                     chain_        = 0;  // the chain being scored
    size_t                     next_         = 0;  // its next position to collect
    size_t                     collected_    = 0;  // entries collected this round
};

}  // namespace

std::unique_ptr<request_runner> make_top_log_p_runner(language_model & lm, const std::vector<token_id> & prompt,
                                                      std::vector<sample_result> samples, int32_t n_top,
                                                      std::vector<int32_t> seqs, int32_t chunk) {
    return std::make_unique<top_log_p_runner>(lm, prompt, std::move(samples), n_top, std::move(seqs), chunk);
}

}  // namespace powersample
