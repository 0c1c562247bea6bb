// The remote backend against a real llama-server (built by scripts/setup.sh from the same
// llama.cpp source) on a free loopback port, with the default model.
#include "powersample/powersample.h"
#include "powersample/remote.h"

#include "loopback-process.h"
#include "model-fixture.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <fcntl.h>

using namespace powersample;
using powersample::testing::loopback_process;
using powersample::testing::test_model;

namespace {

std::unique_ptr<loopback_process> start_llama_server() {
    const int port = powersample::testing::free_loopback_port();
    auto      p    = std::make_unique<loopback_process>(
        POWERSAMPLE_LLAMA_SERVER,
        std::vector<std::string>{ "-m", test_model()->path(), "--host", "127.0.0.1", "--port", std::to_string(port),
                                          "-t", "1", "-c", "2048", "-np", "1" },
        port, "llama-server-test.log");
    if (!p->wait_healthy(120)) {
        ADD_FAILURE() << "llama-server did not come up (see llama-server-test.log)";
        return nullptr;
    }
    return p;
}

remote_params params_for(const loopback_process & p) {
    remote_params rp;
    rp.url             = p.url();
    rp.max_retries     = 2;
    rp.backoff_seconds = 0.05;
    rp.timeout_seconds = 60;
    return rp;
}

// Server-side log p against a fresh in-process scoring pass. Both run the same llama.cpp source on
// the CPU, but with different batch shapes, so they agree closely (measured: 3e-4), not bit for bit.
constexpr double log_p_tolerance = 0.01;

}  // namespace

class remote_llama_server : public ::testing::Test {
protected:
    static void SetUpTestSuite() { server_ = start_llama_server().release(); }
    static void TearDownTestSuite() {
        delete server_;
        server_ = nullptr;
    }
    static loopback_process * server_;
};
loopback_process * remote_llama_server::server_ = nullptr;

TEST_F(remote_llama_server, tokenizes_like_the_in_process_model) {
    ASSERT_NE(server_, nullptr);
    llama_server_generator gen(params_for(*server_));
    // llama-server renders the GGUF's Jinja template (SmolLM2's adds a default system message);
    // the in-process model uses llama.cpp's built-in ChatML. Same tokenizer either way.
    const std::string text = gen.apply_chat_template("What is 7 * 8?");
    EXPECT_NE(text.find("What is 7 * 8?"), std::string::npos);
    EXPECT_EQ(gen.tokenize(text), test_model()->tokenize(text, true));
    EXPECT_EQ(gen.n_vocab(), test_model()->n_vocab());
}

TEST_F(remote_llama_server, temperature_one_log_p_matches_in_process_scores) {
    ASSERT_NE(server_, nullptr);
    llama_server_generator gen(params_for(*server_));
    power_sampler          sampler(test_model(), context_params{ 1 });
    double                 worst = 0.0;
    size_t                 n     = 0;
    // The second prompt draws emoji and other multi-byte characters, whose split tokens
    // llama-server reports no log-probabilities for: the backend rescores them.
    const std::vector<std::pair<const char *, uint64_t>> runs = { { "Name three fruits.", 1 },
                                                                  { "Name three fruits.", 2 },
                                                                  { "Repeat exactly: 🍎🍌🍇 日本語 ñandú", 2 } };
    for (const auto & [text, seed] : runs) {
        const auto             prompt = test_model()->tokenize(test_model()->format_chat(text), true);
        const generated_suffix s      = gen.generate(prompt, 24, 1.0, seed);
        ASSERT_FALSE(s.tokens.empty());
        EXPECT_TRUE(s.exact);
        EXPECT_EQ(s.log_q, s.log_p);
        const std::vector<double> local = sampler.score(prompt, s.tokens);
        ASSERT_EQ(local.size(), s.log_p.size());
        for (size_t i = 0; i < local.size(); ++i) {
            if (std::fabs(local[i] - s.log_p[i]) > log_p_tolerance) {
                std::printf("  token %zu (id %d): remote %.4f, in-process %.4f\n", i, s.tokens[i], s.log_p[i],
                            local[i]);
            }
            worst = std::max(worst, std::fabs(local[i] - s.log_p[i]));
            n += 1;
        }
    }
    std::printf("remote vs in-process log p: %zu tokens, max |difference| %.2e (tolerance %.2f)\n", n, worst,
                log_p_tolerance);
    RecordProperty("max_log_p_difference", std::to_string(worst));
    EXPECT_LT(worst, log_p_tolerance);
}

