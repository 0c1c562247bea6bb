// The Metropolis-Hastings acceptance ratio of power sampling: one definition, used by the batching
// engine (in-process model) and by the remote driver (a server generating whole suffixes).
// ref: arXiv 2510.14901, Alg. 1, made exact as in docs/algorithm.md.
#pragma once

#include <cmath>
#include <cstddef>

namespace powersample {

// log A = sum_{i>=m} w'_i - sum_{i>=m} w_i + log len(x) - log len(x'),  w_i = alpha log p_i - log q_i.
// The sums run over each sequence's whole suffix from m, whatever its length; the length term
// corrects for drawing m uniformly over a length that depends on the state.
inline double log_acceptance_ratio(double suffix_weight_current, double suffix_weight_proposal,
                                   size_t len_current, size_t len_proposal) {
    return suffix_weight_proposal - suffix_weight_current + std::log(double(len_current)) -
           std::log(double(len_proposal));
}

}  // namespace powersample
