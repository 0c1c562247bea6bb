// The statistics of the reports.
#pragma once

#include <cstdint>

namespace powersample::eval {

// Unbiased pass@k estimator 1 - C(n-c, k)/C(n, k), computed as a product for stability.
// Throws std::invalid_argument unless 0 <= c <= n and 1 <= k <= n.
double pass_at_k(std::uint64_t n, std::uint64_t c, std::uint64_t k);

struct interval {
    double lower = 0;
    double upper = 0;
};

// Wilson score interval for a binomial proportion; z = 1.96 gives 95%. n == 0 gives [0, 1].
interval wilson_interval(std::uint64_t successes, std::uint64_t n, double z = 1.96);

}  // namespace powersample::eval
