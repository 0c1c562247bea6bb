// The engine's bookkeeping on the toy model: cost per step, determinism, schedule, validation.
#include "powersample/engine.h"
#include "toy-model.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

using namespace powersample;
using powersample::testing::toy_model;

namespace {

request make_request(uint64_t seed, int32_t chains = 1) {
    request r;
    r.prompt                   = { 1, 2, 0 };
    r.params.alpha             = 4.0;
    r.params.block_size        = 4;
    r.params.max_new_tokens    = 12;
    r.params.n_steps_per_block = 3;
    r.params.n_chains          = chains;
    r.params.seed              = seed;
    return r;
}

std::vector<finished_request> run(toy_model & lm, const std::vector<request> & reqs) {
    engine eng(lm);
    for (const auto & r : reqs) eng.submit(r);
    return eng.run_all();
}

}  // namespace

TEST(engine, a_step_decodes_only_its_suffix) {
    // Tokens drawn from the proposal equal tokens decoded: the boundary token at P + m - 1 is
    // decoded again, the suffix's last token never is, and the prefix is copied, not recomputed.
    toy_model lm(6, 3, 1.0, -2.0);
    auto      done = run(lm, { make_request(9, 3) });
    ASSERT_EQ(done.size(), 1u);
    const auto & g           = done[0].result;
    int64_t      chain_total = 0;
    for (const auto & c : g.chains) {
        int64_t suffix_tokens = 0;
        for (const auto & s : c.trace) suffix_tokens += s.len_proposal - s.position;
        const int64_t extension_tokens = c.n_tokens_generated - suffix_tokens;
        EXPECT_EQ(c.n_tokens_decoded, c.n_tokens_generated);
        EXPECT_GE(extension_tokens, int64_t(c.tokens.size()) - 0);  // at least the final length
        EXPECT_LE(extension_tokens, 12);
        EXPECT_EQ(int32_t(c.trace.size()), c.n_proposals);
        chain_total += c.n_tokens_decoded;
    }
    EXPECT_EQ(g.n_tokens_decoded, chain_total + 2);  // + the prompt prefill (P - 1 tokens)
    EXPECT_EQ(lm.n_decoded, g.n_tokens_decoded);
}

TEST(engine, trace_is_consistent_with_the_result) {
    toy_model lm(6, 3, 1.0, -2.0);
    auto      done = run(lm, { make_request(5, 2) });
    for (const auto & c : done[0].result.chains) {
        ASSERT_FALSE(c.trace.empty());
        double lp = 0.0;
        for (double v : c.token_log_p) lp += v;
        EXPECT_NEAR(lp, c.log_p, 1e-12);
        EXPECT_NEAR(c.trace.back().log_p_after, c.log_p, 1e-9);
        int32_t accepted = 0;
        for (const auto & s : c.trace) {
            EXPECT_GE(s.position, 0);
            EXPECT_LT(s.position, s.len_current);
            EXPECT_GT(s.len_proposal, s.position);
            accepted += s.accepted;
        }
        EXPECT_EQ(accepted, c.n_accepted);
        // Each block runs exactly N steps: the trace holds N per block reached.
        EXPECT_EQ(c.trace.size() % 3, 0u);
        EXPECT_EQ(int32_t(c.trace.size()) / 3, c.trace.back().block);
        // Every token's log p matches the toy model's exact conditional.
        std::vector<token_id> history = { 1, 2, 0 };
        for (size_t i = 0; i < c.tokens.size(); ++i) {
            EXPECT_NEAR(lm.log_probs_after(history)[size_t(c.tokens[i])], c.token_log_p[i], 1e-6);
            history.push_back(c.tokens[i]);
        }
    }
}

