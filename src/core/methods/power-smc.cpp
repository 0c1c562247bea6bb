// Power-SMC (ref: arXiv 2602.10273): sequential Monte Carlo for pi(x) ∝ p(x)^alpha.
//
// Each chain is one independent SMC run of N particles that grow in lockstep, one token per
// round. Token t is drawn from the model at temperature 1/alpha_t, alpha_t = 1 + (alpha - 1) *
// min(1, (t + 1) / R), so the intermediate targets are gamma_t(x_<=t) = p(x_<=t)^alpha_t. The
// incremental log-weight of token t is then
//     (alpha_t - alpha_{t-1}) * log p(x_<t)                       (bridging the ramp)
//   + logsumexp(alpha_t * l_t) - alpha_t * logsumexp(l_t)          (= alpha_t log p - log q)
// A particle that drew EOG or completed a stop string is complete: it takes no more tokens, only
// the bridging term, so the final weights target p(x)^alpha over completions of any length. Every
// resample_interval tokens the effective sample size is checked; below ess_threshold * N the
// particles are resampled systematically and their KV sequences reordered by ancestor
// (seq_copy_prefix into a second set of ids: a copy of each stream, since every sequence has a KV
// stream of its own; docs/algorithm.md, "KV cache"). The answer is
// one particle drawn in proportion to the final weights.
#include "core/request-runner.h"
#include "core/token-sampler.h"

#include <algorithm>
#include <cmath>

namespace powersample {

namespace {

struct particle {
    int32_t               seq = -1;
    std::vector<token_id> tokens;
    std::vector<double>   token_log_p;
    double                log_p      = 0.0;  // log p(tokens | prompt)
    double                log_weight = 0.0;
    bool                  complete   = false;  // ended with EOG or a stop string
    completion_end_hit    end;                 // how it ended, when complete
    token_id              pending = 0;         // decoded next: the last token of prompt + tokens
};

struct smc_chain {
    std::vector<particle> particles;
    std::vector<int32_t>  spare_seqs;    // the other half of the chain's ids, for reordering
    random_stream         token_rng;     // token draws
    random_stream         resample_rng;  // resampling and the final draw
    int32_t               t    = 0;      // tokens drawn per live particle so far
    bool                  done = false;
    sample_result         result;
};

class power_smc_runner : public request_runner {
public:
    power_smc_runner(language_model & lm, const std::vector<token_id> & prompt, const sampling_params & params,
                     const completion_end & ends, std::vector<int32_t> seqs, bool with_bridging)
        : lm_(lm), params_(params), ends_(ends), with_bridging_(with_bridging) {
        const int32_t P = int32_t(prompt.size());
        const int32_t N = params.n_particles;
        chains_.resize(size_t(params.n_chains));
        for (int32_t c = 0; c < params.n_chains; ++c) {
            smc_chain & ch    = chains_[size_t(c)];
            ch.token_rng      = random_stream(params.seed, uint64_t(c), 0);
            ch.resample_rng   = random_stream(params.seed, uint64_t(c), 1);
            const size_t base = 1 + size_t(c) * 2 * size_t(N);
            ch.particles.resize(size_t(N));
            for (int32_t i = 0; i < N; ++i) {
                particle & pt = ch.particles[size_t(i)];
                pt.seq        = seqs[base + size_t(i)];
                pt.pending    = prompt.back();
                lm_.seq_copy_prefix(seqs[0], pt.seq, P - 1);
                ch.spare_seqs.push_back(seqs[base + size_t(N + i)]);
            }
        }
    }

    void collect(std::vector<decode_entry> & entries) override {
        round_.clear();
        for (size_t c = 0; c < chains_.size(); ++c) {
            smc_chain & ch = chains_[c];
            if (ch.done) continue;
            for (size_t i = 0; i < ch.particles.size(); ++i) {
                particle & pt = ch.particles[i];
                if (pt.complete) continue;
                entries.push_back({ pt.seq, pt.pending, true });
                round_.emplace_back(c, i);
                ch.result.n_tokens_decoded += 1;
            }
        }
    }

    void deliver(int32_t k, const float * logits) override {
        smc_chain &     ch  = chains_[round_[size_t(k)].first];
        particle &      pt  = ch.particles[round_[size_t(k)].second];
        const double    a_t = alpha_at(ch.t);
        proposal_config q;
        q.inv_temperature  = a_t;
        const token_draw d = draw_token(logits, lm_.n_vocab(), q, ch.token_rng, scratch_);
        ch.result.n_tokens_generated += 1;
        pt.log_weight += bridging(ch.t, pt.log_p) + (a_t * d.log_p - d.log_q);
        pt.tokens.push_back(d.token);
        pt.token_log_p.push_back(d.log_p);
        pt.log_p += d.log_p;
        pt.pending = d.token;
        pt.end     = ends_.at({ span_of(pt.tokens) });
        if (pt.end.kind != completion_end_kind::none) pt.complete = true;
    }

    void end_round() override {
        for (auto & ch : chains_) {
            if (ch.done) continue;
            // Complete particles took no token this round: they only follow the ramp.
            for (auto & pt : ch.particles) {
                if (pt.complete && int32_t(pt.tokens.size()) < ch.t + 1) pt.log_weight += bridging(ch.t, pt.log_p);
            }
            ch.t += 1;
            const bool all_complete =
                std::all_of(ch.particles.begin(), ch.particles.end(), [](const particle & p) { return p.complete; });
            if (all_complete || ch.t >= params_.max_new_tokens) {
                finish(ch, finish_reason::length);
            } else if (ch.t % params_.resample_interval == 0) {
                maybe_resample(ch);
            }
        }
    }

