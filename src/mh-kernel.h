// The Metropolis-Hastings acceptance ratio of power sampling: one definition, used by the batching
// engine (in-process model) and by the remote driver (a server generating whole suffixes).
// ref: arXiv 2510.14901, Alg. 1, made exact as in docs/algorithm.md.
#pragma once

#include <cmath>
#include <cstddef>

namespace powersample {

// log A = sum_{i>=m} w'_i - sum_{i>=m} w_i + log q_cut(m | x') - log q_cut(m | x),
// w_i = alpha log p_i - log q_i. The sums run over each sequence's whole suffix from m, whatever
// its length; the last term corrects for a cut distribution that depends on the state.
inline double log_acceptance_ratio(double suffix_weight_current, double suffix_weight_proposal,
                                   double log_cut_correction) {
    return suffix_weight_proposal - suffix_weight_current + log_cut_correction;
}

// The cut term for m drawn uniformly over the completion: log len(x) - log len(x').
inline double uniform_cut_correction(size_t len_current, size_t len_proposal) {
    return std::log(double(len_current)) - std::log(double(len_proposal));
}

}  // namespace powersample