TEST(engine, trace_records_the_suffixes_compared) {
    toy_model lm(6, 3, 1.0, -2.0);
    request   req              = make_request(11, 2);
    req.params.record_suffixes = true;
    auto done                  = run(lm, { req });
    for (const auto & c : done[0].result.chains) {
        ASSERT_FALSE(c.trace.empty());
        // Within a block the state changes only by accepted proposals: x := x[0:m] + x'[m:].
        std::vector<token_id> x;
        double                log_p = 0.0;
        int32_t               block = 0;
        for (const auto & s : c.trace) {
            ASSERT_EQ(int32_t(s.suffix_current.size()), s.len_current - s.position);
            ASSERT_EQ(int32_t(s.suffix_proposal.size()), s.len_proposal - s.position);
            if (s.block == block) {
                ASSERT_EQ(int32_t(x.size()), s.len_current);
                for (size_t i = 0; i < s.suffix_current.size(); ++i) {
                    const token_id known = x[size_t(s.position) + i];  // -1: extension not seen
                    if (known >= 0) {
                        EXPECT_EQ(s.suffix_current[i], known);
                    }
                }
                const double expected = s.accepted ? log_p - s.log_p_suffix_current + s.log_p_suffix_proposal : log_p;
                EXPECT_NEAR(s.log_p_after, expected, 1e-9);
            } else {
                // A new block: the state is the old one extended; its prefix before m is known
                // when m falls inside the old state.
                x.resize(size_t(std::min<int32_t>(s.position, int32_t(x.size()))));
                if (int32_t(x.size()) < s.position) x.resize(size_t(s.position), -1);
                x.insert(x.end(), s.suffix_current.begin(), s.suffix_current.end());
                block = s.block;
            }
            if (s.accepted) {
                x.resize(size_t(s.position));
                x.insert(x.end(), s.suffix_proposal.begin(), s.suffix_proposal.end());
            }
            log_p = s.log_p_after;
        }
        ASSERT_EQ(x.size(), c.tokens.size());
        for (size_t i = 0; i < x.size(); ++i) {
            if (x[i] >= 0) {
                EXPECT_EQ(x[i], c.tokens[i]) << i;
            }
        }
    }
    // Without record_suffixes the trace keeps the log p sums but no tokens.
    auto plain = run(lm, { make_request(11, 1) });
    for (const auto & s : plain[0].result.chains[0].trace) {
        EXPECT_TRUE(s.suffix_current.empty());
        EXPECT_TRUE(s.suffix_proposal.empty());
        EXPECT_LT(s.log_p_suffix_current, 0.0);
    }
}

TEST(engine, same_seed_same_tokens_other_seed_other_tokens) {
    toy_model lm(6, 3, 1.0, -2.0);
    auto      a              = run(lm, { make_request(42, 4) });
    auto      b              = run(lm, { make_request(42, 4) });
    auto      c              = run(lm, { make_request(43, 4) });
    bool      any_difference = false;
    for (size_t i = 0; i < 4; ++i) {
        EXPECT_EQ(a[0].result.chains[i].tokens, b[0].result.chains[i].tokens);
        any_difference |= a[0].result.chains[i].tokens != c[0].result.chains[i].tokens;
    }
    EXPECT_TRUE(any_difference);
    // Chains of one request are independent streams, not copies.
    EXPECT_NE(a[0].result.chains[0].tokens, a[0].result.chains[1].tokens);
}

TEST(engine, results_do_not_depend_on_what_else_is_in_the_batch) {
    toy_model lm(6, 3, 1.0, -2.0);
    auto      alone    = run(lm, { make_request(77, 2) });
    auto      together = run(lm, { make_request(1, 3), make_request(77, 2), make_request(2, 1) });
    EXPECT_EQ(alone[0].result.chains[0].tokens, together[1].result.chains[0].tokens);
    EXPECT_EQ(alone[0].result.chains[1].tokens, together[1].result.chains[1].tokens);
}

TEST(engine, requests_wait_for_free_sequences_and_all_finish) {
    // 7 sequence ids fit one request of 3 chains at a time: the others queue.
    toy_model            lm(6, 3, 1.0, -2.0, 7);
    std::vector<request> reqs;
    for (int i = 0; i < 5; ++i) reqs.push_back(make_request(uint64_t(i), 3));
    auto done = run(lm, reqs);
    ASSERT_EQ(done.size(), 5u);
    for (size_t i = 0; i < done.size(); ++i) {
        EXPECT_EQ(done[i].id, i);
        EXPECT_EQ(done[i].result.chains.size(), 3u);
        for (const auto & c : done[i].result.chains) EXPECT_NE(c.finish, finish_reason::cancelled);
    }
    for (int32_t s = 0; s < lm.n_seq_max(); ++s) EXPECT_EQ(lm.seq_length(s), 0) << "sequence " << s << " not freed";
}

