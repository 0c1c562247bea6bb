// vllm_generator against a fake vLLM on loopback: cpp-httplib answering /v1/models,
// /v1/completions, /tokenize and /detokenize in vLLM's documented response format (logprobs with
// "token_id:N" strings and top_logprobs dicts, finish_reason, stop_reason), its tokens drawn from
// the exact toy model. No real vLLM runs here: the fake stands in for it.
#include "powersample/remote.h"
#include "toy-generator.h"
#include "toy-model.h"
#include "core/token-sampler.h"

#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <mutex>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

using namespace powersample;
using powersample::testing::power_target;
using powersample::testing::total_variation;
using powersample::testing::toy_generator;
using powersample::testing::toy_model;
using json = nlohmann::json;

namespace {

using distribution = std::map<std::vector<token_id>, double>;

const std::vector<token_id> prompt = { 0, 2 };

// log q(v | history) at temperature t, over the whole toy vocabulary.
std::vector<double> toy_log_q(const toy_model & lm, const std::vector<token_id> & history, double temperature) {
    const auto lp = lm.log_probs_after(history);
    double     mx = -INFINITY;
    for (double v : lp) mx = std::max(mx, v / temperature);
    double z = 0.0;
    for (double v : lp) z += std::exp(v / temperature - mx);
    std::vector<double> out;
    for (double v : lp) out.push_back(v / temperature - mx - std::log(z));
    return out;
}

std::string token_string(token_id t) { return "token_id:" + std::to_string(t); }

// A fake vLLM serving the toy model as "toy". /v1/completions draws the suffix as toy_generator
// does (same seed, same tokens) at the request's temperature and reports log-probabilities as
// vLLM's default --logprobs-mode raw_logprobs does: log p at temperature 1, the top k, the sampled
// token added when outside them. With forced_temperature set it samples at that temperature
// whatever the request says, as vLLM does with the model's generation_config for a field the
// request leaves out: the broken control.
struct fake_vllm {
    const toy_model & lm;
    httplib::Server   svr;
    std::thread       thread;
    int               port = 0;

    std::mutex                  mutex;                   // guards everything below
    int                         failures           = 0;  // answer this many 500s first
    int                         completion_calls   = 0;
    int                         model_list_calls   = 0;
    double                      forced_temperature = 0.0;  // 0: the request's
    std::string                 raw_answer;                // when set: answered as is, instead of a completion
    std::function<void(json &)> corrupt;                   // applied to the completion before it is sent
    json                        last_request;
    std::string                 last_authorization;
    std::vector<json>           tokenize_requests;

