// Drawing tokens: exact log-probabilities, truncation, and the frequencies of the draws.
#include "core/token-sampler.h"

#include <gtest/gtest.h>

#include <cmath>

using namespace powersample;

namespace {
double log_softmax(const std::vector<float> & l, size_t i, double scale = 1.0) {
    double mx = -INFINITY;
    for (float v : l) mx = std::max(mx, scale * v);
    double s = 0.0;
    for (float v : l) s += std::exp(scale * v - mx);
    return scale * l[i] - mx - std::log(s);
}
}  // namespace

TEST(token_sampler, log_probs_are_exact_for_the_default_proposal) {
    const std::vector<float> logits = { 1.0f, 3.0f, -2.0f, 0.5f, 2.5f };
    random_stream            rng(1, 0, 0);
    draw_scratch             scratch;
    proposal_config          pc;
    pc.inv_temperature = 4.0;
    for (int i = 0; i < 50; ++i) {
        const token_draw d = draw_token(logits.data(), 5, pc, rng, scratch);
        EXPECT_NEAR(d.log_p, log_softmax(logits, size_t(d.token)), 1e-12);
        EXPECT_NEAR(d.log_q, log_softmax(logits, size_t(d.token), 4.0), 1e-12);
        // With q at temperature 1/alpha the weight alpha*log p - log q does not depend on the token.
        EXPECT_NEAR(4.0 * d.log_p - d.log_q, 4.0 * log_softmax(logits, 1) - log_softmax(logits, 1, 4.0), 1e-9);
    }
    EXPECT_NEAR(token_log_prob(logits.data(), 5, 2), log_softmax(logits, 2), 1e-12);
}

TEST(token_sampler, non_integer_temperature_uses_exp) {
    const std::vector<float> logits = { 0.3f, -1.0f, 2.0f };
    random_stream            rng(2, 0, 0);
    draw_scratch             scratch;
    proposal_config          pc;
    pc.inv_temperature = 1.7;
    const token_draw d = draw_token(logits.data(), 3, pc, rng, scratch);
    EXPECT_NEAR(d.log_q, log_softmax(logits, size_t(d.token), 1.7), 1e-12);
}

TEST(token_sampler, frequencies_follow_the_proposal) {
    // 200,000 draws; each frequency within 0.005 of its probability (over 10 standard errors).
    const std::vector<float> logits = { 0.0f, 0.7f, -0.4f, 1.1f };
    random_stream            rng(3, 0, 0);
    draw_scratch             scratch;
    proposal_config          pc;
    pc.inv_temperature = 2.0;
    std::vector<double> counts(4, 0.0);
    const int           n = 200000;
    for (int i = 0; i < n; ++i) counts[size_t(draw_token(logits.data(), 4, pc, rng, scratch).token)] += 1;
    for (size_t v = 0; v < 4; ++v) {
        EXPECT_NEAR(counts[v] / n, std::exp(log_softmax(logits, v, 2.0)), 0.005) << "token " << v;
    }
}

TEST(token_sampler, greedy_takes_the_argmax) {
    const std::vector<float> logits = { 0.0f, 5.0f, 4.9f };
    random_stream            rng(4, 0, 0);
    draw_scratch             scratch;
    proposal_config          pc;
    pc.greedy          = true;
    const token_draw d = draw_token(logits.data(), 3, pc, rng, scratch);
    EXPECT_EQ(d.token, 1);
    EXPECT_EQ(d.log_q, 0.0);
    EXPECT_NEAR(d.log_p, log_softmax(logits, 1), 1e-12);
}

TEST(token_sampler, top_k_top_p_min_p_renormalise_over_the_kept_set) {
    // Probabilities at temperature 1: softmax of log([0.5, 0.2, 0.15, 0.1, 0.05]).
    const std::vector<double> probs = { 0.5, 0.2, 0.15, 0.1, 0.05 };
    std::vector<float>        logits;
    for (double p : probs) logits.push_back(float(std::log(p)));
    draw_scratch scratch;

    auto support_and_log_q = [&](proposal_config pc) {
        random_stream              rng(5, 0, 0);
        std::map<token_id, double> seen;
        for (int i = 0; i < 4000; ++i) {
            const token_draw d = draw_token(logits.data(), 5, pc, rng, scratch);
            seen[d.token]      = d.log_q;
        }
        return seen;
    };

    proposal_config top_k;
    top_k.top_k = 2;
    auto s      = support_and_log_q(top_k);
    ASSERT_EQ(s.size(), 2u);
    EXPECT_NEAR(s[0], std::log(0.5 / 0.7), 1e-6);
    EXPECT_NEAR(s[1], std::log(0.2 / 0.7), 1e-6);

    proposal_config top_p;
    top_p.top_p = 0.8;  // 0.5 + 0.2 = 0.7 < 0.8, + 0.15 = 0.85 >= 0.8: three tokens
    s           = support_and_log_q(top_p);
    ASSERT_EQ(s.size(), 3u);
    EXPECT_NEAR(s[2], std::log(0.15 / 0.85), 1e-6);

    proposal_config min_p;
    min_p.min_p = 0.25;  // keeps p >= 0.125: tokens 0, 1, 2
    s           = support_and_log_q(min_p);
    ASSERT_EQ(s.size(), 3u);
    EXPECT_NEAR(s[0], std::log(0.5 / 0.85), 1e-6);
}

TEST(token_sampler, random_streams_are_reproducible_and_in_range) {
    random_stream a(9, 1, 2), b(9, 1, 2), c(9, 1, 3);
    bool          differs = false;
    for (int i = 0; i < 1000; ++i) {
        const double u = a.uniform_open01();
        EXPECT_GT(u, 0.0);
        EXPECT_LT(u, 1.0);
        EXPECT_EQ(u, b.uniform_open01());
        differs |= u != c.uniform_open01();
        const uint32_t k = a.uniform_below(7);
        EXPECT_LT(k, 7u);
        b.uniform_below(7);
        c.uniform_below(7);
    }
    EXPECT_TRUE(differs);
}
