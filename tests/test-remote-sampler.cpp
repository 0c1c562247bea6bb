// The remote driver (sample_remote over a sequence_generator) against the enumerable toy target,
// and llama_server_generator's retry and error behaviour against a fake server on loopback.
#include "powersample/remote.h"
#include "toy-generator.h"
#include "toy-model.h"
#include "core/token-sampler.h"

#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <cmath>
#include <thread>

using namespace powersample;
using powersample::testing::power_target;
using powersample::testing::total_variation;
using powersample::testing::toy_generator;
using powersample::testing::toy_model;

namespace {

using distribution = std::map<std::vector<token_id>, double>;

const std::vector<token_id> prompt = { 0, 2 };

distribution remote_empirical(sequence_generator & gen, int32_t n_runs, int32_t n_chains) {
    distribution counts;
    double       n = 0;
    for (int32_t r = 0; r < n_runs; ++r) {
        sampling_params sp;
        sp.alpha                = 2.0;
        sp.block_size           = 3;
        sp.max_new_tokens       = 3;
        sp.n_steps_per_block    = 50;
        sp.n_chains             = n_chains;
        sp.seed                 = 500 + uint64_t(r);
        sp.record_trace         = false;
        const remote_result res = sample_remote(gen, prompt, sp);
        EXPECT_TRUE(res.exact);
        for (const auto & c : res.result.chains) {
            counts[c.tokens] += 1;
            n += 1;
        }
    }
    for (auto & kv : counts) kv.second /= n;
    return counts;
}

}  // namespace

// 3,200 samples over 40 states: sampling noise gives a TV near 0.025; the bound is 0.05.
TEST(remote_sampler, chain_over_whole_suffixes_matches_power_target_and_broken_ratio_does_not) {
    toy_model          lm(4, 3, 0.7, -1.0);
    const distribution target = power_target(lm.enumerate(prompt, 3), 2.0);
    toy_generator      exact(lm, false), broken(lm, true);
    const double       tv_exact  = total_variation(remote_empirical(exact, 8, 400), target);
    const double       tv_broken = total_variation(remote_empirical(broken, 8, 400), target);
    std::printf("remote TV exact %.4f, without proposal terms %.4f (bound 0.05)\n", tv_exact, tv_broken);
    EXPECT_LT(tv_exact, 0.05);
    EXPECT_GT(tv_broken, 0.05);
}

// The remote driver runs the engine's MH chain (src/core/methods/mh-chain.h), trace included: each entry
// says what was compared, and with record_suffixes holds the suffixes themselves.
TEST(remote_sampler, the_trace_is_the_engines) {
    toy_model       lm(4, 3, 0.7, -1.0);
    toy_generator   gen(lm, false);
    sampling_params sp;
    sp.alpha                = 2.0;
    sp.block_size           = 4;
    sp.max_new_tokens       = 8;
    sp.n_steps_per_block    = 6;
    sp.seed                 = 11;
    sp.record_suffixes      = true;
    const remote_result   r = sample_remote(gen, prompt, sp);
    const sample_result & c = r.result.chains[0];
    ASSERT_EQ(int32_t(c.trace.size()), c.n_proposals);
    ASSERT_GT(c.n_proposals, 0);
    int32_t accepted = 0;
    for (const step_record & s : c.trace) {
        EXPECT_EQ(int32_t(s.suffix_current.size()), s.len_current - s.position);
        EXPECT_EQ(int32_t(s.suffix_proposal.size()), s.len_proposal - s.position);
        EXPECT_EQ(s.n_tokens_proposed, s.len_proposal - s.position);
        EXPECT_FALSE(s.stopped_early);  // whole suffixes: nothing to stop
        accepted += s.accepted;
    }
    EXPECT_EQ(accepted, c.n_accepted);
    EXPECT_EQ(c.n_early_rejections, 0);
    EXPECT_DOUBLE_EQ(c.trace.back().log_p_after, c.log_p);
    // The last accepted proposal's suffix is where the final state ends.
    for (auto it = c.trace.rbegin(); it != c.trace.rend(); ++it) {
        if (!it->accepted) continue;
        const std::vector<token_id> tail(c.tokens.begin() + it->position, c.tokens.end());
        if (it->len_proposal == int32_t(c.tokens.size())) {
            EXPECT_EQ(tail, it->suffix_proposal);
        }
        break;
    }
}

