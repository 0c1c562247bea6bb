#include "core/token-sampler.h"

#include <algorithm>
#include <cmath>

namespace powersample {

uint64_t mix_seed(uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

random_stream::random_stream(uint64_t seed, uint64_t stream_a, uint64_t stream_b)
    : engine_(mix_seed(mix_seed(mix_seed(seed) ^ stream_a) ^ stream_b)) {}

double random_stream::uniform_open01() {
    // 53 random bits, shifted by half a step: (k + 0.5) / 2^53 lies strictly inside (0, 1).
    return (double(engine_() >> 11) + 0.5) * 0x1.0p-53;
}

uint32_t random_stream::uniform_below(uint32_t n) {
    // Rejection sampling on the top of the 64-bit range removes modulo bias.
    const uint64_t limit = UINT64_MAX - (UINT64_MAX % n);
    uint64_t       x;
    do {
        x = engine_();
    } while (x >= limit);
    return uint32_t(x % n);
}

namespace {

float max_logit(const float * logits, int32_t n_vocab) {
    float mx = logits[0];
    for (int32_t v = 1; v < n_vocab; ++v) {
        mx = std::max(mx, logits[v]);
    }
    return mx;
}

// exp(d * inv_t) for d <= 0. For integer inverse temperatures (alpha = 2, 4, ... with the default
// proposal) the power of exp(d), already computed for p, replaces a second exp().
struct tempered_exp {
    double inv_t;
    int    int_power;  // 0 when inv_t is not a small positive integer

    explicit tempered_exp(double inv_temperature) : inv_t(inv_temperature), int_power(0) {
        const double r = std::round(inv_t);
        if (r == inv_t && r >= 1 && r <= 8) {
            int_power = int(r);
        }
    }
    double operator()(double d, double exp_d) const {
        if (int_power == 0) {
            return std::exp(d * inv_t);
        }
        double r = exp_d;
        for (int i = 1; i < int_power; ++i) {
            r *= exp_d;
        }
        return r;
    }
};

// Inverse-CDF draw over weights[idx[0..n)]; total is their sum.
int32_t draw_index(const double * weights, const int32_t * idx, int32_t n, double total, random_stream & rng) {
    const double target        = rng.uniform_open01() * total;
    double       cum           = 0.0;
    int32_t      last_positive = -1;
    for (int32_t i = 0; i < n; ++i) {
        const int32_t v = idx ? idx[i] : i;
        if (weights[v] <= 0.0) {
            continue;
        }
        cum += weights[v];
        last_positive = v;
        if (target < cum) {
            return v;
        }
    }
    // Rounding can leave target a hair above the final sum: the last token with mass takes it.
    return last_positive;
}

}  // namespace

double token_log_prob(const float * logits, int32_t n_vocab, token_id token) {
    const double mx  = max_logit(logits, n_vocab);
    double       sum = 0.0;
    for (int32_t v = 0; v < n_vocab; ++v) {
        sum += std::exp(double(logits[v]) - mx);
    }
    return (double(logits[token]) - mx) - std::log(sum);
}

token_draw draw_token(const float * logits, int32_t n_vocab, const proposal_config & config, random_stream & rng,
                      draw_scratch & scratch) {
    const double mx = max_logit(logits, n_vocab);

    if (config.greedy) {
        int32_t best  = 0;
        double  sum_p = 0.0, sum_pd = 0.0;
        for (int32_t v = 0; v < n_vocab; ++v) {
            const double d = double(logits[v]) - mx;
            const double e = std::exp(d);
            sum_p += e;
            sum_pd += e * d;
            if (logits[v] > logits[best]) {
                best = v;
            }
        }
        const double log_sum_p = std::log(sum_p);
        return { best, (double(logits[best]) - mx) - log_sum_p, 0.0, log_sum_p - sum_pd / sum_p };
    }

    std::vector<double> & w = scratch.weights;
    w.resize(size_t(n_vocab));
    const tempered_exp texp(config.inv_temperature);
    double             sum_p  = 0.0;
    double             sum_pd = 0.0;
    double             sum_q  = 0.0;
    for (int32_t v = 0; v < n_vocab; ++v) {
        const double d = double(logits[v]) - mx;
        const double e = std::exp(d);
        sum_p += e;
        sum_pd += e * d;
        w[v] = texp(d, e);
        sum_q += w[v];
    }
    const double log_sum_p = std::log(sum_p);
    // H(p) = log Z - E_p[l - max], from the same pass.
    const double entropy = log_sum_p - sum_pd / sum_p;

    if (!config.truncated()) {
        const int32_t tok = draw_index(w.data(), nullptr, n_vocab, sum_q, rng);
        const double  d   = double(logits[tok]) - mx;
        return { tok, d - log_sum_p, d * config.inv_temperature - std::log(sum_q), entropy };
    }

    // Truncated proposal: top-k, then top-p, then min-p, each on what the previous kept.
    std::vector<int32_t> & order = scratch.order;
    order.clear();
    auto    by_weight_desc = [&w](int32_t a, int32_t b) { return w[a] > w[b] || (w[a] == w[b] && a < b); };
    int32_t n_kept         = n_vocab;
    if (config.top_k > 0 && config.top_k < n_vocab) {
        order.resize(size_t(n_vocab));
        for (int32_t v = 0; v < n_vocab; ++v) order[v] = v;
        std::partial_sort(order.begin(), order.begin() + config.top_k, order.end(), by_weight_desc);
        n_kept = config.top_k;
        order.resize(size_t(n_kept));
    } else if (config.top_p < 1.0) {
        // Sorting the whole vocabulary per token is slow; tokens below 1e-12 of the maximum can
        // only matter when the nucleus reaches into them, which is checked below.
        for (int32_t v = 0; v < n_vocab; ++v) {
            if (w[v] >= 1e-12) order.push_back(v);
        }
        std::sort(order.begin(), order.end(), by_weight_desc);
        n_kept = int32_t(order.size());
    } else {
        order.resize(size_t(n_vocab));
        for (int32_t v = 0; v < n_vocab; ++v) order[v] = v;
    }

    if (config.top_p < 1.0) {
        double kept_mass = 0.0;
        for (int32_t i = 0; i < n_kept; ++i) kept_mass += w[order[i]];
        if (n_kept < n_vocab && config.top_k <= 0) {
            // Only the pre-filtered candidates are sorted: they must hold the whole nucleus.
            if (kept_mass < config.top_p * sum_q) {
                order.resize(size_t(n_vocab));
                for (int32_t v = 0; v < n_vocab; ++v) order[v] = v;
                std::sort(order.begin(), order.end(), by_weight_desc);
                n_kept = n_vocab;
            }
            kept_mass = sum_q;
        }
        const double threshold = config.top_p * kept_mass;
        double       cum       = 0.0;
        int32_t      i         = 0;
        for (; i < n_kept; ++i) {
            cum += w[order[i]];
            if (cum >= threshold) {
                ++i;
                break;
            }
        }
        n_kept = std::max<int32_t>(1, std::min(i, n_kept));
    }

    if (config.min_p > 0.0) {
        double top = 0.0;
        for (int32_t i = 0; i < n_kept; ++i) top = std::max(top, w[order[i]]);
        const double floor_w = config.min_p * top;
        int32_t      j       = 0;
        for (int32_t i = 0; i < n_kept; ++i) {
            if (w[order[i]] >= floor_w) order[j++] = order[i];
        }
        n_kept = j;
    }

    double kept_sum = 0.0;
    for (int32_t i = 0; i < n_kept; ++i) kept_sum += w[order[i]];
    const int32_t tok = draw_index(w.data(), order.data(), n_kept, kept_sum, rng);
    const double  d   = double(logits[tok]) - mx;
    return { tok, d - log_sum_p, std::log(w[tok]) - std::log(kept_sum), entropy };
}

double log_sum_exp(const double * v, size_t n) {
    double mx = -INFINITY;
    for (size_t i = 0; i < n; ++i) mx = std::max(mx, v[i]);
    if (!std::isfinite(mx)) return mx;
    double s = 0.0;
    for (size_t i = 0; i < n; ++i) s += std::exp(v[i] - mx);
    return mx + std::log(s);
}

double log_sum_exp_scaled(const float * logits, int32_t n_vocab, double scale) {
    const double mx  = max_logit(logits, n_vocab);
    double       sum = 0.0;
    for (int32_t v = 0; v < n_vocab; ++v) {
        sum += std::exp(scale * (double(logits[v]) - mx));
    }
    return scale * mx + std::log(sum);
}

}  // namespace powersample