    bool done() const override {
        return std::all_of(chains_.begin(), chains_.end(), [](const smc_chain & c) { return c.done; });
    }

    void cancel() override {
        for (auto & ch : chains_) {
            if (!ch.done) finish(ch, finish_reason::cancelled);
        }
    }

    std::vector<sample_result> take_results() override {
        std::vector<sample_result> out;
        for (auto & ch : chains_) out.push_back(std::move(ch.result));
        return out;
    }

private:
    // alpha_t of token t (0-based): rises linearly from 1 and reaches alpha at token R - 1.
    double alpha_at(int32_t t) const {
        if (t < 0) return 1.0;
        const int32_t R = params_.alpha_ramp_tokens;
        if (R == 0) return params_.alpha;
        return 1.0 + (params_.alpha - 1.0) * std::min(1.0, double(t + 1) / double(R));
    }

    // gamma_t / gamma_{t-1} beyond the new token: p(x_<t)^(alpha_t - alpha_{t-1}). Before the
    // first token the target is the constant 1, so t = 0 has no bridging.
    double bridging(int32_t t, double log_p_before) const {
        if (!with_bridging_ || t == 0) return 0.0;
        return (alpha_at(t) - alpha_at(t - 1)) * log_p_before;
    }

    void maybe_resample(smc_chain & ch) {
        const size_t        N = ch.particles.size();
        std::vector<double> lw;
        for (const auto & pt : ch.particles) lw.push_back(pt.log_weight);
        const double        lz     = log_sum_exp(lw);
        double              sum_sq = 0.0;
        std::vector<double> w(N);
        for (size_t i = 0; i < N; ++i) {
            w[i] = std::exp(lw[i] - lz);
            sum_sq += w[i] * w[i];
        }
        const double ess = 1.0 / sum_sq;
        if (ess >= params_.ess_threshold * double(N)) return;

        // Systematic resampling: one uniform, N evenly spaced points through the weights' CDF.
        std::vector<size_t> ancestor(N);
        const double        u0  = ch.resample_rng.uniform_open01() / double(N);
        double              cum = w[0];
        size_t              j   = 0;
        for (size_t i = 0; i < N; ++i) {
            const double u = u0 + double(i) / double(N);
            while (u > cum && j + 1 < N) cum += w[++j];
            ancestor[i] = j;
        }
        std::vector<particle> next(N);
        for (size_t i = 0; i < N; ++i) {
            const particle & a = ch.particles[ancestor[i]];
            next[i]            = a;
            next[i].seq        = ch.spare_seqs[i];
            next[i].log_weight = 0.0;
            lm_.seq_copy_prefix(a.seq, next[i].seq, lm_.seq_length(a.seq));
        }
        for (size_t i = 0; i < N; ++i) {
            ch.spare_seqs[i] = ch.particles[i].seq;
            lm_.seq_clear(ch.spare_seqs[i]);
        }
        ch.particles = std::move(next);
        ch.result.n_resamples += 1;
    }

    void finish(smc_chain & ch, finish_reason why) {
        // If the ramp has not reached alpha by the end, bridge the rest of the way so that the
        // final weights target p^alpha exactly.
        const double        reached = alpha_at(ch.t - 1);
        std::vector<double> lw;
        for (auto & pt : ch.particles) {
            if (with_bridging_) pt.log_weight += (params_.alpha - reached) * pt.log_p;
            lw.push_back(pt.log_weight);
        }
        const double lz   = log_sum_exp(lw);
        const double u    = ch.resample_rng.uniform_open01();
        double       cum  = 0.0;
        size_t       pick = lw.size() - 1;
        for (size_t i = 0; i < lw.size(); ++i) {
            cum += std::exp(lw[i] - lz);
            if (u < cum) {
                pick = i;
                break;
            }
        }
        const particle & best = ch.particles[pick];
        sample_result &  res  = ch.result;
        res.tokens            = best.tokens;
        res.token_log_p       = best.token_log_p;
        res.log_p             = best.log_p;
        res.finish            = why == finish_reason::cancelled ? why
                                : best.complete                 ? finish_of(best.end)
                                                                : finish_reason::length;
        if (best.complete && best.end.kind == completion_end_kind::stop) {
            res.stop = ends_.stops()[size_t(best.end.stop_index)];
        }
        for (auto & pt : ch.particles) lm_.seq_clear(pt.seq);
        ch.done = true;
    }

    language_model &                       lm_;
    sampling_params                        params_;
    const completion_end &                 ends_;
    bool                                   with_bridging_;
    std::vector<smc_chain>                 chains_;
    std::vector<std::pair<size_t, size_t>> round_;  // (chain, particle) of each collected entry
    draw_scratch                           scratch_;
};

}  // namespace

std::unique_ptr<request_runner> make_power_smc_runner(language_model & lm, const std::vector<token_id> & prompt,
                                                      const sampling_params & params, const completion_end & ends,
                                                      std::vector<int32_t> seqs, bool with_bridging) {
    return std::make_unique<power_smc_runner>(lm, prompt, params, ends, std::move(seqs), with_bridging);
}

}  // namespace powersample
