// power-sampling-server's request parsing: fields, types, limits, defaults (no model, no HTTP).
#include "../tools/server/server-request.h"

#include <gtest/gtest.h>

using psserver::parse_request;
using psserver::request_error;
using psserver::request_limits;

namespace {

// The field a rejected body is blamed on.
std::string rejected_field(const std::string & body, bool chat = false, const request_limits & limits = {}) {
    try {
        parse_request(body, chat, limits, 1000);
    } catch (const request_error & e) {
        EXPECT_EQ(e.status(), 400);
        EXPECT_NE(std::string(e.what()).find(e.field()), std::string::npos) << e.what();
        return e.field();
    }
    return "(accepted)";
}

}  // namespace

TEST(server_request, maps_fields_onto_sampling_params) {
    const auto r = parse_request(R"({"prompt": "hi", "max_tokens": 32, "alpha": 2.5, "block_size": 8, "steps": 3,
                                     "chains": 2, "seed": 9, "temperature": 0.5, "top_p": 0.9, "top_k": 5,
                                     "min_p": 0.1, "method": "power", "stream": true, "model": "x", "user": "u"})",
                                 false, request_limits{}, 1000);
    EXPECT_EQ(r.prompt_text, "hi");
    EXPECT_EQ(r.params.max_new_tokens, 32);
    EXPECT_EQ(r.params.alpha, 2.5);
    EXPECT_EQ(r.params.block_size, 8);
    EXPECT_EQ(r.params.n_steps_per_block, 3);
    EXPECT_EQ(r.params.n_chains, 2);
    EXPECT_EQ(r.params.seed, 9u);
    EXPECT_EQ(r.params.temperature, 0.5);
    EXPECT_EQ(r.params.top_k, 5);
    EXPECT_TRUE(r.stream);
    EXPECT_FALSE(r.params.record_trace);
}

TEST(server_request, defaults_and_token_prompts) {
    request_limits limits;
    limits.default_max_tokens = 17;
    const auto r              = parse_request(R"({"prompt": [1, 2, 3], "n": 2})", false, limits, 1000);
    EXPECT_TRUE(r.prompt_is_tokens);
    EXPECT_EQ(r.prompt_tokens, (std::vector<powersample::token_id>{ 1, 2, 3 }));
    EXPECT_EQ(r.params.max_new_tokens, 17);
    EXPECT_EQ(r.params.n_chains, 2);
    const auto c =
        parse_request(R"({"messages": [{"role": "user", "content": "hi", "name": "a"}]})", true, limits, 1000);
    ASSERT_EQ(c.messages.size(), 1u);
    EXPECT_EQ(c.messages[0].role, "user");
}

TEST(server_request, every_rejection_names_its_field) {
    EXPECT_EQ(rejected_field("{"), "body");
    EXPECT_EQ(rejected_field("[]"), "body");
    EXPECT_EQ(rejected_field(R"({})"), "prompt");
    EXPECT_EQ(rejected_field(R"({"prompt": "x", "max_tokens": 0})"), "max_tokens");
    EXPECT_EQ(rejected_field(R"({"prompt": "x", "max_tokens": 1e30})"), "max_tokens");
    EXPECT_EQ(rejected_field(R"({"prompt": "x", "max_tokens": 18446744073709551615})"), "max_tokens");
    EXPECT_EQ(rejected_field(R"({"prompt": "x", "alpha": 0})"), "alpha");
    EXPECT_EQ(rejected_field(R"({"prompt": "x", "alpha": 1000})"), "alpha");
    EXPECT_EQ(rejected_field(R"({"prompt": "x", "chains": 5})"), "chains");
    EXPECT_EQ(rejected_field(R"({"prompt": "x", "chains": 1, "n": 1})"), "n");
    EXPECT_EQ(rejected_field(R"({"prompt": "x", "steps": 33})"), "steps");
    EXPECT_EQ(rejected_field(R"({"prompt": "x", "min_p": 1})"), "min_p");
    EXPECT_EQ(rejected_field(R"({"prompt": "x", "top_k": 1001})"), "top_k");
    EXPECT_EQ(rejected_field(R"({"prompt": "x", "stop": ["a", "b", "c", "d", "e"]})"), "stop");  // OpenAI: up to 4
    EXPECT_EQ(rejected_field(R"({"prompt": [1, "a"]})"), "prompt[1]");
    EXPECT_EQ(rejected_field(R"({"prompt": [1000]})"), "prompt[0]");
    EXPECT_EQ(rejected_field(R"({"prompt": ["a", "b"]})"), "prompt");
    EXPECT_EQ(rejected_field(R"({"messages": "hi"})", true), "messages");
    EXPECT_EQ(rejected_field(R"({"messages": [{"role": "user", "content": "x", "x": 1}]})", true), "messages[0].x");
    EXPECT_EQ(rejected_field(R"({"prompt": "x", "messages": []})", true), "prompt");
}

