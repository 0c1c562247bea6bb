// llama_server_generator: proposals from llama-server's /completion, with the log-probabilities
// the MH ratio needs. llama-server reports, for every generated token, the log-probability of the
// sampled token and of the top n_probs tokens under the raw logits (temperature 1, full-vocabulary
// softmax) when post_sampling_probs is false. See docs/remote.md.
#include "powersample/knobs.h"
#include "powersample/remote.h"
#include "powersample/text.h"

#include "remote/http.h"
#include "remote/normaliser.h"

#include <nlohmann/json.hpp>

#include <algorithm>

namespace powersample {

using json = nlohmann::json;

struct llama_server_generator::impl {
    explicit impl(remote_params p) : http(std::move(p)) {}

    remote_http      http;
    mutable int32_t  vocab          = -1;  // -1: not asked yet
    mutable token_id ascii_token    = -1;
    int64_t          context_sent   = 0;
    int64_t          context_cached = 0;

    json call(const std::string & path, const json & body) const { return http.call(path, body); }

    int32_t n_vocab() const {
        if (vocab < 0) {
            vocab             = 0;
            const json models = call("/v1/models", nullptr);
            if (models.contains("data") && models["data"].is_array() && !models["data"].empty()) {
                const json & d = models["data"][0];
                if (d.contains("meta") && d["meta"].contains("n_vocab")) vocab = d["meta"]["n_vocab"].get<int32_t>();
            }
        }
        return vocab;
    }

    std::vector<token_id> tokenize(const std::string & text) const {
        const json r = call("/tokenize", { { "content", text }, { "add_special", true }, { "parse_special", true } });
        return r.at("tokens").get<std::vector<token_id>>();
    }