TEST(remote_sampler, rejects_what_it_cannot_do_remotely) {
    toy_model       lm(4, 3, 0.7, -1.0);
    toy_generator   gen(lm, false);
    sampling_params sp;
    sp.top_k = 2;
    EXPECT_THROW(sample_remote(gen, prompt, sp), invalid_argument_error);
    sp = {};
    for (method m : { method::greedy, method::smc, method::sps, method::power_entropy, method::best_of_n }) {
        sp.method = m;
        EXPECT_THROW(sample_remote(gen, prompt, sp), invalid_argument_error) << method_name(m);
    }
    EXPECT_THROW(sample_remote(gen, {}, sampling_params{}), invalid_argument_error);
    // A server generates whole suffixes and would not end them at a stop string.
    sp      = {};
    sp.stop = { "ab" };
    try {
        sample_remote(gen, prompt, sp);
        ADD_FAILURE() << "stop accepted";
    } catch (const invalid_argument_error & e) {
        EXPECT_EQ(std::string(e.what()).rfind("stop: ", 0), 0u) << e.what();
    }
}

namespace {

// A fake llama-server on loopback: answers /completion with `failures` 500s first, then a
// two-token completion.
struct fake_server {
    httplib::Server                    svr;
    std::thread                        thread;
    int                                port = 0;
    std::atomic<int>                   calls{ 0 };
    int                                failures       = 0;
    bool                               drop_a_logprob = false;
    bool                               wrong_shape    = false;  // answer 200 with a body that lacks "tokens"
    std::vector<std::vector<token_id>> rescored_contexts;

