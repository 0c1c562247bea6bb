// Stop strings (docs/algorithm.md, "Stop strings") on the exact toy model: the MH chain's
// distribution over whole completions against pi over the completions that end at the first stop,
// EOG or the cap, with two broken controls that must fail; then exact endings for every method,
// the prompt not counting, and the parameter checks.
#include "powersample/engine.h"
#include "toy-model.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <map>
#include <string>

using namespace powersample;
using powersample::testing::power_target;
using powersample::testing::total_variation;
using powersample::testing::toy_model;

namespace {

using distribution = std::map<std::vector<token_id>, double>;

const std::vector<token_id> prompt = { 0, 2 };

distribution run(toy_model & lm, const sampling_params & base, int32_t n_requests,
                 engine::acceptance_variant variant = engine::acceptance_variant::exact) {
    engine eng(lm);
    eng.set_acceptance_variant_for_testing(variant);
    for (int32_t r = 0; r < n_requests; ++r) {
        request req;
        req.prompt              = prompt;
        req.params              = base;
        req.params.seed         = 1000 + uint64_t(r);
        req.params.record_trace = false;
        eng.submit(req);
    }
    distribution counts;
    double       n = 0;
    for (const auto & f : eng.run_all()) {
        for (const auto & c : f.result.chains) {
            counts[c.tokens] += 1;
            n += 1;
        }
    }
    for (auto & kv : counts) kv.second /= n;
    return counts;
}

// As in test-engine-exactness.cpp: 10,000 samples; the target here has fewer states (19) than
// the 40 there, so sampling noise alone is below 0.015, and 0.04 leaves room for incomplete mixing.
constexpr double tv_bound = 0.04;

std::vector<token_id> first(const std::vector<token_id> & v, size_t n) { return { v.begin(), v.begin() + long(n) }; }

// The reference ending: the first k such that the text of tokens[0..k] contains a stop.
size_t reference_end(const toy_model & lm, const std::vector<token_id> & tokens,
                     const std::vector<std::string> & stops) {
    for (size_t k = 1; k <= tokens.size(); ++k) {
        if (lm.contains_stop(first(tokens, k), stops)) return k;
    }
    return tokens.size();
}

}  // namespace

TEST(stop_strings, mh_chain_matches_the_target_with_stops_and_broken_controls_do_not) {
    // Tokens "a", "b", "ab" and EOG; stop "ab": it ends a completion inside one token ("ab") or
    // across two ("a" then "b"), and pi changes a lot (0.51 TV from pi without stops).
    // Measured: exact 0.021, stop matched in the newest token only 0.098, without the length
    // correction 0.20.
    toy_model lm(4, 3, 0.7, -1.0);
    lm.set_token_bytes({ "a", "b", "ab" });
    sampling_params sp;
    sp.alpha                  = 2.0;
    sp.block_size             = 3;
    sp.max_new_tokens         = 3;
    sp.n_steps_per_block      = 100;
    sp.n_chains               = 500;
    sp.stop                   = { "ab" };
    const distribution target = power_target(lm.enumerate(prompt, sp.max_new_tokens, sp.stop), sp.alpha);
    ASSERT_EQ(target.size(), 19u);
    ASSERT_TRUE(target.count({ 0, 1 }));      // the stop spans two tokens
    ASSERT_TRUE(target.count({ 2 }));         // the stop inside one token
    ASSERT_FALSE(target.count({ 0, 1, 0 }));  // nothing after the token completing a stop
    const double tv_no_stop_target =
        total_variation(target, power_target(lm.enumerate(prompt, sp.max_new_tokens), sp.alpha));
    EXPECT_GT(tv_no_stop_target, 3 * tv_bound);

    const double tv_exact = total_variation(run(lm, sp, 20), target);
    const double tv_last_token =
        total_variation(run(lm, sp, 20, engine::acceptance_variant::stop_in_last_token_only), target);
    const double tv_no_length =
        total_variation(run(lm, sp, 20, engine::acceptance_variant::without_length_correction), target);
    std::printf(
        "stop strings, MH: TV exact %.4f, stop matched in the last token only %.4f, without length "
        "correction %.4f (bound %.3f; pi with vs without stops %.3f)\n",
        tv_exact, tv_last_token, tv_no_length, tv_bound, tv_no_stop_target);
    EXPECT_LT(tv_exact, tv_bound);
    EXPECT_GT(tv_last_token, tv_bound);
    EXPECT_GT(tv_no_length, tv_bound);
}