TEST(engine, stops_at_eog_or_cap) {
    toy_model lm(3, 1, 0.5, 1.5);  // EOG likely
    auto      done = run(lm, { make_request(3, 8) });
    for (const auto & c : done[0].result.chains) {
        ASSERT_FALSE(c.tokens.empty());
        if (c.finish == finish_reason::eog) {
            EXPECT_TRUE(lm.is_eog(c.tokens.back()));
            for (size_t i = 0; i + 1 < c.tokens.size(); ++i) EXPECT_FALSE(lm.is_eog(c.tokens[i]));
        } else {
            EXPECT_EQ(c.finish, finish_reason::length);
            EXPECT_EQ(c.tokens.size(), 12u);
        }
    }
}

TEST(engine, greedy_is_the_argmax_path) {
    toy_model lm(6, 3, 1.0, -2.0);
    request   r                   = make_request(0);
    r.params.method               = method::greedy;
    auto                  done    = run(lm, { r });
    std::vector<token_id> history = r.prompt;
    for (token_id t : done[0].result.chains[0].tokens) {
        const auto lp = lm.log_probs_after(history);
        EXPECT_EQ(t, token_id(std::max_element(lp.begin(), lp.end()) - lp.begin()));
        history.push_back(t);
    }
    EXPECT_EQ(done[0].result.chains[0].n_proposals, 0);
}

TEST(engine, cancel_returns_the_state_reached) {
    toy_model lm(6, 3, 1.0, -2.0);
    engine    eng(lm);
    request   r             = make_request(4, 2);
    r.params.max_new_tokens = 40;
    const uint64_t id       = eng.submit(r);
    for (int i = 0; i < 10; ++i) eng.step();
    eng.cancel(id);
    std::vector<finished_request> done;
    while (eng.step()) {}
    done = eng.take_finished();
    ASSERT_EQ(done.size(), 1u);
    for (const auto & c : done[0].result.chains) {
        EXPECT_EQ(c.finish, finish_reason::cancelled);
        EXPECT_FALSE(c.tokens.empty());
    }
    for (int32_t s = 0; s < lm.n_seq_max(); ++s) EXPECT_EQ(lm.seq_length(s), 0);
}

TEST(engine, rejects_bad_requests_naming_the_field) {
    toy_model lm(6, 3, 1.0, -2.0, 9, 100);
    engine    eng(lm);
    auto      expect_error = [&](request r, const std::string & needle) {
        try {
            eng.submit(r);
            ADD_FAILURE() << "accepted a request that should fail on " << needle;
        } catch (const invalid_argument_error & e) {
            EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
        }
    };
    request r               = make_request(1);
    r.params.max_new_tokens = 8;
    request bad             = r;
    bad.params.alpha        = 0.0;
    expect_error(bad, "alpha");
    bad              = r;
    bad.params.alpha = std::nan("");
    expect_error(bad, "alpha");
    bad              = r;
    bad.params.alpha = INFINITY;
    expect_error(bad, "alpha");
    bad                   = r;
    bad.params.block_size = 0;
    expect_error(bad, "block_size");
    bad                          = r;
    bad.params.n_steps_per_block = -1;
    expect_error(bad, "steps");
    bad                       = r;
    bad.params.max_new_tokens = 0;
    expect_error(bad, "max_tokens");
    bad                       = r;
    bad.params.max_new_tokens = 1000;
    expect_error(bad, "max_tokens");
    bad                    = r;
    bad.params.temperature = -1;
    expect_error(bad, "temperature");
    bad              = r;
    bad.params.top_p = 0;
    expect_error(bad, "top_p");
    bad              = r;
    bad.params.min_p = 1;
    expect_error(bad, "min_p");
    bad              = r;
    bad.params.top_k = -3;
    expect_error(bad, "top_k");
    bad                 = r;
    bad.params.n_chains = 0;
    expect_error(bad, "chains");
    bad                 = r;
    bad.params.n_chains = 5;
    expect_error(bad, "chains");
    bad = r;
    bad.prompt.clear();
    expect_error(bad, "prompt");
    bad        = r;
    bad.prompt = { 99 };
    expect_error(bad, "prompt");
    EXPECT_EQ(eng.n_queued(), 0u);
}

