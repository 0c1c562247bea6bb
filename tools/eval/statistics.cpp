// The statistics of the reports: pass@k and binomial intervals.
#include "statistics.h"

#include <cmath>
#include <stdexcept>

namespace powersample::eval {

double pass_at_k(std::uint64_t n, std::uint64_t c, std::uint64_t k) {
    if (n == 0 || k == 0 || k > n || c > n) {
        throw std::invalid_argument("pass_at_k: need 0 <= c <= n and 1 <= k <= n (n=" + std::to_string(n) +
                                    ", c=" + std::to_string(c) + ", k=" + std::to_string(k) + ")");
    }
    if (n - c < k) {
        return 1.0;
    }
    // C(n-c, k)/C(n, k) = prod_{i=n-c+1}^{n} (1 - k/i); no large binomials are formed.
    double ratio = 1.0;
    for (std::uint64_t i = n - c + 1; i <= n; ++i) {
        ratio *= 1.0 - static_cast<double>(k) / static_cast<double>(i);
    }
    return 1.0 - ratio;
}

interval wilson_interval(std::uint64_t successes, std::uint64_t n, double z) {
    if (successes > n) {
        throw std::invalid_argument("wilson_interval: successes (" + std::to_string(successes) + ") exceed n (" +
                                    std::to_string(n) + ")");
    }
    if (n == 0) {
        return { 0.0, 1.0 };
    }
    const double nn     = static_cast<double>(n);
    const double p      = static_cast<double>(successes) / nn;
    const double z2     = z * z;
    const double denom  = 1.0 + z2 / nn;
    const double center = (p + z2 / (2.0 * nn)) / denom;
    const double half   = z * std::sqrt(p * (1.0 - p) / nn + z2 / (4.0 * nn * nn)) / denom;
    interval     r{ std::max(0.0, center - half), std::min(1.0, center + half) };
    // Rounding can leave tiny non-zero bounds at the extremes; the exact values are 0 and 1.
    if (successes == 0) {
        r.lower = 0.0;
    }
    if (successes == n) {
        r.upper = 1.0;
    }
    return r;
}

}  // namespace powersample::eval