    fake_server() {
        svr.Get("/v1/models", [](const httplib::Request &, httplib::Response & res) {
            res.set_content(R"({"data": [{"id": "fake", "meta": {"n_vocab": 10}}]})", "application/json");
        });
        svr.Post("/tokenize", [](const httplib::Request &, httplib::Response & res) {
            res.set_content(R"({"tokens": [1]})", "application/json");
        });
        svr.Post("/completion", [this](const httplib::Request & req, httplib::Response & res) {
            const auto body = nlohmann::json::parse(req.body);
            if (body.contains("logit_bias")) {
                // The forced rescoring step: the whole vocabulary's log-probabilities.
                rescored_contexts.push_back(body["prompt"].get<std::vector<token_id>>());
                nlohmann::json top = nlohmann::json::array();
                for (int v = 0; v < 10; ++v) top.push_back({ { "id", v }, { "logprob", -0.25 * v } });
                res.set_content(nlohmann::json{ { "tokens", { 1 } },
                                                { "stop_type", "limit" },
                                                { "completion_probabilities",
                                                  { { { "id", 1 }, { "logprob", -0.25 }, { "top_logprobs", top } } } } }
                                    .dump(),
                                "application/json");
                return;
            }
            if (calls++ < failures) {
                res.status = 500;
                res.set_content("{\"error\":\"boom\"}", "application/json");
                return;
            }
            if (wrong_shape) {
                res.set_content(R"({"content": "hi", "stop_type": "limit"})", "application/json");
                return;
            }
            nlohmann::json probs = nlohmann::json::array();
            probs.push_back({ { "id", 5 }, { "logprob", -0.5 }, { "top_logprobs", nlohmann::json::array() } });
            if (!drop_a_logprob)
                probs.push_back({ { "id", 6 }, { "logprob", -1.5 }, { "top_logprobs", nlohmann::json::array() } });
            res.set_content(nlohmann::json{ { "tokens", { 5, 6 } },
                                            { "stop_type", "limit" },
                                            { "completion_probabilities", probs } }
                                .dump(),
                            "application/json");
        });
        port   = svr.bind_to_any_port("127.0.0.1");
        thread = std::thread([this] { svr.listen_after_bind(); });
        while (!svr.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    ~fake_server() {
        svr.stop();
        thread.join();
    }
    remote_params params() const {
        remote_params p;
        p.url             = "http://127.0.0.1:" + std::to_string(port);
        p.max_retries     = 2;
        p.backoff_seconds = 0.01;
        p.timeout_seconds = 5;
        return p;
    }
};

}  // namespace

TEST(llama_server_generator, retries_5xx_then_succeeds_exactly_at_temperature_one) {
    fake_server fake;
    fake.failures = 2;
    llama_server_generator gen(fake.params());
    const generated_suffix s = gen.generate({ 1, 2, 3 }, 2, 1.0, 9);
    EXPECT_EQ(fake.calls.load(), 3);
    ASSERT_EQ(s.tokens, (std::vector<token_id>{ 5, 6 }));
    EXPECT_EQ(s.log_p, (std::vector<double>{ -0.5, -1.5 }));
    EXPECT_EQ(s.log_q, s.log_p);
    EXPECT_TRUE(s.exact);
    EXPECT_FALSE(s.eog);
}

TEST(llama_server_generator, an_answer_of_the_wrong_shape_is_a_powersample_error) {
    fake_server fake;
    fake.wrong_shape = true;
    llama_server_generator gen(fake.params());
    try {
        gen.generate({ 1, 2 }, 2, 1.0, 0);
        FAIL() << "no error";
    } catch (const powersample::error & e) {
        EXPECT_NE(std::string(e.what()).find("unexpected answer from llama-server's /completion"), std::string::npos)
            << e.what();
    }
    EXPECT_EQ(fake.calls.load(), 1);  // not retried: the server answered
}

TEST(llama_server_generator, gives_up_after_bounded_retries_with_a_clear_error) {
    fake_server fake;
    fake.failures = 100;
    llama_server_generator gen(fake.params());
    try {
        gen.generate({ 1 }, 2, 1.0, 9);
        FAIL() << "no error";
    } catch (const error & e) {
        EXPECT_NE(std::string(e.what()).find("failed after 3 attempts"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("HTTP 500"), std::string::npos) << e.what();
    }
    EXPECT_EQ(fake.calls.load(), 3);
}

TEST(llama_server_generator, a_server_that_is_down_is_an_error_not_a_sample) {
    int port = 0;
    {
        fake_server fake;  // take a free port, then close it
        port = fake.port;
    }
    remote_params p;
    p.url             = "http://127.0.0.1:" + std::to_string(port);
    p.max_retries     = 1;
    p.backoff_seconds = 0.01;
    llama_server_generator gen(p);
    toy_model              lm(4, 3, 0.7, -1.0);
    EXPECT_THROW(sample_remote(gen, prompt, sampling_params{}), error);
}

TEST(llama_server_generator, missing_log_probabilities_are_scored_again) {
    // llama-server drops the entry of a token that ends inside a UTF-8 character: here token 6.
    fake_server fake;
    fake.drop_a_logprob = true;
    llama_server_generator gen(fake.params());
    const generated_suffix s = gen.generate({ 1 }, 2, 1.0, 9);
    ASSERT_EQ(fake.rescored_contexts.size(), 1u);
    EXPECT_EQ(fake.rescored_contexts[0], (std::vector<token_id>{ 1, 5 }));
    EXPECT_EQ(s.log_p, (std::vector<double>{ -0.5, -1.5 }));  // token 6: -0.25 * 6 from the full list
    EXPECT_TRUE(s.exact);
}

TEST(llama_server_generator, rejects_bad_parameters) {
    remote_params p;
    EXPECT_THROW(llama_server_generator{ p }, invalid_argument_error);
    p.url = "ftp://x";
    EXPECT_THROW(llama_server_generator{ p }, invalid_argument_error);
    p.url          = "http://127.0.0.1:1";
    p.top_logprobs = 0;
    EXPECT_THROW(llama_server_generator{ p }, invalid_argument_error);
}