TEST_F(remote_llama_server, power_sampling_runs_the_chain_remotely) {
    ASSERT_NE(server_, nullptr);
    llama_server_generator gen(params_for(*server_));
    const auto             prompt = gen.tokenize(gen.apply_chat_template("What is 7 * 8?"));
    sampling_params        sp;
    sp.max_new_tokens    = 24;
    sp.block_size        = 8;
    sp.n_steps_per_block = 2;
    sp.seed              = 5;

    sp.temperature            = 1.0;  // proposals from p itself: exact with the sampled tokens' log p alone
    const remote_result exact = sample_remote(gen, prompt, sp);
    EXPECT_TRUE(exact.exact);
    sp.temperature             = 0.0;  // 1 / alpha: the normaliser from the top-20 log-probabilities
    const remote_result approx = sample_remote(gen, prompt, sp);
    EXPECT_FALSE(approx.exact);
    EXPECT_EQ(exact.max_log_q_error, 0.0);
    // Proposals resend the prompt and the kept prefix as token ids; llama-server's prompt cache
    // (cache_prompt) must serve most of them.
    const double reused = double(gen.n_context_tokens_cached()) / double(gen.n_context_tokens_sent());
    std::printf("prefix cache: %lld of %lld context tokens reused (%.0f%%)\n", (long long)gen.n_context_tokens_cached(),
                (long long)gen.n_context_tokens_sent(), 100 * reused);
    EXPECT_GT(reused, 0.5);
    std::printf("top-20 normaliser at temperature 1/4: each log q within %.2e nats\n", approx.max_log_q_error);
    EXPECT_LT(approx.max_log_q_error, 0.5);

    power_sampler sampler(test_model(), context_params{ 1 });
    for (const remote_result * r : { &exact, &approx }) {
        ASSERT_EQ(r->result.chains.size(), 1u);
        const sample_result & c = r->result.chains[0];
        EXPECT_NE(c.finish, finish_reason::cancelled);
        EXPECT_GE(c.tokens.size(), 1u);
        EXPECT_LE(c.tokens.size(), 24u);
        EXPECT_EQ(c.finish == finish_reason::eog, test_model()->is_eog(c.tokens.back()));
        EXPECT_GE(c.n_proposals, 2);
        EXPECT_GE(r->n_requests, 1 + c.n_proposals);
        // The chain's cached log p are the model's.
        const auto local = sampler.score(prompt, c.tokens);
        for (size_t i = 0; i < local.size(); ++i) EXPECT_NEAR(local[i], c.token_log_p[i], log_p_tolerance) << i;
    }
}

TEST_F(remote_llama_server, a_server_that_goes_away_is_a_clear_error) {
    ASSERT_NE(server_, nullptr);
    auto own = start_llama_server();
    ASSERT_NE(own, nullptr);
    remote_params rp = params_for(*own);
    rp.max_retries   = 2;
    llama_server_generator gen(rp);
    const auto             prompt = gen.tokenize("Hello");
    own->stop();
    try {
        sample_remote(gen, prompt, sampling_params{});
        FAIL() << "a sample came back from a stopped server";
    } catch (const error & e) {
        EXPECT_NE(std::string(e.what()).find("failed after 3 attempts"), std::string::npos) << e.what();
    }
}