    explicit fake_vllm(const toy_model & model) : lm(model) {
        svr.Get("/v1/models", [this](const httplib::Request &, httplib::Response & res) {
            std::lock_guard<std::mutex> lock(mutex);
            model_list_calls += 1;
            res.set_content(R"({"object": "list", "data": [{"id": "toy", "object": "model", "owned_by": "vllm",
                                 "root": "toy", "parent": null, "max_model_len": 64}]})",
                            "application/json");
        });
        svr.Post("/tokenize", [this](const httplib::Request & req, httplib::Response & res) {
            std::lock_guard<std::mutex> lock(mutex);
            tokenize_requests.push_back(json::parse(req.body));
            res.set_content(json{ { "count", prompt.size() }, { "max_model_len", 64 }, { "tokens", prompt } }.dump(),
                            "application/json");
        });
        svr.Post("/detokenize", [](const httplib::Request & req, httplib::Response & res) {
            const json  body = json::parse(req.body);
            std::string text;
            for (token_id t : body.at("tokens")) text += "<" + std::to_string(t) + ">";
            res.set_content(json{ { "prompt", text } }.dump(), "application/json");
        });
        svr.Post("/v1/completions", [this](const httplib::Request & req, httplib::Response & res) {
            std::lock_guard<std::mutex> lock(mutex);
            completion_calls += 1;
            last_request       = json::parse(req.body);
            last_authorization = req.get_header_value("Authorization");
            if (completion_calls <= failures) {
                res.status = 500;
                res.set_content(R"({"object": "error", "message": "boom", "code": 500})", "application/json");
                return;
            }
            if (last_request.value("model", "") != "toy") {
                res.status = 404;
                res.set_content(R"({"object": "error", "message": "The model does not exist.", "code": 404})",
                                "application/json");
                return;
            }
            if (!raw_answer.empty()) {
                res.set_content(raw_answer, "application/json");
                return;
            }
            json answer = complete(last_request);
            if (corrupt) corrupt(answer);
            res.set_content(answer.dump(), "application/json");
        });
        // As vLLM's uvicorn: the client's connection stays open, and no Nagle delay on it.
        svr.set_keep_alive_max_count(1000000);
        svr.set_tcp_nodelay(true);
        port   = svr.bind_to_any_port("127.0.0.1");
        thread = std::thread([this] { svr.listen_after_bind(); });
        while (!svr.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    ~fake_vllm() {
        svr.stop();
        thread.join();
    }

    json complete(const json & request) const {
        const std::vector<token_id> context = request.at("prompt").get<std::vector<token_id>>();
        const double                temperature =
            forced_temperature > 0 ? forced_temperature : request.at("temperature").get<double>();
        const size_t           k = request.at("logprobs").get<size_t>();
        toy_generator          sampler(lm, false);
        const generated_suffix drawn  = sampler.generate(context, request.at("max_tokens").get<int32_t>(), temperature,
                                                         request.at("seed").get<uint64_t>());
        json                   tokens = json::array(), token_logprobs = json::array(), top_logprobs = json::array();
        std::vector<token_id>  history = context;
        for (token_id t : drawn.tokens) {
            const auto lp = lm.log_probs_after(history);
            tokens.push_back(token_string(t));
            token_logprobs.push_back(lp[size_t(t)]);
            std::vector<token_id> order(lp.size());
            for (size_t v = 0; v < order.size(); ++v) order[v] = token_id(v);
            std::sort(order.begin(), order.end(),
                      [&](token_id a, token_id b) { return lp[size_t(a)] > lp[size_t(b)]; });
            json top = json::object();
            for (size_t r = 0; r < order.size() && r < k; ++r) top[token_string(order[r])] = lp[size_t(order[r])];
            top[token_string(t)] = lp[size_t(t)];
            top_logprobs.push_back(top);
            history.push_back(t);
        }
        const std::string finish   = drawn.eog ? "stop" : "length";
        const size_t      n_prompt = context.size();
        const size_t      n_out    = tokens.size();
        return {
            { "id", "cmpl-fake" },
            { "object", "text_completion" },
            { "created", 0 },
            { "model", "toy" },
            { "choices", json::array({ { { "index", 0 },
                                         { "text", "..." },
                                         { "logprobs",
                                           { { "text_offset", std::vector<int>(n_out, 0) },
                                             { "token_logprobs", token_logprobs },
                                             { "tokens", tokens },
                                             { "top_logprobs", top_logprobs } } },
                                         { "finish_reason", finish },
                                         { "stop_reason", nullptr },
                                         { "prompt_logprobs", nullptr } } }) },
            { "usage",
              { { "prompt_tokens", n_prompt },
                { "total_tokens", n_prompt + n_out },
                { "completion_tokens", n_out },
                { "prompt_tokens_details", nullptr } } },
        };
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

struct chain_statistics {
    distribution                       empirical;
    std::vector<std::vector<token_id>> chains;  // in order, to compare runs chain by chain
    bool                               exact           = true;
    double                             max_log_q_error = 0.0;
    size_t                             n_log_p_checked = 0;
    size_t                             n_log_p_wrong   = 0;
};

// The remote_sampler test's setting: alpha 2, one block of 3 tokens, over the 40 completions of the
// 4-token toy model; 20 MH steps (50 there: a request over HTTP costs ~0.1 ms here, and 20 steps
// measured TV 0.02 in process). Every returned log p is compared with the toy model's, exactly.
chain_statistics run_chains(const toy_model & lm, sequence_generator & gen, double temperature, int32_t n_chains) {
    chain_statistics out;
    double           n = 0;
    for (int32_t r = 0; r < 8; ++r) {
        sampling_params sp;
        sp.alpha                = 2.0;
        sp.block_size           = 3;
        sp.max_new_tokens       = 3;
        sp.n_steps_per_block    = 20;
        sp.n_chains             = n_chains;
        sp.temperature          = temperature;
        sp.seed                 = 500 + uint64_t(r);
        sp.record_trace         = false;
        const remote_result res = sample_remote(gen, prompt, sp);
        out.exact               = out.exact && res.exact;
        out.max_log_q_error     = std::max(out.max_log_q_error, res.max_log_q_error);
        for (const auto & c : res.result.chains) {
            out.empirical[c.tokens] += 1;
            out.chains.push_back(c.tokens);
            n += 1;
            std::vector<token_id> history = prompt;
            for (size_t i = 0; i < c.tokens.size(); ++i) {
                out.n_log_p_checked += 1;
                if (c.token_log_p[i] != lm.log_probs_after(history)[size_t(c.tokens[i])]) out.n_log_p_wrong += 1;
                history.push_back(c.tokens[i]);
            }
        }
    }
    for (auto & kv : out.empirical) kv.second /= n;
    return out;
}

}  // namespace

// 3,200 samples over 40 states: sampling noise gives a TV near 0.025; the bound is 0.05 (as in
// test-remote-sampler.cpp). The fake draws as toy_generator does, so the chains over HTTP must
// also be the in-process chains, one for one. The control: a server that samples at another
// temperature than the client accounts for (800 samples; its TV is near 0.27).
TEST(remote_vllm, chain_over_http_matches_power_target_and_the_in_process_chain) {
    toy_model          lm(4, 3, 0.7, -1.0);
    const distribution target = power_target(lm.enumerate(prompt, 3), 2.0);
    fake_vllm          fake(lm);
    vllm_generator     gen(fake.params());

    const chain_statistics http = run_chains(lm, gen, 1.0, 400);
    toy_generator          in_process_gen(lm, false);
    const chain_statistics in_process = run_chains(lm, in_process_gen, 1.0, 400);
    const double           tv         = total_variation(http.empirical, target);
    EXPECT_TRUE(http.exact);
    EXPECT_EQ(http.max_log_q_error, 0.0);
    EXPECT_EQ(http.n_log_p_checked, in_process.n_log_p_checked);
    EXPECT_EQ(http.n_log_p_wrong, 0u);
    EXPECT_TRUE(http.chains == in_process.chains);
    EXPECT_LT(tv, 0.05);

    {
        std::lock_guard<std::mutex> lock(fake.mutex);
        fake.forced_temperature = 0.5;
    }
    const chain_statistics broken    = run_chains(lm, gen, 1.0, 100);
    const double           tv_broken = total_variation(broken.empirical, target);
    EXPECT_GT(tv_broken, 0.05);
    std::printf(
        "vLLM fake: TV %.4f (bound 0.05; %zu log p compared with the toy model's, %zu differ), server at "
        "another temperature %.4f\n",
        tv, http.n_log_p_checked, http.n_log_p_wrong, tv_broken);
}

// At temperature 1/alpha with K >= vocabulary the estimated normaliser is the whole one: the chains
// over HTTP are the in-process chains (which test-remote-sampler.cpp checks against the target).
TEST(remote_vllm, full_vocabulary_normaliser_gives_the_in_process_chain_at_temperature_one_over_alpha) {
    toy_model     lm(4, 3, 0.7, -1.0);
    fake_vllm     fake(lm);
    remote_params p = fake.params();
    p.top_logprobs  = 4;
    vllm_generator         gen(p);
    toy_generator          in_process_gen(lm, false);
    const chain_statistics http       = run_chains(lm, gen, 0.5, 25);
    const chain_statistics in_process = run_chains(lm, in_process_gen, 0.5, 25);
    EXPECT_TRUE(http.exact);
    EXPECT_LT(http.max_log_q_error, 1e-9);
    EXPECT_EQ(http.n_log_p_wrong, 0u);
    EXPECT_TRUE(http.chains == in_process.chains);
}

TEST(remote_vllm, request_carries_token_ids_logprobs_temperature_and_seed) {
    toy_model     lm(4, 3, 0.7, -1.0);
    fake_vllm     fake(lm);
    remote_params p = fake.params();
    p.api_key       = "sekret";
    p.top_logprobs  = 3;
    vllm_generator              gen(p);
    const std::vector<token_id> context = { 0, 2, 1 };
    const generated_suffix      s       = gen.generate(context, 5, 1.0, 1234);
    json                        req;
    {
        std::lock_guard<std::mutex> lock(fake.mutex);
        req = fake.last_request;
        EXPECT_EQ(fake.last_authorization, "Bearer sekret");
        EXPECT_EQ(fake.model_list_calls, 1);
    }
    EXPECT_EQ(req["model"], "toy");
    EXPECT_EQ(req["prompt"], json(context));
    EXPECT_EQ(req["max_tokens"], 5);
    EXPECT_EQ(req["temperature"], 1.0);
    EXPECT_EQ(req["seed"], 1234);
    EXPECT_EQ(req["n"], 1);
    EXPECT_EQ(req["logprobs"], 1);
    EXPECT_EQ(req["return_tokens_as_token_ids"], true);
    EXPECT_EQ(req["skip_special_tokens"], false);
    EXPECT_EQ(req["top_p"], 1.0);
    EXPECT_EQ(req["top_k"], -1);  // "off": a missing field would come from the model's generation_config
    EXPECT_EQ(req["min_p"], 0.0);
    EXPECT_EQ(req["stream"], false);
    EXPECT_FALSE(req.contains("stop"));
    EXPECT_EQ(s.log_q, s.log_p);

    gen.generate(context, 2, 0.25, 7);
    {
        std::lock_guard<std::mutex> lock(fake.mutex);
        req = fake.last_request;
        EXPECT_EQ(fake.model_list_calls, 1);  // asked once
    }
    EXPECT_EQ(req["logprobs"], 3);
    EXPECT_EQ(req["temperature"], 0.25);
    EXPECT_EQ(req["seed"], 7);

    // A model name given in the params is sent as is; an unknown one is a 404, not retried.
    p.model = "other";
    vllm_generator named(p);
    try {
        named.generate(context, 2, 1.0, 7);
        FAIL() << "no error";
    } catch (const error & e) {
        EXPECT_NE(std::string(e.what()).find("HTTP 404"), std::string::npos) << e.what();
    }
    std::lock_guard<std::mutex> lock(fake.mutex);
    EXPECT_EQ(fake.last_request["model"], "other");
    EXPECT_EQ(fake.model_list_calls, 1);
    EXPECT_EQ(fake.completion_calls, 3);
}

TEST(remote_vllm, tokenize_chat_template_and_detokenize) {
    toy_model      lm(4, 3, 0.7, -1.0);
    fake_vllm      fake(lm);
    vllm_generator gen(fake.params());
    EXPECT_EQ(gen.model(), "toy");
    EXPECT_EQ(gen.n_vocab(), 0);
    EXPECT_EQ(gen.tokenize("hi"), prompt);
    EXPECT_EQ(gen.tokenize_chat("hi", "be brief"), prompt);
    EXPECT_EQ(gen.detokenize({ 1, 3 }), "<1><3>");
    EXPECT_EQ(gen.detokenize({}), "");
    std::lock_guard<std::mutex> lock(fake.mutex);
    ASSERT_EQ(fake.tokenize_requests.size(), 2u);
    EXPECT_EQ(fake.tokenize_requests[0]["prompt"], "hi");
    EXPECT_EQ(fake.tokenize_requests[0]["model"], "toy");
    const json & chat = fake.tokenize_requests[1];
    EXPECT_EQ(chat["add_generation_prompt"], true);
    ASSERT_EQ(chat["messages"].size(), 2u);
    EXPECT_EQ(chat["messages"][0]["role"], "system");
    EXPECT_EQ(chat["messages"][1]["content"], "hi");
}

// With K < vocabulary the normaliser misses mass: approximate, and the reported bound holds the
// true error; with K >= vocabulary every log q is the true one.
TEST(remote_vllm, top_k_normaliser_is_approximate_with_a_bound_unless_it_covers_the_vocabulary) {
    toy_model    lm(4, 3, 0.7, -1.0);
    fake_vllm    fake(lm);
    const double t           = 0.5;
    double       worst_error = 0.0;
    for (int32_t k : { 1, 2, 4, 6 }) {
        remote_params p = fake.params();
        p.top_logprobs  = k;
        vllm_generator gen(p);
        for (uint64_t seed = 1; seed <= 20; ++seed) {
            const generated_suffix s       = gen.generate(prompt, 3, t, seed);
            std::vector<token_id>  history = prompt;
            double                 err     = 0.0;
            for (size_t i = 0; i < s.tokens.size(); ++i) {
                const double true_log_q = toy_log_q(lm, history, t)[size_t(s.tokens[i])];
                EXPECT_EQ(s.log_p[i], lm.log_probs_after(history)[size_t(s.tokens[i])]);
                EXPECT_GE(s.log_q[i], true_log_q - 1e-12);  // a partial normaliser is too small
                err = std::max(err, s.log_q[i] - true_log_q);
                history.push_back(s.tokens[i]);
            }
            if (k < 4) {
                EXPECT_FALSE(s.exact) << "K " << k;
                EXPECT_GT(s.max_log_q_error, 0.0);
                EXPECT_TRUE(std::isfinite(s.max_log_q_error));
                EXPECT_LE(err, s.max_log_q_error + 1e-12) << "K " << k << " seed " << seed;
                worst_error = std::max(worst_error, s.max_log_q_error);
            } else {
                EXPECT_TRUE(s.exact) << "K " << k;
                EXPECT_LT(s.max_log_q_error, 1e-9);
                EXPECT_LT(err, 1e-12);
            }
        }
    }
    std::printf("vLLM fake, t = 0.5: largest reported bound with K < vocabulary %.3g nats\n", worst_error);

    // The driver carries the flag and the bound to the result.
    remote_params p = fake.params();
    p.top_logprobs  = 2;
    vllm_generator  gen(p);
    sampling_params sp;
    sp.alpha              = 2.0;
    sp.block_size         = 3;
    sp.max_new_tokens     = 3;
    sp.n_steps_per_block  = 5;
    sp.seed               = 3;
    const remote_result r = sample_remote(gen, prompt, sp);
    EXPECT_FALSE(r.exact);
    EXPECT_GT(r.max_log_q_error, 0.0);
}

TEST(remote_vllm, retries_5xx_then_succeeds) {
    toy_model lm(4, 3, 0.7, -1.0);
    fake_vllm fake(lm);
    {
        std::lock_guard<std::mutex> lock(fake.mutex);
        fake.failures = 2;
    }
    vllm_generator         gen(fake.params());
    const generated_suffix s = gen.generate(prompt, 3, 1.0, 9);
    EXPECT_FALSE(s.tokens.empty());
    std::lock_guard<std::mutex> lock(fake.mutex);
    EXPECT_EQ(fake.completion_calls, 3);
}

TEST(remote_vllm, gives_up_after_bounded_retries_with_a_clear_error) {
    toy_model lm(4, 3, 0.7, -1.0);
    fake_vllm fake(lm);
    {
        std::lock_guard<std::mutex> lock(fake.mutex);
        fake.failures = 100;
    }
    vllm_generator gen(fake.params());
    try {
        gen.generate(prompt, 3, 1.0, 9);
        FAIL() << "no error";
    } catch (const error & e) {
        EXPECT_NE(std::string(e.what()).find("failed after 3 attempts"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("HTTP 500"), std::string::npos) << e.what();
    }
    std::lock_guard<std::mutex> lock(fake.mutex);
    EXPECT_EQ(fake.completion_calls, 3);
}

TEST(remote_vllm, a_server_that_is_down_is_an_error_not_a_sample) {
    toy_model lm(4, 3, 0.7, -1.0);
    int       port = 0;
    {
        fake_vllm fake(lm);  // take a free port, then close it
        port = fake.port;
    }
    remote_params p;
    p.url             = "http://127.0.0.1:" + std::to_string(port);
    p.model           = "toy";
    p.max_retries     = 1;
    p.backoff_seconds = 0.01;
    vllm_generator gen(p);
    try {
        sample_remote(gen, prompt, sampling_params{});
        FAIL() << "no error";
    } catch (const error & e) {
        EXPECT_NE(std::string(e.what()).find("failed after 2 attempts"), std::string::npos) << e.what();
    }
}

// Each corruption of the answer must end in `error` naming the problem, never a crash or a suffix.
TEST(remote_vllm, malformed_answers_are_clear_errors) {
    toy_model lm(4, 3, 0.7, -1.0);
    struct corruption {
        const char *                name;
        double                      temperature;
        std::string                 raw;
        std::function<void(json &)> edit;
        const char *                needle;
    };
    auto                          logprobs = [](json & a) -> json & { return a["choices"][0]["logprobs"]; };
    const std::vector<corruption> cases    = {
           { "not JSON", 1.0, "{\"choices\": [", nullptr, "not JSON" },
           { "not an object", 1.0, "[1, 2]", nullptr, "no choices" },
           { "no choices", 1.0, R"({"choices": []})", nullptr, "no choices" },
           { "logprobs null", 1.0, "", [&](json & a) { logprobs(a) = nullptr; }, "no logprobs" },
        { "logprobs absent", 1.0, "", [&](json & a) { a["choices"][0].erase("logprobs"); }, "no logprobs" },
        { "tokens absent", 1.0, "", [&](json & a) { logprobs(a).erase("tokens"); }, "logprobs.tokens" },
        { "token text", 1.0, "", [&](json & a) { logprobs(a)["tokens"][0]= "hello"; }, "token_id:N" },
        { "token number", 1.0, "", [&](json & a) { logprobs(a)["tokens"][0]= 3; }, "token_id:N" },
        { "token id junk", 1.0, "", [&](json & a) { logprobs(a)["tokens"][0]= "token_id:1x"; }, "token_id:N" },
        { "token id negative", 1.0, "", [&](json & a) { logprobs(a)["tokens"][0]= "token_id:-1"; }, "token_id:N" },
        { "token id too big", 1.0, "", [&](json & a) { logprobs(a)["tokens"][0]= "token_id:99999999999"; },
          "token_id:N" },
        { "logprob string", 1.0, "", [&](json & a) { logprobs(a)["token_logprobs"][0]= "x"; }, "not a finite" },
        { "logprob null", 1.0, "", [&](json & a) { logprobs(a)["token_logprobs"][0]= nullptr; }, "not a finite" },
        { "one logprob short", 1.0, "", [&](json & a) { logprobs(a)["token_logprobs"].erase(0); },
          "log-probabilities" },
        { "top_logprobs absent", 0.5, "", [&](json & a) { logprobs(a).erase("top_logprobs"); }, "top_logprobs" },
        { "top_logprobs key", 0.5, "",
          [&](json & a) {
              logprobs(a)["top_logprobs"][0]= { { "hello", -0.1 } };
          },
          "token_id:N" },
        { "top_logprobs empty", 0.5, "", [&](json & a) { logprobs(a)["top_logprobs"][0]= json::object(); },
          "no top_logprobs" },
        { "finish abort", 1.0, "", [&](json & a) { a["choices"][0]["finish_reason"]= "abort"; }, "finish_reason" },
        { "finish null", 1.0, "", [&](json & a) { a["choices"][0]["finish_reason"]= nullptr; }, "finish_reason" },
        { "stop string", 1.0, "",
          [&](json & a) {
              a["choices"][0]["finish_reason"]= "stop";
              a["choices"][0]["stop_reason"]= "###";
          },
          "stop string" },
        { "EOG token dropped", 1.0, "",
          [&](json & a) {
              a["choices"][0]["finish_reason"]= "stop";
              a["choices"][0]["stop_reason"]= 3;
              logprobs(a)["tokens"].back() = "token_id:0";
          },
          "log-probability is missing" },
        { "stop without tokens", 1.0, "",
          [&](json & a) {
              a["choices"][0]["finish_reason"]= "stop";
              logprobs(a)                  = { { "tokens", json::array() }, { "token_logprobs", json::array() } };
              a["usage"]["completion_tokens"]= 0;
          },
          "no token" },
        { "usage disagrees", 1.0, "", [&](json & a) { a["usage"]["completion_tokens"]= 99; }, "listed" },
        { "too many tokens", 1.0, "",
          [&](json & a) {
              for (int i = 0; i < 5; ++i) {
                  logprobs(a)["tokens"].push_back("token_id:0");
                  logprobs(a)["token_logprobs"].push_back(-1.0);
              }
              a["usage"].erase("completion_tokens");
          },
          "at most" },
    };
    for (const corruption & c : cases) {
        fake_vllm fake(lm);
        {
            std::lock_guard<std::mutex> lock(fake.mutex);
            fake.raw_answer = c.raw;
            fake.corrupt    = c.edit;
        }
        vllm_generator gen(fake.params());
        try {
            gen.generate(prompt, 3, c.temperature, 11);
            ADD_FAILURE() << c.name << ": no error";
        } catch (const error & e) {
            EXPECT_NE(std::string(e.what()).find(c.needle), std::string::npos) << c.name << ": " << e.what();
        }
        std::lock_guard<std::mutex> lock(fake.mutex);
        EXPECT_EQ(fake.completion_calls, 1) << c.name << ": a malformed 200 is not retried";
    }
    // Through the driver: no chain comes back.
    fake_vllm fake(lm);
    {
        std::lock_guard<std::mutex> lock(fake.mutex);
        fake.corrupt = [&](json & a) { logprobs(a)["tokens"][0] = "hello"; };
    }
    vllm_generator gen(fake.params());
    EXPECT_THROW(sample_remote(gen, prompt, sampling_params{}), error);
}

TEST(remote_vllm, rejects_bad_parameters) {
    remote_params p;
    EXPECT_THROW(vllm_generator{ p }, invalid_argument_error);
    p.url = "https://x";
    EXPECT_THROW(vllm_generator{ p }, invalid_argument_error);
    p.url          = "http://127.0.0.1:1";
    p.top_logprobs = 0;
    EXPECT_THROW(vllm_generator{ p }, invalid_argument_error);
    p.top_logprobs = 5;
    p.model        = "m";
    vllm_generator gen(p);
    EXPECT_THROW(gen.generate(prompt, 0, 1.0, 1), invalid_argument_error);
    EXPECT_THROW(gen.generate(prompt, 3, 1e-6, 1), invalid_argument_error);  // vLLM would decode greedily
    EXPECT_THROW(gen.generate(prompt, 3, NAN, 1), invalid_argument_error);
}

#ifdef POWERSAMPLE_CLI
#include "run-command.h"

namespace {

run_result run_cli(const std::string & args) { return run_command(std::string(POWERSAMPLE_CLI) + " " + args); }

}  // namespace

TEST(remote_cli, remote_api_is_checked_and_named) {
    for (const std::string args :
         { "-p hi --remote http://127.0.0.1:1 --remote-api bogus", "-p hi --remote-api bogus" }) {
        const run_result r = run_cli(args);
        EXPECT_EQ(r.exit_code, 1) << args << "\n" << r.err;
        EXPECT_NE(r.err.find("--remote-api"), std::string::npos) << r.err;
        EXPECT_NE(r.err.find("bogus"), std::string::npos) << r.err;
        EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
        EXPECT_TRUE(r.out.empty()) << r.out;
    }
    const run_result r = run_cli("-p hi --remote-api vllm");
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.err.find("need --remote"), std::string::npos) << r.err;
    const run_result m = run_cli("-p hi --remote http://127.0.0.1:1 --remote-model x");
    EXPECT_EQ(m.exit_code, 1);
    EXPECT_NE(m.err.find("--remote-model"), std::string::npos) << m.err;
}

TEST(remote_cli, power_sampling_runs_against_the_fake_vllm) {
    toy_model         lm(4, 3, 0.7, -1.0);
    fake_vllm         fake(lm);
    const std::string url    = fake.params().url;
    const std::string common = " --remote-api vllm -p hi -n 3 --block-size 3 --steps 4 -s 1 --json -q";

    const run_result exact = run_cli("--remote " + url + common + " --temp 1");
    ASSERT_EQ(exact.exit_code, 0) << exact.err;
    // The local --json shape (runs[].params, runs[].chains[]), the remote facts under "remote".
    const json   out = json::parse(exact.out);
    const json & j   = out["remote"];
    EXPECT_EQ(j["api"], "vllm");
    EXPECT_EQ(j["url"], url);
    EXPECT_EQ(j["exact"], true);
    EXPECT_EQ(j["max_log_q_error"], 0.0);
    EXPECT_EQ(j["n_requests"], 5);                      // the block, then 4 MH steps
    EXPECT_TRUE(j["context_tokens_cached"].is_null());  // the fake does not report prefix caching
    ASSERT_EQ(out["runs"].size(), 1u);
    const json & run = out["runs"][0];
    EXPECT_EQ(run["params"]["early_rejection"], false);  // every proposal is one whole request (docs/remote.md)
    EXPECT_EQ(run["params"]["steps"], 4);
    ASSERT_EQ(run["chains"].size(), 1u);
    const json & c = run["chains"][0];
    EXPECT_EQ(c["n_proposals"], 4);
    EXPECT_EQ(c["finish"], "length");
    std::vector<token_id> history = prompt;
    for (size_t i = 0; i < c["tokens"].size(); ++i) {
        const token_id t = c["tokens"][i].get<token_id>();
        EXPECT_EQ(c["token_log_p"][i].get<double>(), lm.log_probs_after(history)[size_t(t)]);
        history.push_back(t);
    }
    {
        std::lock_guard<std::mutex> lock(fake.mutex);
        ASSERT_FALSE(fake.tokenize_requests.empty());
        EXPECT_TRUE(fake.tokenize_requests.back().contains("messages"));  // chat template by default
    }

    const run_result approx = run_cli("--remote " + url + common + " --raw --remote-top-logprobs 2");
    ASSERT_EQ(approx.exit_code, 0) << approx.err;
    const json a = json::parse(approx.out);
    EXPECT_EQ(a["remote"]["exact"], false);
    EXPECT_GT(a["remote"]["max_log_q_error"].get<double>(), 0.0);
    EXPECT_EQ(a["runs"][0]["params"]["temperature"], 0.25);  // 1 / alpha
    {
        std::lock_guard<std::mutex> lock(fake.mutex);
        EXPECT_EQ(fake.tokenize_requests.back()["prompt"], "hi");  // --raw
        EXPECT_EQ(fake.last_request["logprobs"], 2);
    }

    // A server that answers garbage: exit 2, nothing on stdout.
    {
        std::lock_guard<std::mutex> lock(fake.mutex);
        fake.raw_answer = "{\"choices\": []}";
    }
    const run_result bad = run_cli("--remote " + url + common);
    EXPECT_EQ(bad.exit_code, 2) << bad.err;
    EXPECT_TRUE(bad.out.empty()) << bad.out;
    EXPECT_NE(bad.err.find("no choices"), std::string::npos) << bad.err;
}
#endif