TEST(stop_strings, smc_matches_the_target_with_stops) {
    toy_model lm(4, 3, 0.7, -1.0);
    lm.set_token_bytes({ "a", "b", "ab" });
    sampling_params sp;
    sp.method                 = method::smc;
    sp.alpha                  = 2.0;
    sp.max_new_tokens         = 3;
    sp.n_particles            = 32;
    sp.alpha_ramp_tokens      = 2;
    sp.n_chains               = 50;
    sp.stop                   = { "ab" };
    const distribution target = power_target(lm.enumerate(prompt, sp.max_new_tokens, sp.stop), sp.alpha);
    const double       tv     = total_variation(run(lm, sp, 200), target);
    std::printf("stop strings, Power-SMC (N=32): TV %.4f (bound %.3f)\n", tv, tv_bound);
    EXPECT_LT(tv, tv_bound);
}

TEST(stop_strings, greedy_ends_at_the_token_completing_a_stop_across_two_tokens) {
    toy_model       lm(4, 11, 1.0, -30.0);  // "a", "b", "c"; EOG unreachable
    sampling_params sp;
    sp.method         = method::greedy;
    sp.max_new_tokens = 8;
    engine plain(lm);
    plain.submit({ prompt, sp });
    const std::vector<token_id> g = plain.run_all()[0].result.chains[0].tokens;
    ASSERT_EQ(g.size(), 8u);

    // Two one-byte tokens: the stop can only be completed across a token boundary.
    sp.stop        = { lm.text_of({ g[1], g[2] }) };
    const size_t k = reference_end(lm, g, sp.stop);
    ASSERT_GE(k, 2u);
    ASSERT_LE(k, 3u);
    engine eng(lm);
    eng.submit({ prompt, sp });
    const sample_result c = eng.run_all()[0].result.chains[0];
    EXPECT_EQ(c.tokens, first(g, k));
    EXPECT_EQ(c.finish, finish_reason::stop);
    EXPECT_EQ(c.stop, sp.stop[0]);
    EXPECT_EQ(c.token_log_p.size(), k);
    EXPECT_EQ(c.n_tokens_generated, int64_t(k));
    EXPECT_STREQ(finish_reason_name(c.finish), "stop");

    // Matching inside the newest token only misses it and runs to the cap.
    engine broken(lm);
    broken.set_acceptance_variant_for_testing(engine::acceptance_variant::stop_in_last_token_only);
    broken.submit({ prompt, sp });
    const sample_result b = broken.run_all()[0].result.chains[0];
    EXPECT_EQ(b.finish, finish_reason::length);
    EXPECT_EQ(b.tokens, g);
}

TEST(stop_strings, the_prompt_does_not_count) {
    toy_model                   lm(4, 11, 1.0, -30.0);
    const std::vector<token_id> ab = { 0, 1 };  // prompt text "ab"
    sampling_params             sp;
    sp.method         = method::greedy;
    sp.max_new_tokens = 8;
    engine plain(lm);
    plain.submit({ ab, sp });
    const std::vector<token_id> g = plain.run_all()[0].result.chains[0].tokens;
    // A stop inside the prompt, and one across the prompt's end and the first completion token:
    // neither ends the completion there; only an occurrence in the completion's own text does.
    for (const std::string & stop : { std::string("ab"), "b" + lm.text_of({ g[0] }) }) {
        sp.stop = { stop };
        engine eng(lm);
        eng.submit({ ab, sp });
        const sample_result c = eng.run_all()[0].result.chains[0];
        const size_t        k = reference_end(lm, g, sp.stop);
        EXPECT_GE(c.tokens.size(), 2u) << stop;
        EXPECT_EQ(c.tokens, first(g, k)) << stop;
        EXPECT_EQ(c.finish, lm.contains_stop(g, sp.stop) ? finish_reason::stop : finish_reason::length) << stop;
    }
}