TEST(server_request, method_knobs_and_the_sequence_budget) {
    // A method's own knobs nest under its group, named as in the knob table (powersample/knobs.h).
    request_limits limits;
    limits.max_sequences = 10;
    const auto r = parse_request(R"({"prompt": "x", "method": "smc", "smc": {"particles": 4, "ess_threshold": 0.25,
                                     "resample_interval": 2, "alpha_ramp_tokens": 3}})",
                                 false, limits, 1000);
    EXPECT_EQ(r.params.method, powersample::method::smc);
    EXPECT_EQ(r.params.n_particles, 4);
    EXPECT_EQ(r.params.ess_threshold, 0.25);
    EXPECT_EQ(r.params.resample_interval, 2);
    EXPECT_EQ(r.params.alpha_ramp_tokens, 3);
    const auto s = parse_request(R"({"prompt": "x", "method": "sps", "sps": {"candidates": 3, "top_k": 2,
                                     "rollouts": 2, "lookahead": 4}})",
                                 false, limits, 1000);
    EXPECT_EQ(powersample::sequences_needed(s.params), 1 + 1 + 3 + 2 * 2);
    EXPECT_EQ(s.params.sps_proposal, powersample::sps_proposal::base);  // the paper's, by default
    const auto v = parse_request(R"({"prompt": "x", "method": "sps", "sps": {"candidates": 3, "top_k": 2,
                                     "rollouts": 2, "proposal": "low-temp", "level": "token",
                                     "last_candidates": 4, "last_top_k": 3}})",
                                 false, limits, 1000);
    EXPECT_EQ(v.params.sps_proposal, powersample::sps_proposal::low_temp);
    EXPECT_EQ(v.params.sps_level, powersample::sps_level::token);
    EXPECT_EQ(v.params.sps_last_candidates, 4);
    EXPECT_EQ(v.params.sps_last_top_k, 3);
    // Token level: one candidate id per top token, K_w = 3 of them at the last step.
    EXPECT_EQ(powersample::sequences_needed(v.params), 1 + 1 + 3 + 2 * 2);
    auto block      = v.params;
    block.sps_level = powersample::sps_level::block;
    EXPECT_EQ(powersample::sequences_needed(block), 1 + 1 + 4 + 2 * 2);  // the last window's 4 candidates
    const auto e = parse_request(R"({"prompt": "x", "method": "power-entropy", "power_entropy": {"beta": 0,
                                     "floor": 1}})",
                                 false, limits, 1000);
    EXPECT_EQ(e.params.entropy_beta, 0.0);
    EXPECT_EQ(e.params.entropy_floor, 1.0);
    EXPECT_EQ(
        parse_request(R"({"prompt": "x", "method": "best-of-n", "best_of_n": {"best_of": 4}})", false, limits, 1000)
            .params.best_of,
        4);
    EXPECT_EQ(parse_request(R"({"prompt": "x", "early_rejection": false})", false, limits, 1000).params.early_rejection,
              false);

    auto blamed = [&](const std::string & body) { return rejected_field(body, false, limits); };
    // Widths beyond the server's 10 sequences: the knob that sets the width is named.
    EXPECT_EQ(blamed(R"({"prompt": "x", "method": "smc", "smc": {"particles": 5}})"), "smc.particles");
    EXPECT_EQ(blamed(R"({"prompt": "x", "method": "sps"})"), "sps.candidates");  // defaults need 82
    EXPECT_EQ(blamed(R"({"prompt": "x", "method": "best-of-n", "best_of_n": {"best_of": 5}})"), "best_of_n.best_of");
    EXPECT_EQ(blamed(R"({"prompt": "x", "chains": 2})"), "(accepted)");
    // A group of another method, not an object, or with a key it lacks.
    EXPECT_EQ(blamed(R"({"prompt": "x", "smc": {"particles": 2}})"), "smc");
    EXPECT_EQ(blamed(R"({"prompt": "x", "method": "smc", "smc": 3})"), "smc");
    EXPECT_EQ(blamed(R"({"prompt": "x", "method": "smc", "smc": {"particle": 3}})"), "smc.particle");
    // The old flat names are unknown fields now.
    EXPECT_EQ(blamed(R"({"prompt": "x", "method": "smc", "particles": 2})"), "particles");
    // Out of range or mistyped.
    EXPECT_EQ(blamed(R"({"prompt": "x", "method": "smc", "smc": {"particles": 0}})"), "smc.particles");
    EXPECT_EQ(blamed(R"({"prompt": "x", "method": "smc", "smc": {"ess_threshold": 1.5}})"), "smc.ess_threshold");
    EXPECT_EQ(blamed(R"({"prompt": "x", "method": "sps", "sps": {"rollouts": 1}})"), "sps.rollouts");
    EXPECT_EQ(blamed(R"({"prompt": "x", "method": "power-entropy", "power_entropy": {"beta": -1}})"),
              "power_entropy.beta");
    EXPECT_EQ(blamed(R"({"prompt": "x", "method": "power-entropy", "power_entropy": {"floor": 0}})"),
              "power_entropy.floor");
    EXPECT_EQ(blamed(R"({"prompt": "x", "method": "best-of-n", "best_of_n": {"best_of": "3"}})"), "best_of_n.best_of");
    EXPECT_EQ(blamed(R"({"prompt": "x", "method": "sps", "sps": {"proposal": "q"}})"), "sps.proposal");
    EXPECT_EQ(blamed(R"({"prompt": "x", "method": "sps", "sps": {"proposal": 1}})"), "sps.proposal");
    EXPECT_EQ(blamed(R"({"prompt": "x", "method": "sps", "sps": {"level": "word"}})"), "sps.level");
    EXPECT_EQ(blamed(R"({"prompt": "x", "method": "sps", "sps": {"lookahead": -1}})"), "sps.lookahead");
    EXPECT_EQ(blamed(R"({"prompt": "x", "method": "sps", "sps": {"last_top_k": -1}})"), "sps.last_top_k");
    EXPECT_EQ(blamed(R"({"prompt": "x", "early_rejection": 1})"), "early_rejection");
    EXPECT_EQ(blamed(R"({"prompt": "x", "max_tokens_decoded": 10})"), "max_tokens_decoded");  // the server's budget
    // An sps budget below one block: max_tokens, under its request name.
    EXPECT_EQ(blamed(R"({"prompt": "x", "method": "sps", "sps": {"candidates": 2, "top_k": 1, "rollouts": 2},
                         "block_size": 8, "max_tokens": 4})"),
              "max_tokens");
    // A cross-field rule is validate()'s: K above the candidates.
    EXPECT_EQ(blamed(R"({"prompt": "x", "method": "sps", "sps": {"candidates": 2, "top_k": 3, "rollouts": 2}})"),
              "sps.top_k");
    EXPECT_EQ(blamed(R"({"prompt": "x", "method": "sps", "sps": {"candidates": 2, "top_k": 1, "rollouts": 2,
                         "last_candidates": 2, "last_top_k": 3}})"),
              "sps.last_top_k");
    EXPECT_EQ(blamed(R"({"prompt": "x", "method": "sps", "sps": {"candidates": 2, "top_k": 2, "rollouts": 2,
                         "last_candidates": 1}})"),
              "sps.last_candidates");
}

