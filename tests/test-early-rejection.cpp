// Early rejection (sampling_params::early_rejection) changes no decision: the same seeds give the
// same tokens, log p, positions and accept decisions with it on and off, for several alphas,
// block sizes, prompts and both MH methods, with proposals that end in EOG; it decodes fewer
// tokens; a bound that forgets that EOG can end a proposal early is caught by the same comparison.
#include "powersample/engine.h"
#include "toy-model.h"

#include <gtest/gtest.h>

using namespace powersample;
using powersample::testing::toy_model;

namespace {

struct config {
    double                alpha;
    int32_t               block_size;
    int32_t               max_len;
    method                how;
    std::vector<token_id> prompt;
};

std::vector<finished_request> run(toy_model & lm, const config & c, bool early,
                                  engine::acceptance_variant v = engine::acceptance_variant::exact) {
    engine eng(lm);
    eng.set_acceptance_variant_for_testing(v);
    for (uint64_t seed = 0; seed < 8; ++seed) {
        request req;
        req.prompt                   = c.prompt;
        req.params.method            = c.how;
        req.params.alpha             = c.alpha;
        req.params.block_size        = c.block_size;
        req.params.max_new_tokens    = c.max_len;
        req.params.n_steps_per_block = 6;
        req.params.n_chains          = 4;
        req.params.seed              = 77 + seed;
        req.params.early_rejection   = early;
        eng.submit(req);
    }
    auto out = eng.run_all();
    std::sort(out.begin(), out.end(), [](const auto & a, const auto & b) { return a.id < b.id; });
    return out;
}

struct comparison {
    size_t  differing_chains = 0;
    int64_t tokens_on = 0, tokens_off = 0;
    int64_t early_stops    = 0;
    int64_t claimed_saving = 0;  // sum of sample_result::n_tokens_saved with early rejection on
};

comparison compare(const std::vector<finished_request> & on, const std::vector<finished_request> & off) {
    comparison c;
    EXPECT_EQ(on.size(), off.size());
    for (size_t r = 0; r < on.size(); ++r) {
        for (size_t k = 0; k < on[r].result.chains.size(); ++k) {
            const auto & a    = on[r].result.chains[k];
            const auto & b    = off[r].result.chains[k];
            bool         same = a.tokens == b.tokens && a.token_log_p == b.token_log_p && a.log_p == b.log_p &&
                        a.n_proposals == b.n_proposals && a.n_accepted == b.n_accepted && a.finish == b.finish &&
                        a.trace.size() == b.trace.size();
            for (size_t i = 0; same && i < a.trace.size(); ++i) {
                same = a.trace[i].position == b.trace[i].position && a.trace[i].accepted == b.trace[i].accepted &&
                       a.trace[i].log_p_after == b.trace[i].log_p_after;
            }
            c.differing_chains += same ? 0 : 1;
            c.tokens_on += a.n_tokens_generated;
            c.tokens_off += b.n_tokens_generated;
            c.early_stops += a.n_early_rejections;
            c.claimed_saving += a.n_tokens_saved;
            EXPECT_EQ(b.n_early_rejections, 0);
            EXPECT_EQ(b.n_tokens_saved, 0);
            // What the off run decoded beyond the on run is the stopped proposals' rest, which the
            // count takes to the block's target: equal unless one would have met EOG before.
            EXPECT_LE(b.n_tokens_generated - a.n_tokens_generated, a.n_tokens_saved);
            EXPECT_EQ(a.n_tokens_saved > 0, a.n_early_rejections > 0);
        }
    }
    return c;
}

}  // namespace

