#include "core/methods/mh-chain.h"

#include <algorithm>
#include <cmath>

namespace powersample {

namespace {

// log A = sum_{i>=m} w'_i - sum_{i>=m} w_i + log q_cut(m | x') - log q_cut(m | x),
// w_i = alpha log p_i - log q_i. The sums run over each sequence's whole suffix from m, whatever
// its length; the last term corrects for a cut distribution that depends on the state.
double log_acceptance_ratio(double suffix_weight_current, double suffix_weight_proposal, double log_cut_correction) {
    return suffix_weight_proposal - suffix_weight_current + log_cut_correction;
}

// The cut term for m drawn uniformly over the completion: log len(x) - log len(x').
double uniform_cut_correction(size_t len_current, size_t len_proposal) {
    return std::log(double(len_current)) - std::log(double(len_proposal));
}

}  // namespace

std::vector<double> cut_probabilities(const std::vector<double> & H, double beta, double floor) {
    const size_t        n = H.size();
    std::vector<double> g(n);
    double              total = 0.0;
    for (size_t i = 0; i < n; ++i) {
        const double rise = std::max(0.0, H[i] - (i == 0 ? 0.0 : H[i - 1]));
        g[i]              = std::pow(rise, beta);
        total += g[i];
    }
    for (size_t i = 0; i < n; ++i) {
        const double entropy_part = total > 0.0 ? g[i] / total : 1.0 / double(n);
        g[i]                      = (1.0 - floor) * entropy_part + floor / double(n);
    }
    return g;
}

mh_chain::mh_chain(const sampling_params & params, uint64_t chain_index)
    : alpha_(params.alpha),
      entropy_cuts_(params.method == method::power_entropy),
      entropy_beta_(params.entropy_beta),
      entropy_floor_(params.entropy_floor),
      early_rejection_(early_rejection_applies(params)),
      record_trace_(params.record_trace),
      record_suffixes_(params.record_suffixes),
      kernel_rng_(params.seed, chain_index, 1) {}

double mh_chain::log_p() const {
    double s = 0.0;
    for (double lp : x_log_p_) s += lp;
    return s;
}

void mh_chain::extend(token_id token, double log_p, double log_q, double entropy) {
    x_.push_back(token);
    x_log_p_.push_back(log_p);
    x_weight_.push_back(alpha_ * log_p - log_q);
    x_entropy_.push_back(entropy);
}

int32_t mh_chain::begin_step() {
    if (entropy_cuts_) {
        const auto   q_cut = cut_probabilities(x_entropy_, entropy_beta_, entropy_floor_);
        const double u     = kernel_rng_.uniform_open01();
        double       cum   = 0.0;
        m_                 = int32_t(q_cut.size()) - 1;
        for (size_t i = 0; i < q_cut.size(); ++i) {
            cum += q_cut[i];
            if (u < cum) {
                m_ = int32_t(i);
                break;
            }
        }
        log_cut_forward_ = std::log(q_cut[size_t(m_)]);
    } else {
        m_               = int32_t(kernel_rng_.uniform_below(uint32_t(x_.size())));
        log_cut_forward_ = -std::log(double(x_.size()));
    }
    // The accept uniform comes right after m from the same stream, in the same order as if it
    // were drawn at the step's end: decisions do not depend on early rejection.
    log_u_                 = std::log(kernel_rng_.uniform_open01());
    suffix_weight_current_ = 0.0;
    for (size_t i = size_t(m_); i < x_.size(); ++i) suffix_weight_current_ += x_weight_[i];
    proposal_weight_so_far_ = 0.0;
    y_.clear();
    y_log_p_.clear();
    y_weight_.clear();
    y_entropy_.clear();
    return m_;
}

void mh_chain::propose(token_id token, double log_p, double log_q, double entropy) {
    const double weight = alpha_ * log_p - log_q;
    y_.push_back(token);
    y_log_p_.push_back(log_p);
    y_weight_.push_back(weight);
    y_entropy_.push_back(entropy);
    proposal_weight_so_far_ += weight;
}

// An upper bound on the final log A of the proposal under way that never rises with more
// tokens: the remaining w' are <= 0 and len(x') >= m + k. For entropy-guided cuts the reverse
// cut probability is <= 1, so its log is bounded by 0.
double mh_chain::early_rejection_bound(int32_t target_len) const {
    const double partial = proposal_weight_so_far_ - suffix_weight_current_;
    if (entropy_cuts_) return partial - log_cut_forward_;
    const size_t shortest = variant_ == engine::acceptance_variant::early_bound_assuming_full_length
                                ? size_t(target_len)
                                : size_t(m_) + y_.size();
    return partial + uniform_cut_correction(x_.size(), shortest);
}

bool mh_chain::cannot_be_accepted(int32_t target_len) const {
    if (!early_rejection_) return false;
    // Rounding can make a w_i a few ulps positive where it is log sum p^alpha ~ 0 (one token
    // holds all the mass): allow 1e-9 per token still to come.
    const double margin = 1e-9 * double(target_len - m_ - int32_t(y_.size()) + 1);
    return early_rejection_bound(target_len) + margin < log_u_;
}

bool mh_chain::end_step(int32_t block, int32_t target_len, bool stopped_early) {
    const size_t m      = size_t(m_);
    double       lp_cur = 0.0, lp_prop = 0.0, w_cur = 0.0, w_prop = 0.0;
    for (size_t i = m; i < x_.size(); ++i) {
        w_cur += x_weight_[i];
        lp_cur += x_log_p_[i];
    }
    for (size_t i = 0; i < y_.size(); ++i) {
        w_prop += y_weight_[i];
        lp_prop += y_log_p_[i];
    }

    double log_accept = 0.0;
    bool   accepted   = false;
    if (stopped_early) {
        log_accept = early_rejection_bound(target_len);
        result_.n_early_rejections += 1;
        result_.n_tokens_saved += std::max<int64_t>(0, int64_t(target_len) - m_ - int64_t(y_.size()));
    } else {
        // log q_cut(m | x') - log q_cut(m | x): the reverse over the forward cut probability. For
        // uniform cuts this is log len(x) - log len(x'), as the choice depends on the length.
        double cut_correction = uniform_cut_correction(x_.size(), m + y_.size());
        if (entropy_cuts_) {
            std::vector<double> h_prop(x_entropy_.begin(), x_entropy_.begin() + std::ptrdiff_t(m));
            h_prop.insert(h_prop.end(), y_entropy_.begin(), y_entropy_.end());
            const auto q_cut_prop = cut_probabilities(h_prop, entropy_beta_, entropy_floor_);
            cut_correction        = std::log(q_cut_prop[m]) - log_cut_forward_;
        }
        using variant = engine::acceptance_variant;
        switch (variant_) {
            case variant::exact:
            case variant::without_bridging_term:             // concerns Power-SMC only
            case variant::early_bound_assuming_full_length:  // concerns the bound only
            case variant::stop_in_last_token_only:           // concerns where chains end
                log_accept = log_acceptance_ratio(w_cur, w_prop, cut_correction);
                break;
            case variant::without_proposal_terms: log_accept = alpha_ * (lp_prop - lp_cur) + cut_correction; break;
            case variant::without_length_correction: log_accept = w_prop - w_cur; break;
            case variant::without_reverse_cut: log_accept = w_prop - w_cur - log_cut_forward_; break;
        }
        accepted = log_u_ < log_accept;
    }

    step_record rec;
    if (record_trace_) {
        rec.block                 = block;
        rec.position              = m_;
        rec.len_current           = int32_t(x_.size());
        rec.len_proposal          = int32_t(m + y_.size());
        rec.log_accept_ratio      = log_accept;
        rec.accepted              = accepted;
        rec.n_tokens_proposed     = int32_t(y_.size());
        rec.stopped_early         = stopped_early;
        rec.log_p_suffix_current  = lp_cur;
        rec.log_p_suffix_proposal = lp_prop;
        if (record_suffixes_) {
            rec.suffix_current.assign(x_.begin() + std::ptrdiff_t(m), x_.end());
            rec.suffix_proposal = y_;
        }
    }
    result_.n_proposals += 1;
    if (accepted) {
        result_.n_accepted += 1;
        x_.resize(m);
        x_log_p_.resize(m);
        x_weight_.resize(m);
        x_entropy_.resize(m);
        x_.insert(x_.end(), y_.begin(), y_.end());
        x_log_p_.insert(x_log_p_.end(), y_log_p_.begin(), y_log_p_.end());
        x_weight_.insert(x_weight_.end(), y_weight_.begin(), y_weight_.end());
        x_entropy_.insert(x_entropy_.end(), y_entropy_.begin(), y_entropy_.end());
    }
    if (record_trace_) {
        rec.log_p_after = log_p();
        result_.trace.push_back(std::move(rec));
    }
    return accepted;
}

}  // namespace powersample