TEST(engine, decode_cost_estimate_follows_its_formula) {
    sampling_params p;
    p.max_new_tokens    = 256;
    p.block_size        = 1;
    p.n_steps_per_block = 32;
    p.n_chains          = 2;
    // The heavy request of issue 14: 256 + 32 * (1 + ... + 256) per chain worst, half the steps'
    // share expected; plus the prompt's P - 1 tokens.
    const decode_cost heavy = estimate_decode_cost(p, 5);
    EXPECT_EQ(heavy.worst, 4 + 2 * (256 + 32 * (256 * 257 / 2)));
    EXPECT_EQ(heavy.expected, 4 + 2 * (256 + 32 * (256 * 257 / 2 + 256) / 2));
    p.n_steps_per_block = 0;
    EXPECT_EQ(estimate_decode_cost(p, 1).worst, 2 * 256);
    EXPECT_EQ(estimate_decode_cost(p, 1).expected, 2 * 256);
    // A last block shorter than B: lengths 64, 100.
    p.n_chains          = 1;
    p.block_size        = 64;
    p.max_new_tokens    = 100;
    p.n_steps_per_block = 5;
    EXPECT_EQ(estimate_decode_cost(p, 1).worst, 100 + 5 * (64 + 100));
    EXPECT_EQ(estimate_decode_cost(p, 1).expected, 100 + 5 * (64 + 100 + 2) / 2);
    p.method  = method::best_of_n;
    p.best_of = 4;
    EXPECT_EQ(estimate_decode_cost(p, 1).worst, 400);
    p.method      = method::smc;
    p.n_particles = 8;
    EXPECT_EQ(estimate_decode_cost(p, 1).worst, 800);
    // Saturates rather than overflowing.
    p.method            = method::power;
    p.max_new_tokens    = INT32_MAX;
    p.block_size        = 1;
    p.n_steps_per_block = INT32_MAX;
    EXPECT_EQ(estimate_decode_cost(p, 1).worst, INT64_MAX);
}

TEST(engine, decode_cost_estimate_bounds_and_predicts_the_real_cost) {
    // EOG practically never drawn, so every block has its full length and the only randomness
    // is the cut: over 200 seeds the mean cost is within 3% of the expected one (its spread
    // over 200 runs is about 0.8%), and no run exceeds the worst case.
    toy_model lm(6, 3, 1.0, -50.0);
    engine    eng(lm);
    request   r                = make_request(0);
    r.params.max_new_tokens    = 24;
    r.params.block_size        = 4;
    r.params.n_steps_per_block = 4;
    const decode_cost cost     = estimate_decode_cost(r.params, int64_t(r.prompt.size()));
    for (uint64_t seed = 0; seed < 200; ++seed) {
        r.params.seed = seed;
        eng.submit(r);
    }
    double total = 0.0;
    for (const auto & f : eng.run_all()) {
        EXPECT_LE(f.result.n_tokens_decoded, cost.worst);
        total += double(f.result.n_tokens_decoded);
    }
    EXPECT_NEAR(total / 200.0, double(cost.expected), 0.03 * double(cost.expected));
}

TEST(engine, a_request_stops_at_its_budget) {
    toy_model lm(6, 3, 1.0, -50.0);
    engine    eng(lm);
    request   r                        = make_request(2, 3);
    r.params.max_new_tokens            = 40;
    r.params.max_tokens_decoded        = 50;
    request free_run                   = r;
    free_run.params.max_tokens_decoded = 0;
    eng.submit(r);
    eng.submit(free_run);
    const auto   done = eng.run_all();
    const auto & g    = done[0].result;
    EXPECT_TRUE(g.budget_exhausted);
    // Stopped in the round that reached 50: at most one more token per chain.
    EXPECT_GE(g.n_tokens_decoded, 50);
    EXPECT_LE(g.n_tokens_decoded, 50 + 3);
    for (const auto & c : g.chains) {
        EXPECT_EQ(c.finish, finish_reason::length);
        EXPECT_FALSE(c.tokens.empty());
        EXPECT_LT(c.tokens.size(), 40u);
    }
    EXPECT_FALSE(done[1].result.budget_exhausted);
    EXPECT_GT(done[1].result.n_tokens_decoded, 200);
    for (int32_t s = 0; s < lm.n_seq_max(); ++s) EXPECT_EQ(lm.seq_length(s), 0);

    // The samplers with a runner of their own (here Power-SMC) stop the same way.
    request smc            = r;
    smc.params.method      = method::smc;
    smc.params.n_particles = 4;
    smc.params.n_chains    = 1;
    eng.submit(smc);
    const auto smc_done = eng.run_all();
    EXPECT_TRUE(smc_done[0].result.budget_exhausted);
    EXPECT_LE(smc_done[0].result.n_tokens_decoded, 50 + 4);
    EXPECT_EQ(smc_done[0].result.chains[0].finish, finish_reason::length);
}