// The fields OpenAI clients send as a matter of course (issue: real clients).
TEST(server_request, openai_client_fields) {
    const auto r = parse_request(R"({"messages": [{"role": "user", "content": "hi"}], "max_completion_tokens": 12,
                                     "stream": true, "stream_options": {"include_usage": true}, "logprobs": true,
                                     "top_logprobs": 0, "presence_penalty": 0, "frequency_penalty": 0.0,
                                     "response_format": {"type": "text"}, "logit_bias": {}, "user": "u",
                                     "stop": ["\n\n", "END"]})",
                                 true, request_limits{}, 1000);
    EXPECT_EQ(r.params.max_new_tokens, 12);
    EXPECT_TRUE(r.include_usage);
    EXPECT_TRUE(r.logprobs);
    EXPECT_EQ(r.params.stop, (std::vector<std::string>{ "\n\n", "END" }));
    const auto c = parse_request(R"({"prompt": "hi", "max_tokens": 7, "max_completion_tokens": 7, "logprobs": 0,
                                     "echo": false, "stop": "x"})",
                                 false, request_limits{}, 1000);
    EXPECT_EQ(c.params.max_new_tokens, 7);
    EXPECT_TRUE(c.logprobs);
    EXPECT_EQ(c.params.stop, std::vector<std::string>{ "x" });
    EXPECT_FALSE(c.include_usage);
    EXPECT_EQ(c.top_logprobs, 0);
    // Alternatives: chat's top_logprobs (0-20), completions' logprobs count (0-5).
    EXPECT_EQ(parse_request(R"({"messages": [{"role": "user", "content": "x"}], "logprobs": true, "top_logprobs": 20})",
                            true, request_limits{}, 1000)
                  .top_logprobs,
              20);
    EXPECT_EQ(parse_request(R"({"prompt": "x", "logprobs": 5})", false, request_limits{}, 1000).top_logprobs, 5);
}

