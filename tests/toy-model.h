// An exact toy language model for testing the sampler core: a handful of tokens, conditionals
// fixed by a seeded hash of the whole history, so that pi ∝ p^alpha can be enumerated.
#pragma once

#include "powersample/language-model.h"

#include <cmath>
#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace powersample::testing {

class toy_model : public language_model {
public:
    // n_vocab tokens; the last one is the end-of-generation token. Logits are uniform in
    // [-scale, scale], plus eog_bias for the EOG token.
    toy_model(int32_t n_vocab, uint64_t seed, double scale, double eog_bias, int32_t n_seq = 4096,
              int32_t n_cells = 1 << 22)
        : n_vocab_(n_vocab), seed_(seed), scale_(scale), eog_bias_(eog_bias), seqs_(size_t(n_seq)), n_cells_(n_cells) {}

    int32_t n_vocab() const override { return n_vocab_; }
    bool    is_eog(token_id t) const override { return t == n_vocab_ - 1; }
    // Token text for stop strings: token v is the letter 'a' + v unless set_token_bytes() says
    // otherwise; EOG has none. has_text = false plays a backend without token text.
    bool        has_token_bytes() const override { return has_text; }
    std::string token_bytes(token_id t) const override {
        if (is_eog(t)) return {};
        if (size_t(t) < bytes_.size()) return bytes_[size_t(t)];
        return std::string(1, char('a' + t % 26));
    }
    void set_token_bytes(std::vector<std::string> bytes) { bytes_ = std::move(bytes); }
    // The concatenated bytes of `tokens`: the reference the engine's windowed matching must agree with.
    std::string text_of(const std::vector<token_id> & tokens) const {
        std::string s;
        for (token_id t : tokens) s += token_bytes(t);
        return s;
    }
    bool contains_stop(const std::vector<token_id> & tokens, const std::vector<std::string> & stops) const {
        const std::string s = text_of(tokens);
        for (const auto & stop : stops) {
            if (s.find(stop) != std::string::npos) return true;
        }
        return false;
    }
    int32_t n_seq_max() const override { return int32_t(seqs_.size()); }
    int32_t n_cells() const override { return n_cells_; }
    int32_t seq_length(int32_t seq) const override { return int32_t(seqs_.at(size_t(seq)).size()); }

    void seq_copy_prefix(int32_t src, int32_t dst, int32_t n) override {
        const auto & s = seqs_.at(size_t(src));
        if (n > int32_t(s.size())) throw std::logic_error("toy: copy beyond the source length");
        std::vector<token_id> copy(s.begin(), s.begin() + n);
        seqs_.at(size_t(dst)) = std::move(copy);
        n_copy_calls++;
    }
    void seq_clear(int32_t seq) override { seqs_.at(size_t(seq)).clear(); }

    void decode(const std::vector<decode_entry> & entries) override {
        rows_.assign(entries.size(), {});
        for (size_t e = 0; e < entries.size(); ++e) {
            auto & s = seqs_.at(size_t(entries[e].seq));
            s.push_back(entries[e].token);
            if (entries[e].want_logits) rows_[e] = logits_after(s);
        }
        n_decoded += int64_t(entries.size());
        n_decode_calls++;
    }
    const float * logits(int32_t i) const override { return rows_.at(size_t(i)).data(); }

    // The logits after a full history (prompt + completion so far).
    std::vector<float> logits_after(const std::vector<token_id> & history) const {
        uint64_t h = seed_;
        for (token_id t : history) h = mix(h ^ uint64_t(t + 1));
        std::vector<float> row(static_cast<size_t>(n_vocab_));
        for (int32_t v = 0; v < n_vocab_; ++v) {
            const uint64_t r = mix(h + uint64_t(v) * 0x9e3779b97f4a7c15ULL);
            const double   u = double(r >> 11) * 0x1.0p-53;
            row[size_t(v)]   = float((2.0 * u - 1.0) * scale_ + (is_eog(v) ? eog_bias_ : 0.0));
        }
        return row;
    }

    // log p(v | history) in double.
    std::vector<double> log_probs_after(const std::vector<token_id> & history) const {
        const auto row = logits_after(history);
        double     mx  = row[0];
        for (float l : row) mx = std::max(mx, double(l));
        double s = 0.0;
        for (float l : row) s += std::exp(double(l) - mx);
        std::vector<double> out;
        for (float l : row) out.push_back(double(l) - mx - std::log(s));
        return out;
    }

    // Every completion of `prompt` with at most max_len tokens (ending at the first EOG, at the
    // first token after which its text contains one of `stops`, or at the cap), with its log p
    // under the model.
    std::map<std::vector<token_id>, double> enumerate(const std::vector<token_id> & prompt, int32_t max_len,
                                                      const std::vector<std::string> & stops = {}) const {
        std::map<std::vector<token_id>, double> out;
        std::vector<token_id>                   completion;
        walk(prompt, completion, 0.0, max_len, stops, out);
        return out;
    }

    bool has_text = true;

    int64_t n_decoded      = 0;
    int64_t n_decode_calls = 0;
    int64_t n_copy_calls   = 0;

private:
    static uint64_t mix(uint64_t x) {
        x += 0x9e3779b97f4a7c15ULL;
        x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
        x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
        return x ^ (x >> 31);
    }

    void walk(const std::vector<token_id> & prompt, std::vector<token_id> & completion, double log_p, int32_t max_len,
              const std::vector<std::string> & stops, std::map<std::vector<token_id>, double> & out) const {
        std::vector<token_id> history = prompt;
        history.insert(history.end(), completion.begin(), completion.end());
        const auto lp = log_probs_after(history);
        for (int32_t v = 0; v < n_vocab_; ++v) {
            completion.push_back(v);
            const double next = log_p + lp[size_t(v)];
            if (is_eog(v) || int32_t(completion.size()) == max_len || contains_stop(completion, stops)) {
                out[completion] = next;
            } else {
                walk(prompt, completion, next, max_len, stops, out);
            }
            completion.pop_back();
        }
    }

    int32_t                            n_vocab_;
    uint64_t                           seed_;
    double                             scale_, eog_bias_;
    std::vector<std::vector<token_id>> seqs_;
    int32_t                            n_cells_;
    std::vector<std::vector<float>>    rows_;
    std::vector<std::string>           bytes_;
};

// pi(x) ∝ exp(alpha * log p(x)), normalised.
inline std::map<std::vector<token_id>, double> power_target(const std::map<std::vector<token_id>, double> & log_p,
                                                            double                                          alpha) {
    double mx = -INFINITY;
    for (const auto & kv : log_p) mx = std::max(mx, alpha * kv.second);
    double z = 0.0;
    for (const auto & kv : log_p) z += std::exp(alpha * kv.second - mx);
    std::map<std::vector<token_id>, double> out;
    for (const auto & kv : log_p) out[kv.first] = std::exp(alpha * kv.second - mx) / z;
    return out;
}

// Total-variation distance between two distributions over the same kind of key.
template <typename Key> double total_variation(const std::map<Key, double> & a, const std::map<Key, double> & b) {
    double tv = 0.0;
    for (const auto & kv : a) {
        auto it = b.find(kv.first);
        tv += std::fabs(kv.second - (it == b.end() ? 0.0 : it->second));
    }
    for (const auto & kv : b) {
        if (!a.count(kv.first)) tv += kv.second;
    }
    return 0.5 * tv;
}

}  // namespace powersample::testing
