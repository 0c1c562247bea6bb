// vllm_generator: proposals from vLLM's OpenAI-compatible /v1/completions. With logprobs: K and
// return_tokens_as_token_ids, vLLM lists for every generated token its id ("token_id:N"), its
// log-probability and a dict of the top-K alternatives (the sampled token added when outside
// them). In the default --logprobs-mode raw_logprobs these are log p of the raw logits: the
// base model at temperature 1, over the full vocabulary. See docs/remote.md.
#include "powersample/knobs.h"
#include "powersample/remote.h"
#include "powersample/text.h"

#include "remote/http.h"
#include "remote/normaliser.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>

namespace powersample {

using json = nlohmann::json;

namespace {

// vLLM treats a temperature below this as greedy decoding (its _SAMPLING_EPS).
constexpr double vllm_min_temperature = 1e-5;

// "token_id:123" -> 123; anything else is an error.
token_id parse_token_id(const json & v, const std::string & where) {
    static const std::string prefix = "token_id:";
    if (!v.is_string()) throw error(where + ": token " + v.dump() + " is not a \"token_id:N\" string");
    const std::string & s  = v.get_ref<const std::string &>();
    int64_t             id = -1;
    bool                ok = false;
    if (s.size() > prefix.size() && s.compare(0, prefix.size(), prefix) == 0) {
        const char * last    = s.data() + s.size();
        const auto [end, ec] = std::from_chars(s.data() + prefix.size(), last, id);
        ok = ec == std::errc() && end == last && id >= 0 && id <= std::numeric_limits<token_id>::max();
    }
    if (!ok) {
        throw error(where + ": token '" + s.substr(0, 80) +
                    "' is not \"token_id:N\" (is return_tokens_as_token_ids supported by this vLLM?)");
    }
    return token_id(id);
}

double parse_logprob(const json & v, const std::string & where) {
    if (!v.is_number() || !std::isfinite(v.get<double>())) {
        throw error(where + ": log-probability " + v.dump().substr(0, 80) + " is not a finite number");
    }
    return v.get<double>();
}

}  // namespace

struct vllm_generator::impl {
    explicit impl(remote_params p) : http(std::move(p)) {}

    remote_http         http;
    mutable std::string model_name;
    int64_t             context_sent   = 0;
    int64_t             context_cached = -1;  // -1: never reported

    const std::string & model() const {
        if (!http.params().model.empty()) return http.params().model;
        if (model_name.empty()) {
            const json models = http.call("/v1/models", nullptr);
            if (!models.is_object() || !models.contains("data") || !models["data"].is_array() ||
                models["data"].empty() || !models["data"][0].is_object() || !models["data"][0].contains("id") ||
                !models["data"][0]["id"].is_string()) {
                throw error("remote vLLM " + http.params().url + "/v1/models: no model listed; give the model name");
            }
            model_name = models["data"][0]["id"].get<std::string>();
        }
        return model_name;
    }

    std::vector<token_id> token_list(const json & r, const std::string & path) const {
        if (!r.is_object() || !r.contains("tokens") || !r["tokens"].is_array()) {
            throw error("remote vLLM " + http.params().url + path + ": answer has no \"tokens\" array");
        }
        std::vector<token_id> out;
        for (const auto & t : r["tokens"]) {
            if (!t.is_number_integer())
                throw error("remote vLLM " + http.params().url + path + ": token is not an integer");
            out.push_back(t.get<token_id>());
        }
        return out;
    }