TEST(stop_strings, every_method_ends_at_the_first_stop_and_nothing_after_it) {
    toy_model lm(4, 5, 1.0, -30.0);  // "a", "b", "c"; no EOG: only stops and the cap end
    for (method how : { method::power, method::power_entropy, method::sample, method::low_temp, method::greedy,
                        method::best_of_n, method::smc, method::sps }) {
        sampling_params sp;
        sp.method            = how;
        sp.alpha             = 2.0;
        sp.block_size        = 4;
        sp.n_steps_per_block = 3;
        sp.max_new_tokens    = 12;
        sp.n_chains          = 8;
        sp.best_of           = 3;
        sp.n_particles       = 8;
        sp.sps_candidates    = 4;
        sp.sps_top_k         = 2;
        sp.sps_rollouts      = 2;
        sp.stop              = { "cab", "bb" };
        engine eng(lm);
        eng.submit({ prompt, sp });
        const auto done      = eng.run_all();
        int32_t    n_stopped = 0;
        for (const auto & c : done[0].result.chains) {
            const auto & t = c.tokens;
            ASSERT_FALSE(t.empty()) << method_name(how);
            // No prefix ends: the last token is the first one after which a stop appears.
            EXPECT_FALSE(lm.contains_stop(first(t, t.size() - 1), sp.stop)) << method_name(how);
            if (c.finish == finish_reason::stop) {
                n_stopped += 1;
                EXPECT_TRUE(lm.text_of(t).find(c.stop) != std::string::npos) << method_name(how);
                EXPECT_TRUE(c.stop == "cab" || c.stop == "bb") << method_name(how);
            } else {
                EXPECT_EQ(c.finish, finish_reason::length) << method_name(how);
                EXPECT_EQ(t.size(), 12u) << method_name(how);
                EXPECT_FALSE(lm.contains_stop(t, sp.stop)) << method_name(how);
                EXPECT_TRUE(c.stop.empty());
            }
            EXPECT_EQ(c.token_log_p.size(), t.size());
        }
        if (how != method::greedy) {  // greedy: one path, no stop on it
            EXPECT_GT(n_stopped, 0) << method_name(how);
        }
    }
}

TEST(stop_strings, of_several_the_one_starting_first_is_reported) {
    // "xab" completed by one token: stops "ab" and "b" both end in it; "ab" starts first, and the
    // text is cut there.
    toy_model lm(4, 11, 1.0, -30.0);
    lm.set_token_bytes({ "xab", "xab", "xab" });
    sampling_params sp;
    sp.method         = method::greedy;
    sp.max_new_tokens = 4;
    sp.stop           = { "b", "ab" };
    engine eng(lm);
    eng.submit({ prompt, sp });
    const sample_result c = eng.run_all()[0].result.chains[0];
    EXPECT_EQ(c.tokens.size(), 1u);
    EXPECT_EQ(c.finish, finish_reason::stop);
    EXPECT_EQ(c.stop, "ab");
}

TEST(stop_strings, need_token_text) {
    toy_model lm(4, 11, 1.0, -30.0);
    lm.has_text = false;
    sampling_params sp;
    sp.stop = { "ab" };
    engine eng(lm);
    try {
        eng.submit({ prompt, sp });
        FAIL() << "accepted";
    } catch (const invalid_argument_error & e) {
        EXPECT_EQ(std::string(e.what()).rfind("stop: ", 0), 0u) << e.what();
    }
    sp.stop.clear();
    EXPECT_NO_THROW(eng.submit({ prompt, sp }));
}

TEST(stop_strings, bad_values_name_the_field) {
    auto message = [](const std::vector<std::string> & stops) {
        sampling_params sp;
        sp.stop = stops;
        try {
            validate(sp);
        } catch (const invalid_argument_error & e) {
            return std::string(e.what());
        }
        return std::string("(accepted)");
    };
    const std::vector<std::string> five = { "a", "b", "c", "d", "e" };
    EXPECT_EQ(message(five).rfind("stop = 5 strings", 0), 0u) << message(five);
    EXPECT_EQ(message({ "a", "" }).rfind("stop = [1]", 0), 0u) << message({ "a", "" });
    const std::vector<std::string> long_one = { std::string(65, 'x') };
    EXPECT_EQ(message(long_one).rfind("stop = [0] of 65 bytes", 0), 0u) << message(long_one);
    EXPECT_EQ(message({ "a", "b", "c", std::string(64, 'x') }), "(accepted)");
    EXPECT_EQ(message({}), "(accepted)");
}