TEST(server_request, openai_fields_off_their_neutral_value_name_the_field) {
    EXPECT_EQ(rejected_field(R"({"prompt": "x", "max_tokens": 5, "max_completion_tokens": 6})"),
              "max_completion_tokens");
    EXPECT_EQ(rejected_field(R"({"prompt": "x", "max_completion_tokens": 0})"), "max_completion_tokens");
    EXPECT_EQ(rejected_field(R"({"prompt": "x", "presence_penalty": 0.5})"), "presence_penalty");
    EXPECT_EQ(rejected_field(R"({"prompt": "x", "frequency_penalty": -1})"), "frequency_penalty");
    EXPECT_EQ(rejected_field(R"({"prompt": "x", "frequency_penalty": "0"})"), "frequency_penalty");
    EXPECT_EQ(rejected_field(R"({"prompt": "x", "logit_bias": {"5": 1}})"), "logit_bias");
    EXPECT_EQ(rejected_field(R"({"prompt": "x", "response_format": {"type": "json_object"}})"), "response_format");
    EXPECT_EQ(rejected_field(R"({"prompt": "x", "response_format": "text"})"), "response_format");
    EXPECT_EQ(rejected_field(R"({"prompt": "x", "echo": true})"), "echo");
    EXPECT_EQ(rejected_field(R"({"messages": [{"role": "user", "content": "x"}], "echo": false})", true), "echo");
    EXPECT_EQ(rejected_field(R"({"prompt": "x", "stream_options": {"include_usage": 1}})"),
              "stream_options.include_usage");
    EXPECT_EQ(rejected_field(R"({"prompt": "x", "stream_options": {"other": true}})"), "stream_options.other");
    EXPECT_EQ(rejected_field(R"({"prompt": "x", "logprobs": 6})"), "logprobs");
    EXPECT_EQ(rejected_field(R"({"prompt": "x", "logprobs": -1})"), "logprobs");
    EXPECT_EQ(rejected_field(R"({"prompt": "x", "top_logprobs": 0})"), "top_logprobs");
    EXPECT_EQ(rejected_field(R"({"messages": [{"role": "user", "content": "x"}], "logprobs": 1})", true), "logprobs");
    EXPECT_EQ(rejected_field(R"({"messages": [{"role": "user", "content": "x"}], "top_logprobs": 2})", true),
              "top_logprobs");  // without logprobs: true
    EXPECT_EQ(rejected_field(
                  R"({"messages": [{"role": "user", "content": "x"}], "logprobs": true, "top_logprobs": 21})", true),
              "top_logprobs");
    EXPECT_EQ(rejected_field(R"({"prompt": "x", "stop": 5})"), "stop");
    EXPECT_EQ(rejected_field(R"({"prompt": "x", "stop": ["a", 1]})"), "stop[1]");
    EXPECT_EQ(rejected_field(R"({"prompt": "x", "frobnicate": 1})"), "frobnicate");
}

TEST(server_request, json_a_client_can_break_is_a_400_on_the_body) {
    // Numbers beyond double (nlohmann's out_of_range.406, which used to escape as a 500), raw
    // bytes that are not UTF-8, and nesting beyond max_json_depth, refused while parsing.
    EXPECT_EQ(rejected_field(R"({"prompt": "x", "alpha": 1e309})"), "body");
    EXPECT_EQ(rejected_field("{\"prompt\": \"\xff\"}"), "body");
    request_limits limits;
    limits.max_json_depth = 4;
    EXPECT_EQ(rejected_field(R"({"prompt": [[[[[1]]]]]})", false, limits), "body");
    // Four levels parse (and the unknown field is what is refused).
    EXPECT_EQ(rejected_field(R"({"prompt": "x", "x_nested": [[[1]]]})", false, limits), "x_nested");
    EXPECT_EQ(rejected_field(std::string(100000, '['), false, {}), "body");
    try {
        parse_request(std::string(100000, '['), false, {}, 1000);
    } catch (const request_error & e) {
        EXPECT_NE(std::string(e.what()).find("nested deeper than 16 levels"), std::string::npos) << e.what();
    }
}
