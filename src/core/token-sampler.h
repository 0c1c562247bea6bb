// Drawing one token from a logits row, with the log-probabilities the MH ratio needs.
#pragma once

#include "powersample/language-model.h"

#include <cstdint>
#include <random>
#include <vector>

namespace powersample {

// Deterministic random streams. std::mt19937_64's output is fixed by the standard; the
// conversions to doubles and ranges are written here because the standard library's
// distributions differ between implementations (same seed must mean same tokens everywhere).
class random_stream {
public:
    random_stream() = default;
    random_stream(uint64_t seed, uint64_t stream_a, uint64_t stream_b);

    uint64_t next_u64() { return engine_(); }
    // Uniform in the open interval (0, 1): never 0, so log() is finite.
    double uniform_open01();
    // Uniform integer in [0, n), n >= 1, without modulo bias.
    uint32_t uniform_below(uint32_t n);

private:
    std::mt19937_64 engine_;
};

// splitmix64 finaliser: a well-mixed 64-bit hash, used to derive independent seeds.
uint64_t mix_seed(uint64_t x);

struct proposal_config {
    bool    greedy          = false;
    double  inv_temperature = 1.0;  // 1 / temperature of the proposal
    int32_t top_k           = 0;    // 0 = off
    double  top_p           = 1.0;  // 1 = off
    double  min_p           = 0.0;  // 0 = off
    bool    truncated() const { return top_k > 0 || top_p < 1.0 || min_p > 0.0; }
};

struct token_draw {
    token_id token;
    double   log_p;    // log p(token) under the base model (logits at temperature 1)
    double   log_q;    // log q(token) under the distribution actually sampled from
    double   entropy;  // entropy (nats) of the base model's distribution the token was drawn at
};

// Reusable buffers, so that drawing a token allocates nothing.
struct draw_scratch {
    std::vector<double>  weights;
    std::vector<int32_t> order;
};

// Draws a token from the proposal over `logits` (n_vocab raw logits). All arithmetic in double,
// with max subtraction: log p = l_v - logsumexp(l), log q = l_v / t - logsumexp(l / t) over the
// kept set. Greedy returns the argmax with log q = 0. The entropy is that of p (temperature 1).
token_draw draw_token(const float * logits, int32_t n_vocab, const proposal_config & config, random_stream & rng,
                      draw_scratch & scratch);

// logsumexp(scale * logits) in double with max subtraction: the per-token power-sampling weight
// is log_sum_exp_scaled(l, a) - a * log_sum_exp_scaled(l, 1).
double log_sum_exp_scaled(const float * logits, int32_t n_vocab, double scale);

// logsumexp of n log-space values in double with max subtraction; -inf when all are -inf (or
// n = 0), +inf or NaN passed through. Importance weights (smc) and look-ahead factors (sps).
double        log_sum_exp(const double * v, size_t n);
inline double log_sum_exp(const std::vector<double> & v) { return log_sum_exp(v.data(), v.size()); }

// log p(token) under the base model alone (for scoring).
double token_log_prob(const float * logits, int32_t n_vocab, token_id token);

}  // namespace powersample
