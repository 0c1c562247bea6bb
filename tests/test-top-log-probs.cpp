// engine::request::n_top_log_p: the alternatives at each position of every returned sample are
// the model's most likely tokens there, exactly (the toy model is deterministic), for every
// method; asking for them changes nothing else; a context with only the sequences one request
// needs still runs several such requests one after another.
#include "powersample/engine.h"
#include "core/request-runner.h"
#include "toy-model.h"

#include <gtest/gtest.h>

#include <algorithm>

using namespace powersample;
using powersample::testing::toy_model;

namespace {

// The reference: the n likeliest tokens of p(. | prompt, x_<i), ties by lower id.
std::vector<token_alternative> expected_top(const toy_model & lm, std::vector<token_id> history, int32_t n) {
    const auto            lp = lm.log_probs_after(history);
    std::vector<token_id> ids(lp.size());
    for (size_t v = 0; v < ids.size(); ++v) ids[v] = token_id(v);
    std::stable_sort(ids.begin(), ids.end(), [&](token_id a, token_id b) { return lp[size_t(a)] > lp[size_t(b)]; });
    std::vector<token_alternative> out;
    for (int32_t k = 0; k < std::min<int32_t>(n, int32_t(ids.size())); ++k)
        out.push_back({ ids[size_t(k)], lp[size_t(ids[size_t(k)])] });
    return out;
}

void expect_exact_alternatives(const toy_model & lm, const std::vector<token_id> & prompt, const sample_result & c,
                               int32_t n) {
    ASSERT_EQ(c.top_log_p.size(), c.tokens.size());
    std::vector<token_id> history = prompt;
    for (size_t i = 0; i < c.tokens.size(); ++i) {
        const auto want = expected_top(lm, history, n);
        ASSERT_EQ(c.top_log_p[i].size(), want.size()) << "position " << i;
        for (size_t k = 0; k < want.size(); ++k) {
            EXPECT_EQ(c.top_log_p[i][k].token, want[k].token) << "position " << i << " rank " << k;
            EXPECT_NEAR(c.top_log_p[i][k].log_p, want[k].log_p, 1e-12);
        }
        // The drawn token's log p, as the chain cached it, is the model's.
        EXPECT_NEAR(c.token_log_p[i], lm.log_probs_after(history)[size_t(c.tokens[i])], 1e-12);
        history.push_back(c.tokens[i]);
    }
}

sampling_params params_for(method how) {
    sampling_params p;
    p.method            = how;
    p.alpha             = 3.0;
    p.block_size        = 4;
    p.max_new_tokens    = 12;
    p.n_steps_per_block = 3;
    p.n_chains          = 2;
    p.n_particles       = 4;
    p.sps_candidates    = 4;
    p.sps_top_k         = 2;
    p.sps_rollouts      = 2;
    p.best_of           = 2;
    p.seed              = 5;
    return p;
}

}  // namespace

TEST(top_log_p, exact_alternatives_for_every_method_and_nothing_else_changes) {
    const std::vector<token_id> prompt{ 1, 4, 2 };
    for (const method how : { method::power, method::power_entropy, method::greedy, method::sample, method::low_temp,
                              method::smc, method::sps, method::best_of_n }) {
        toy_model             lm(7, 21, 1.5, -0.5);
        engine                eng(lm);
        const sampling_params p = params_for(how);
        eng.submit({ prompt, p, 3 });
        eng.submit({ prompt, p, 0 });
        auto done = eng.run_all();
        ASSERT_EQ(done.size(), 2u);
        const auto &with = done[0].result, &without = done[1].result;
        ASSERT_EQ(with.chains.size(), without.chains.size()) << method_name(how);
        for (size_t k = 0; k < with.chains.size(); ++k) {
            SCOPED_TRACE(method_name(how));
            expect_exact_alternatives(lm, prompt, with.chains[k], 3);
            EXPECT_TRUE(without.chains[k].top_log_p.empty());
            EXPECT_EQ(with.chains[k].tokens, without.chains[k].tokens);
            EXPECT_EQ(with.chains[k].n_tokens_decoded, without.chains[k].n_tokens_decoded);
        }
        // The pass is not part of the sampling's cost.
        EXPECT_EQ(with.n_tokens_decoded, without.n_tokens_decoded) << method_name(how);
    }
}