TEST(early_rejection, identical_chains_with_fewer_tokens) {
    // EOG bias 0.5: many proposals end early in EOG, so lengths (and the length term) vary.
    toy_model lm(6, 11, 1.5, 0.5);
    int64_t   saved = 0, total = 0, stops = 0;
    for (const method how : { method::power, method::power_entropy }) {
        for (const double alpha : { 1.0, 2.0, 4.0, 8.0 }) {
            for (const int32_t block : { 2, 5, 12 }) {
                for (const auto & prompt : { std::vector<token_id>{ 0 }, std::vector<token_id>{ 3, 1, 2 } }) {
                    const config c{ alpha, block, 12, how, prompt };
                    const auto   r = compare(run(lm, c, true), run(lm, c, false));
                    EXPECT_EQ(r.differing_chains, 0u) << method_name(how) << " alpha " << alpha << " B " << block;
                    EXPECT_LE(r.tokens_on, r.tokens_off);
                    saved += r.tokens_off - r.tokens_on;
                    total += r.tokens_off;
                    stops += r.early_stops;
                    // With EOG likely the count bounds the measured saving (next test: equal).
                    EXPECT_GE(r.claimed_saving, r.tokens_off - r.tokens_on);
                }
            }
        }
    }
    // It does stop proposals, and saves tokens (measured: see the printout).
    EXPECT_GT(stops, 100);
    EXPECT_GT(saved, total / 20);
    std::printf("early rejection: %lld proposals stopped, %lld of %lld tokens saved (%.1f%%)\n", (long long)stops,
                (long long)saved, (long long)total, 100.0 * double(saved) / double(total));
}

// A model that never ends a proposal early (EOG has probability e^-1000 = 0 in double): each
// stopped proposal would have run to its block's target, so n_tokens_saved is the saving exactly.
TEST(early_rejection, tokens_saved_is_exact_without_eog) {
    toy_model lm(6, 13, 2.0, -1000.0);
    int64_t   stops = 0;
    for (const double alpha : { 2.0, 4.0 }) {
        for (const int32_t block : { 3, 8 }) {
            const config c{ alpha, block, 12, method::power, { 2 } };
            const auto   r = compare(run(lm, c, true), run(lm, c, false));
            EXPECT_EQ(r.differing_chains, 0u);
            EXPECT_EQ(r.claimed_saving, r.tokens_off - r.tokens_on) << "alpha " << alpha << " B " << block;
            stops += r.early_stops;
        }
    }
    EXPECT_GT(stops, 20);
}

// The bound must take len(x') as short as it can still be (m + k): one that takes the block's
// target instead forgets that EOG can end the proposal sooner (with a larger length term), and
// rejects proposals that would have been accepted.
TEST(early_rejection, a_bound_assuming_full_length_changes_decisions) {
    size_t differing = 0, chains = 0;
    for (const double eog_bias : { 0.0, 1.0 }) {
        toy_model lm(6, 5, 1.0, eog_bias);
        for (const double alpha : { 1.5, 3.0 }) {
            for (const int32_t block : { 6, 24 }) {
                const config c{ alpha, block, 24, method::power, { 0 } };
                differing += compare(run(lm, c, true, engine::acceptance_variant::early_bound_assuming_full_length),
                                     run(lm, c, false))
                                 .differing_chains;
                chains += 32;
            }
        }
    }
    std::printf("a bound assuming full length: %zu of %zu chains differ\n", differing, chains);
    EXPECT_GT(differing, 0u);  // 13 of 256 here
}

TEST(early_rejection, applies_only_where_exact) {
    sampling_params p;
    EXPECT_TRUE(early_rejection_applies(p));
    p.alpha = 0.5;
    EXPECT_FALSE(early_rejection_applies(p));  // w_i = log sum p^alpha >= 0 for alpha < 1
    p             = {};
    p.temperature = 0.5;
    EXPECT_FALSE(early_rejection_applies(p));  // another temperature: w_i has no sign
    p.temperature = 0.25;
    EXPECT_TRUE(early_rejection_applies(p));  // 1/alpha given explicitly
    p       = {};
    p.top_k = 5;
    EXPECT_FALSE(early_rejection_applies(p));
    p                 = {};
    p.early_rejection = false;
    EXPECT_FALSE(early_rejection_applies(p));
    p        = {};
    p.method = method::smc;
    EXPECT_FALSE(early_rejection_applies(p));

    // Not applied: no proposal is stopped early.
    toy_model lm(6, 11, 1.5, 0.5);
    engine    eng(lm);
    request   req;
    req.prompt                = { 0 };
    req.params.alpha          = 4.0;
    req.params.temperature    = 0.5;
    req.params.block_size     = 4;
    req.params.max_new_tokens = 12;
    req.params.n_chains       = 4;
    eng.submit(req);
    const auto done = eng.run_all();
    ASSERT_EQ(done.size(), 1u);
    for (const auto & c : done[0].result.chains) EXPECT_EQ(c.n_early_rejections, 0);
}
