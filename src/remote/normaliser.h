// log q of a token drawn at temperature t when the server returns log p (temperature 1) for the
// sampled token and its top-K alternatives only: the normaliser sum_v p(v)^(1/t) is estimated from
// those, with a bound on the error. Both remote clients (llama-server, vLLM) call it, so the
// approximation and its bound have one definition. docs/remote.md explains it.
#pragma once

#include "powersample/language-model.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <vector>

namespace powersample {

struct top_logprob {
    token_id id;
    double   logprob;  // log p(id | context), temperature 1
};

struct estimated_log_q {
    double log_q     = 0.0;
    bool   exact     = true;  // the normaliser is exact, or within negligible_log_q_error
    double max_error = 0.0;   // bound on |estimated - true log q| (nats); 0 when exact
};

// Below this bound (nats) the estimate counts as exact: the top-K held all the probability mass
// but for rounding (a server that returns the whole vocabulary).
constexpr double negligible_log_q_error = 1e-9;

// log q(v) = log p(v) / t - logsumexp_u(log p(u) / t), the sum over the returned entries and the
// sampled token: a lower bound of the full sum. `top` holds at least the n_top most likely tokens
// (a server may add the sampled token as one more entry); n_vocab is the vocabulary size, 0 when
// the server does not report it. `top` must not be empty.
inline estimated_log_q log_q_from_top_k(token_id sampled, double sampled_log_p, const std::vector<top_logprob> & top,
                                        int32_t n_top, double temperature, int32_t n_vocab) {
    const double        inv_t = 1.0 / temperature;
    std::vector<double> terms, top_log_p;
    bool                has_sampled = false;
    double              kept_mass   = 0.0;
    for (const top_logprob & t : top) {
        terms.push_back(t.logprob * inv_t);
        top_log_p.push_back(t.logprob);
        kept_mass += std::exp(t.logprob);
        if (t.id == sampled) has_sampled = true;
    }
    if (!has_sampled) {
        terms.push_back(sampled_log_p * inv_t);
        kept_mass += std::exp(sampled_log_p);
    }
    const double mx  = *std::max_element(terms.begin(), terms.end());
    double       sum = 0.0;
    for (double v : terms) sum += std::exp(v - mx);

    estimated_log_q out;
    out.log_q                = sampled_log_p * inv_t - (mx + std::log(sum));
    const int64_t n_distinct = int64_t(top.size()) + (has_sampled ? 0 : 1);
    if (n_vocab > 0 && n_distinct >= n_vocab) return out;

    // The missing mass R = 1 - kept_mass sits on tokens outside the top n_top, each with
    // p <= p_K (the n_top-th largest returned), so for t <= 1 their share of sum_v p(v)^(1/t) is at
    // most R * p_K^(1/t - 1); log q is then off by at most log(1 + that / kept sum). For t > 1
    // there is no such bound without the vocabulary size: infinity, unless nothing is missing.
    std::sort(top_log_p.begin(), top_log_p.end(), std::greater<double>());
    const double log_p_k = top_log_p[size_t(std::min<int64_t>(n_top, int64_t(top_log_p.size())) - 1)];
    const double missing = std::max(0.0, 1.0 - kept_mass);
    double       bound   = 0.0;
    if (missing > 0.0 && inv_t >= 1.0) {
        // In log space: the kept sum can underflow at low temperature.
        bound = std::log1p(std::exp(std::log(missing) + (inv_t - 1.0) * log_p_k - (mx + std::log(sum))));
    } else if (missing > 0.0) {
        bound = INFINITY;
    }
    if (bound > negligible_log_q_error) {
        out.exact     = false;
        out.max_error = bound;
    }
    return out;
}

}  // namespace powersample