TEST(top_log_p, more_alternatives_than_tokens_gives_the_whole_distribution) {
    toy_model lm(5, 3, 1.0, 0.0);
    engine    eng(lm);
    eng.submit({ { 0 }, params_for(method::power), 20 });
    auto done = eng.run_all();
    for (const auto & c : done[0].result.chains) expect_exact_alternatives(lm, { 0 }, c, 5);
}

// Only the sequences one power request with two chains needs (2 per chain + 1): requests wait
// for each other, and each one's pass finds the two sequences its chains have just freed.
TEST(top_log_p, runs_in_a_context_with_the_sequences_of_one_request) {
    toy_model                   lm(6, 9, 1.5, 0.0, 5);
    engine                      eng(lm);
    const std::vector<token_id> prompt{ 3 };
    for (int i = 0; i < 4; ++i) {
        sampling_params p = params_for(method::power);
        p.seed            = uint64_t(i);
        eng.submit({ prompt, p, 2 });
    }
    const auto done = eng.run_all();
    ASSERT_EQ(done.size(), 4u);
    for (const auto & d : done) {
        for (const auto & c : d.result.chains) expect_exact_alternatives(lm, prompt, c, 2);
    }
}

// Long samples are scored in chunks (here 3 tokens a round), with the same values.
TEST(top_log_p, chunked_passes_give_the_same_alternatives) {
    toy_model                   lm(6, 4, 1.0, -2.0);
    const std::vector<token_id> prompt{ 2, 2 };
    std::vector<sample_result>  samples(3);
    samples[0].tokens = { 0, 1, 2, 3, 4, 0, 1 };
    samples[2].tokens = { 4, 4, 4, 4 };  // the middle one is empty: nothing to score
    for (auto & s : samples) {
        std::vector<token_id> h = prompt;
        for (token_id t : s.tokens) {
            s.token_log_p.push_back(lm.log_probs_after(h)[size_t(t)]);
            h.push_back(t);
        }
    }
    auto runner = make_top_log_p_runner(lm, prompt, samples, 4, { 0, 1 }, 3);
    int  rounds = 0;
    while (!runner->done()) {
        std::vector<decode_entry> entries;
        runner->collect(entries);
        EXPECT_LE(entries.size(), std::max<size_t>(3, prompt.size() - 1));
        lm.decode(entries);
        for (size_t e = 0; e < entries.size(); ++e)
            runner->deliver(int32_t(e), entries[e].want_logits ? lm.logits(int32_t(e)) : nullptr);
        runner->end_round();
        ASSERT_LT(++rounds, 20);
    }
    EXPECT_EQ(rounds, 1 + 3 + 2);  // the prompt, then ceil(7 / 3) and ceil(4 / 3)
    const auto out = runner->take_results();
    expect_exact_alternatives(lm, prompt, out[0], 4);
    EXPECT_TRUE(out[1].top_log_p.empty());
    expect_exact_alternatives(lm, prompt, out[2], 4);
}

TEST(top_log_p, out_of_range_is_an_error_naming_it) {
    toy_model lm(6, 1, 1.0, 0.0);
    engine    eng(lm);
    for (const int32_t n : { -1, max_top_log_p + 1 }) {
        try {
            eng.submit({ { 0 }, sampling_params{}, n });
            ADD_FAILURE() << n;
        } catch (const invalid_argument_error & e) {
            EXPECT_NE(std::string(e.what()).find("n_top_log_p"), std::string::npos) << e.what();
        }
    }
}