    json score_position(const std::vector<token_id> & context, token_id token, int32_t n_top) const;
};

llama_server_generator::llama_server_generator(remote_params params)
    : impl_(std::make_unique<impl>(std::move(params))) {}

llama_server_generator::~llama_server_generator() = default;

int64_t llama_server_generator::n_requests() const { return impl_->http.n_requests(); }
int64_t llama_server_generator::n_context_tokens_sent() const { return impl_->context_sent; }
int64_t llama_server_generator::n_context_tokens_cached() const { return impl_->context_cached; }

int32_t llama_server_generator::n_vocab() const { return impl_->n_vocab(); }

std::vector<token_id> llama_server_generator::tokenize(const std::string & text) const { return impl_->tokenize(text); }

std::string llama_server_generator::detokenize(const std::vector<token_id> & tokens) const {
    if (tokens.empty()) return {};
    // A JSON string is valid UTF-8 once parsed, but a server may send the raw bytes of a cut
    // character; ours promises valid text either way.
    return valid_utf8(impl_->call("/detokenize", { { "tokens", tokens } }).at("content").get<std::string>());
}

std::string llama_server_generator::apply_chat_template(const std::string & user_message,
                                                        const std::string & system_message) const {
    json messages = json::array();
    if (!system_message.empty()) messages.push_back({ { "role", "system" }, { "content", system_message } });
    messages.push_back({ { "role", "user" }, { "content", user_message } });
    return impl_->call("/apply-template", { { "messages", messages } }).at("prompt").get<std::string>();
}

// The log-probability entry of `token` after `context`: one forced step that returns the whole
// vocabulary's log-probabilities (raw logits, temperature 1). The step is forced onto a plain
// ASCII token so that llama-server does not drop the entry for an incomplete UTF-8 character.
json llama_server_generator::impl::score_position(const std::vector<token_id> & context, token_id token,
                                                  int32_t n_top) const {
    const int32_t vocab = n_vocab();
    if (vocab <= 0) throw error("remote: the server does not report its vocabulary size; cannot rescore a token");
    if (ascii_token < 0) {
        const auto t = tokenize("a");
        if (t.empty()) throw error("remote: cannot find a plain token to force");
        ascii_token = t.back();
    }
    const json request = {
        { "prompt", context },
        { "n_predict", 1 },
        { "temperature", 1.0 },
        { "samplers", json::array({ "temperature" }) },
        { "n_probs", vocab },
        { "post_sampling_probs", false },
        { "cache_prompt", true },
        { "return_tokens", true },
        { "logit_bias", json::array({ json::array({ ascii_token, 1000.0 }) }) },
        { "stream", false },
    };
    const json   r     = call("/completion", request);
    const json & probs = r.at("completion_probabilities");
    if (probs.size() != 1) throw error("remote: rescoring a token returned no log-probabilities");
    json entry = { { "id", token } };
    json top   = json::array();
    bool found = false;
    for (const auto & t : probs[0].at("top_logprobs")) {
        if (t.at("id").get<token_id>() == token) {
            entry["logprob"] = t.at("logprob");
            found            = true;
        }
        if (int32_t(top.size()) < n_top) top.push_back(t);
    }
    if (!found) throw error("remote: rescoring token " + std::to_string(token) + " found no log-probability");
    entry["top_logprobs"] = top;
    return entry;
}

generated_suffix llama_server_generator::generate(const std::vector<token_id> & context, int32_t max_tokens,
                                                  double temperature, uint64_t seed) {
    const std::string max_tokens_name  = knob_for(&sampling_params::max_new_tokens).name();
    const std::string temperature_name = knob_for(&sampling_params::temperature).name();
    if (max_tokens < 1) {
        throw invalid_argument_error(max_tokens_name,
                                     max_tokens_name + " = " + std::to_string(max_tokens) + ": must be >= 1");
    }
    if (!(temperature > 0)) throw invalid_argument_error(temperature_name, temperature_name + ": must be > 0 remotely");
    // At temperature 1 the proposal is the model: log q = log p of the sampled token, exact with
    // n_probs = 1. Otherwise log q needs the normaliser sum_v p(v)^(1/t), from the top-K.
    const bool    unit_temperature = temperature == 1.0;
    const int32_t n_probs          = unit_temperature ? 1 : impl_->http.params().top_logprobs;
    const json    request          = {
                    { "prompt", context },
                    { "n_predict", max_tokens },
                    { "temperature", temperature },
                    { "samplers", json::array({ "temperature" }) },
                    { "top_k", 0 },
                    { "top_p", 1.0 },
                    { "min_p", 0.0 },
                    { "typical_p", 1.0 },
                    { "repeat_penalty", 1.0 },
                    { "n_probs", n_probs },
                    { "post_sampling_probs", false },
                    { "cache_prompt", true },
                    { "seed", seed },
                    { "return_tokens", true },
                    { "stream", false },
    };
    const json r = impl_->call("/completion", request);
    impl_->context_sent += int64_t(context.size());
    if (r.contains("timings") && r["timings"].contains("cache_n")) {
        impl_->context_cached += r["timings"]["cache_n"].get<int64_t>();
    }

    // The header promises `error` for a server that answers nonsense: a missing or mistyped
    // field must not escape as nlohmann's exception.
    try {
        generated_suffix s;
        s.tokens                    = r.at("tokens").get<std::vector<token_id>>();
        const std::string stop_type = r.value("stop_type", "");
        s.eog                       = stop_type == "eos";
        if (stop_type != "eos" && stop_type != "limit") {
            throw error("remote: generation stopped with stop_type '" + stop_type + "'");
        }
        const json & returned = r.at("completion_probabilities");
        // llama-server leaves out the entries of tokens that end inside a UTF-8 character. The
        // entries are a subsequence of the tokens (by id); an entry is placed for certain when its
        // earliest and latest possible positions agree. Every other token is scored again by a
        // request that returns the whole vocabulary, so no log p is ever guessed.
        std::vector<json> probs(s.tokens.size());
        {
            const size_t        n = s.tokens.size(), k = returned.size();
            std::vector<size_t> earliest(k), latest(k);
            size_t              i = 0;
            for (size_t j = 0; j < k; ++j) {
                const token_id id = returned[j].at("id").get<token_id>();
                while (i < n && s.tokens[i] != id) ++i;
                if (i == n) throw error("remote: llama-server's log-probabilities do not line up with its tokens");
                earliest[j] = i++;
            }
            size_t back = n;
            for (size_t j = k; j-- > 0;) {
                const token_id id = returned[j].at("id").get<token_id>();
                while (back > 0 && s.tokens[back - 1] != id) --back;
                latest[j] = --back;
            }
            std::vector<bool> have(n, false);
            for (size_t j = 0; j < k; ++j) {
                if (earliest[j] == latest[j]) {
                    probs[earliest[j]] = returned[j];
                    have[earliest[j]]  = true;
                }
            }
            for (size_t t = 0; t < n; ++t) {
                if (have[t]) continue;
                std::vector<token_id> before = context;
                before.insert(before.end(), s.tokens.begin(), s.tokens.begin() + long(t));
                probs[t] = impl_->score_position(before, s.tokens[t], n_probs);
            }
        }
        const int32_t vocab = unit_temperature ? 0 : n_vocab();
        for (size_t i = 0; i < s.tokens.size(); ++i) {
            const json & e  = probs[i];
            const double lp = e.at("logprob").get<double>();
            s.log_p.push_back(lp);
            if (unit_temperature) {
                s.log_q.push_back(lp);
                continue;
            }
            std::vector<top_logprob> top;
            for (const auto & t : e.at("top_logprobs")) {
                top.push_back({ t.at("id").get<token_id>(), t.at("logprob").get<double>() });
            }
            if (top.empty()) throw error("remote: no top log-probabilities for the proposal normaliser");
            const estimated_log_q q = log_q_from_top_k(s.tokens[i], lp, top, n_probs, temperature, vocab);
            s.log_q.push_back(q.log_q);
            if (!q.exact) s.exact = false;
            s.max_log_q_error = std::max(s.max_log_q_error, q.max_error);
        }
        if (s.eog && s.tokens.empty()) throw error("remote: stopped at EOG without returning it");
        return s;
    } catch (const json::exception & e) {
        throw error(std::string("remote: unexpected answer from llama-server's /completion: ") + e.what());
    }
}

}  // namespace powersample