    generated_suffix parse_completion(const json & r, int32_t max_tokens, double temperature, int32_t n_top);
};

vllm_generator::vllm_generator(remote_params params) : impl_(std::make_unique<impl>(std::move(params))) {}

vllm_generator::~vllm_generator() = default;

std::string vllm_generator::model() const { return impl_->model(); }
int64_t     vllm_generator::n_requests() const { return impl_->http.n_requests(); }
int64_t     vllm_generator::n_context_tokens_sent() const { return impl_->context_sent; }
int64_t     vllm_generator::n_context_tokens_cached() const { return impl_->context_cached; }

std::vector<token_id> vllm_generator::tokenize(const std::string & text) const {
    const json r = impl_->http.call(
        "/tokenize", { { "model", impl_->model() }, { "prompt", text }, { "add_special_tokens", true } });
    return impl_->token_list(r, "/tokenize");
}

std::vector<token_id> vllm_generator::tokenize_chat(const std::string & user_message,
                                                    const std::string & system_message) const {
    json messages = json::array();
    if (!system_message.empty()) messages.push_back({ { "role", "system" }, { "content", system_message } });
    messages.push_back({ { "role", "user" }, { "content", user_message } });
    const json r = impl_->http.call(
        "/tokenize", { { "model", impl_->model() }, { "messages", messages }, { "add_generation_prompt", true } });
    return impl_->token_list(r, "/tokenize");
}

std::string vllm_generator::detokenize(const std::vector<token_id> & tokens) const {
    if (tokens.empty()) return {};
    const json r = impl_->http.call("/detokenize", { { "model", impl_->model() }, { "tokens", tokens } });
    if (!r.is_object() || !r.contains("prompt") || !r["prompt"].is_string()) {
        throw error("remote vLLM " + impl_->http.params().url + "/detokenize: answer has no \"prompt\" string");
    }
    return valid_utf8(r["prompt"].get<std::string>());
}

generated_suffix vllm_generator::generate(const std::vector<token_id> & context, int32_t max_tokens, double temperature,
                                          uint64_t seed) {
    const std::string max_tokens_name  = knob_for(&sampling_params::max_new_tokens).name();
    const std::string temperature_name = knob_for(&sampling_params::temperature).name();
    if (max_tokens < 1) {
        throw invalid_argument_error(max_tokens_name,
                                     max_tokens_name + " = " + std::to_string(max_tokens) + ": must be >= 1");
    }
    if (!(temperature >= vllm_min_temperature) || !std::isfinite(temperature)) {
        throw invalid_argument_error(temperature_name,
                                     temperature_name + " = " + std::to_string(temperature) +
                                         ": vLLM decodes greedily below 1e-5; must be >= 1e-5 remotely");
    }
    // At temperature 1 the proposal is the model: log q = log p of the sampled token, exact with
    // logprobs = 1. Otherwise log q needs the normaliser sum_v p(v)^(1/t), from the top-K.
    const int32_t n_top = temperature == 1.0 ? 1 : impl_->http.params().top_logprobs;
    // Every sampling field is sent: vLLM fills a missing one from the model's generation_config
    // (e.g. top_k 20), which would truncate the proposal behind log q's back. top_k -1 is "off" in
    // every vLLM version (newer ones also take 0).
    const json request = {
        { "model", impl_->model() },
        { "prompt", context },
        { "max_tokens", max_tokens },
        { "temperature", temperature },
        { "top_p", 1.0 },
        { "top_k", -1 },
        { "min_p", 0.0 },
        { "repetition_penalty", 1.0 },
        { "presence_penalty", 0.0 },
        { "frequency_penalty", 0.0 },
        { "seed", seed },
        { "n", 1 },
        { "logprobs", n_top },
        { "return_tokens_as_token_ids", true },
        { "skip_special_tokens", false },
        { "stream", false },
    };
    const json r = impl_->http.call("/v1/completions", request);
    impl_->context_sent += int64_t(context.size());
    try {
        return impl_->parse_completion(r, max_tokens, temperature, n_top);
    } catch (const json::exception & e) {
        throw error("remote vLLM " + impl_->http.params().url + "/v1/completions: malformed answer (" + e.what() + ")");
    }
}

generated_suffix vllm_generator::impl::parse_completion(const json & r, int32_t max_tokens, double temperature,
                                                        int32_t n_top) {
    const std::string where = "remote vLLM " + http.params().url + "/v1/completions";
    if (!r.is_object() || !r.contains("choices") || !r["choices"].is_array() || r["choices"].empty() ||
        !r["choices"][0].is_object()) {
        throw error(where + ": answer has no choices");
    }
    const json & choice = r["choices"][0];
    if (!choice.contains("logprobs") || !choice["logprobs"].is_object()) {
        throw error(where + ": answer has no logprobs (the request asked for them)");
    }
    const json & lp = choice["logprobs"];
    for (const char * field : { "tokens", "token_logprobs" }) {
        if (!lp.contains(field) || !lp[field].is_array()) throw error(where + ": logprobs." + field + " missing");
    }
    const json & tokens           = lp["tokens"];
    const json & token_logprobs   = lp["token_logprobs"];
    const bool   unit_temperature = temperature == 1.0;
    if (tokens.size() != token_logprobs.size()) {
        throw error(where + ": " + std::to_string(tokens.size()) + " tokens but " +
                    std::to_string(token_logprobs.size()) + " log-probabilities");
    }
    if (!unit_temperature && (!lp.contains("top_logprobs") || !lp["top_logprobs"].is_array() ||
                              lp["top_logprobs"].size() != tokens.size())) {
        throw error(where + ": logprobs.top_logprobs missing or not one per token");
    }
    if (tokens.empty()) throw error(where + ": no token generated");
    if (int64_t(tokens.size()) > max_tokens) {
        throw error(where + ": asked for at most " + std::to_string(max_tokens) + " tokens, got " +
                    std::to_string(tokens.size()));
    }
    if (r.contains("usage") && r["usage"].is_object()) {
        const json & usage = r["usage"];
        if (usage.contains("completion_tokens") && usage["completion_tokens"].is_number_integer() &&
            usage["completion_tokens"].get<int64_t>() != int64_t(tokens.size())) {
            throw error(where + ": generated " + std::to_string(usage["completion_tokens"].get<int64_t>()) +
                        " tokens but listed " + std::to_string(tokens.size()));
        }
        if (usage.contains("prompt_tokens_details") && usage["prompt_tokens_details"].is_object() &&
            usage["prompt_tokens_details"].contains("cached_tokens") &&
            usage["prompt_tokens_details"]["cached_tokens"].is_number_integer()) {
            context_cached =
                std::max<int64_t>(context_cached, 0) + usage["prompt_tokens_details"]["cached_tokens"].get<int64_t>();
        }
    }

    generated_suffix s;
    for (size_t i = 0; i < tokens.size(); ++i) {
        const std::string at = where + ": token " + std::to_string(i);
        s.tokens.push_back(parse_token_id(tokens[i], at));
        const double log_p = parse_logprob(token_logprobs[i], at);
        s.log_p.push_back(log_p);
        if (unit_temperature) {
            s.log_q.push_back(log_p);
            continue;
        }
        const json & entries = lp["top_logprobs"][i];
        if (!entries.is_object() || entries.empty()) throw error(at + ": no top_logprobs");
        std::vector<top_logprob> top;
        for (const auto & [key, value] : entries.items()) {
            top.push_back({ parse_token_id(json(key), at), parse_logprob(value, at) });
        }
        // vLLM does not report its vocabulary size: the bound decides exactness.
        const estimated_log_q q = log_q_from_top_k(s.tokens.back(), log_p, top, n_top, temperature, 0);
        s.log_q.push_back(q.log_q);
        if (!q.exact) s.exact = false;
        s.max_log_q_error = std::max(s.max_log_q_error, q.max_error);
    }

    const json finish = choice.value("finish_reason", json());
    if (finish == "stop") {
        // EOS, or one of the model's other end-of-generation ids (vLLM's stop_token_ids from the
        // generation config, named in stop_reason). vLLM keeps the stop token in the output ids and
        // lists its log-probability; it is the last token returned. A stop string is never sent.
        const json stop_reason = choice.value("stop_reason", json());
        if (stop_reason.is_string()) {
            throw error(where + ": stopped at the stop string '" + stop_reason.get<std::string>().substr(0, 80) +
                        "', which this client never sends");
        }
        if (stop_reason.is_number_integer() && stop_reason.get<int64_t>() != s.tokens.back()) {
            throw error(where + ": stopped at token " + stop_reason.dump() + " but the last token returned is " +
                        std::to_string(s.tokens.back()) + ": the end-of-generation token's log-probability is missing");
        }
        s.eog = true;
    } else if (finish == "length") {
        s.eog = false;
    } else {
        throw error(where + ": generation ended with finish_reason " + finish.dump() + " (expected stop or length)");
    }
    return s;
}

}  // namespace powersample
