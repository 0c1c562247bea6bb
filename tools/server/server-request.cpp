#include "server-request.h"

#include "../knob-json.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <set>
#include <sstream>

namespace ps = powersample;
using json   = nlohmann::json;

namespace psserver {

namespace {

[[noreturn]] void reject(const std::string & field, const std::string & why) {
    throw request_error(400, field, field + ": " + why);
}

std::string format_number(double v) {
    std::ostringstream os;
    os << v;
    return os.str();
}

const char * type_name(const json & v) { return v.type_name(); }

int64_t get_int(const json & v, const std::string & field, int64_t lo, int64_t hi) {
    if (!v.is_number_integer()) {
        reject(field, std::string("must be an integer, got ") + type_name(v));
    }
    if (v.is_number_unsigned()) {
        const uint64_t u = v.get<uint64_t>();
        if (u > uint64_t(hi)) reject(field, std::to_string(u) + " is above the limit " + std::to_string(hi));
        if (int64_t(u) < lo) reject(field, std::to_string(u) + " is below the minimum " + std::to_string(lo));
        return int64_t(u);
    }
    const int64_t x = v.get<int64_t>();
    if (x < lo) reject(field, std::to_string(x) + " is below the minimum " + std::to_string(lo));
    if (x > hi) reject(field, std::to_string(x) + " is above the limit " + std::to_string(hi));
    return x;
}

double get_number(const json & v, const std::string & field, double lo, double hi, bool lo_open) {
    if (!v.is_number()) reject(field, std::string("must be a number, got ") + type_name(v));
    const double x = v.get<double>();
    if (!std::isfinite(x)) reject(field, "must be finite");
    if (x < lo || (lo_open && x == lo)) {
        reject(field, format_number(x) + (lo_open ? " must be > " : " must be >= ") + format_number(lo));
    }
    if (x > hi) reject(field, format_number(x) + " is above the limit " + format_number(hi));
    return x;
}

std::string get_string(const json & v, const std::string & field) {
    if (!v.is_string()) reject(field, std::string("must be a string, got ") + type_name(v));
    return v.get<std::string>();
}

// Fields OpenAI clients send as a matter of course that would change the target distribution
// (a penalty or a logit bias reweights p) or the output's form: accepted at their neutral value.
void parse_neutral_fields(const json & doc, bool chat) {
    auto has = [&](const char * k) { return doc.contains(k) && !doc[k].is_null(); };
    for (const char * k : { "presence_penalty", "frequency_penalty" }) {
        if (has(k) && get_number(doc[k], k, -2.0, 2.0, false) != 0.0) {
            reject(k, "only 0 is supported: a penalty would change the distribution power sampling targets");
        }
    }
    if (has("logit_bias")) {
        if (!doc["logit_bias"].is_object())
            reject("logit_bias", std::string("must be an object, got ") + type_name(doc["logit_bias"]));
        if (!doc["logit_bias"].empty()) {
            reject("logit_bias", "only {} is supported: a bias would change the distribution power sampling targets");
        }
    }
    if (has("response_format")) {
        const json & f = doc["response_format"];
        if (!f.is_object() || !f.contains("type") || !f["type"].is_string()) {
            reject("response_format", "must be an object with a string \"type\"");
        }
        if (f["type"] != "text") {
            reject("response_format", "type '" + f["type"].get<std::string>() + "' is not supported (only text)");
        }
    }
    if (has("echo")) {
        if (chat) reject("echo", "not a chat completions field");
        if (!doc["echo"].is_boolean()) reject("echo", std::string("must be a boolean, got ") + type_name(doc["echo"]));
        if (doc["echo"].get<bool>()) reject("echo", "only false is supported");
    }
}

// stream_options, logprobs / top_logprobs and stop: what the answer carries and where text ends.
void parse_output_options(const json & doc, bool chat, parsed_request & r) {
    auto has = [&](const char * k) { return doc.contains(k) && !doc[k].is_null(); };
    if (has("stream_options")) {
        const json & o = doc["stream_options"];
        if (!o.is_object()) reject("stream_options", std::string("must be an object, got ") + type_name(o));
        for (auto it = o.begin(); it != o.end(); ++it) {
            if (it.key() != "include_usage")
                reject("stream_options." + it.key(), "unknown field (supported: include_usage)");
            if (!it->is_boolean())
                reject("stream_options.include_usage", std::string("must be a boolean, got ") + type_name(*it));
            r.include_usage = it->get<bool>();
        }
    }
    // Chat: logprobs is a boolean and top_logprobs a count; completions: logprobs is the count.
    int64_t top = 0;
    if (chat) {
        if (has("logprobs")) {
            if (!doc["logprobs"].is_boolean())
                reject("logprobs", std::string("must be a boolean, got ") + type_name(doc["logprobs"]));
            r.logprobs = doc["logprobs"].get<bool>();
        }
        if (has("top_logprobs")) {
            top = get_int(doc["top_logprobs"], "top_logprobs", 0, 20);
            if (!r.logprobs) reject("top_logprobs", "needs logprobs: true");
        }
    } else {
        if (has("top_logprobs")) reject("top_logprobs", "not a completions field (logprobs is the count there)");
        if (has("logprobs")) {
            top        = get_int(doc["logprobs"], "logprobs", 0, 5);
            r.logprobs = true;
        }
    }
    // The alternatives come from one more pass over the returned sample (engine::request::n_top_log_p).
    r.top_logprobs = int32_t(top);
    if (has("stop")) {
        const json & st = doc["stop"];
        if (st.is_string()) {
            r.params.stop.push_back(st.get<std::string>());
        } else if (st.is_array()) {
            for (size_t i = 0; i < st.size(); ++i)
                r.params.stop.push_back(get_string(st[i], "stop[" + std::to_string(i) + "]"));
        } else {
            reject("stop", std::string("must be a string or an array of strings, got ") + type_name(st));
        }
    }
}

template <class T> std::string name_of(T ps::sampling_params::*member) { return ps::knob_for(member).name(); }

// The knobs a request may set: all but the compute budget (the server's --max-request-tokens)
// and the stop strings and seed (OpenAI's fields, parsed in their own forms).
bool request_takes(const ps::knob_info & k) {
    const std::string name = k.name();
    return name != name_of(&ps::sampling_params::max_tokens_decoded) && name != name_of(&ps::sampling_params::stop) &&
           name != name_of(&ps::sampling_params::seed);
}

// A server limit on a knob the request gives (its range in the library is validate()'s; a
// default beyond the limit, such as block_size 64 under --max-tokens 8, only means one block).
template <class T>
void cap(const json & doc, const ps::sampling_params & p, T ps::sampling_params::*member, double limit) {
    if (powersample_tools::knob_value_in(doc, ps::knob_for(member)) && double(p.*member) > limit) {
        std::ostringstream v, l;
        v << p.*member;
        l << limit;
        reject(name_of(member), v.str() + " is above the limit " + l.str());
    }
}

}  // namespace

parsed_request parse_request(const std::string & body, bool chat, const request_limits & limits, int32_t n_vocab) {
    json doc;
    // Depth is bounded while parsing: a body of nested arrays would otherwise cost ~60 bytes of
    // heap per byte, and with many threads glibc keeps much of it after the request.
    const auto depth_guard = [&limits](int depth, json::parse_event_t, json &) {
        if (depth > limits.max_json_depth) {
            reject("body", "JSON nested deeper than " + std::to_string(limits.max_json_depth) + " levels");
        }
        return true;
    };
    try {
        doc = json::parse(body, depth_guard);
    } catch (const json::exception & e) {
        // parse_error, and out_of_range for a number beyond double (1e309): the client's fault.
        throw request_error(400, "body", std::string("body: malformed JSON: ") + e.what());
    }
    if (!doc.is_object()) reject("body", std::string("must be a JSON object, got ") + type_name(doc));

    // Every field a request may hold besides its own "messages" / "prompt"; the unknown-field
    // error lists them from here: OpenAI's, then the knob table's (powersample/knobs.h) common
    // knobs and method groups.
    static const std::vector<std::string> common = [] {
        std::vector<std::string> fields = {
            "model", "max_completion_tokens", "seed", "stop", "stream", "stream_options", "logprobs", "top_logprobs",
            "n", "user",
            // accepted at their neutral value only: anything else would change the target distribution
            "presence_penalty", "frequency_penalty", "logit_bias", "response_format", "echo"
        };
        for (const auto & key : powersample_tools::knob_keys(request_takes)) fields.push_back(key);
        return fields;
    }();
    for (auto it = doc.begin(); it != doc.end(); ++it) {
        const std::string & k   = it.key();
        const bool          own = chat ? k == "messages" : k == "prompt";
        if (!own && std::find(common.begin(), common.end(), k) == common.end()) {
            std::string supported = chat ? "messages" : "prompt";
            for (const auto & c : common) supported += ", " + c;
            reject(k, "unknown field (supported: " + supported + ")");
        }
    }

    parsed_request r;
    r.chat                       = chat;
    ps::sampling_params & p      = r.params;
    p.max_new_tokens             = limits.default_max_tokens;
    p.record_trace               = false;
    auto              has        = [&](const char * k) { return doc.contains(k) && !doc[k].is_null(); };
    const std::string max_tokens = name_of(&ps::sampling_params::max_new_tokens);
    const std::string chains     = name_of(&ps::sampling_params::n_chains);

    if (has("model")) r.model = get_string(doc["model"], "model");
    if (has("user")) get_string(doc["user"], "user");
    try {
        powersample_tools::read_knobs(doc, p, request_takes);
    } catch (const ps::invalid_argument_error & e) {
        throw request_error(400, e.field(), e.what());
    }
    if (has("max_completion_tokens")) {
        // OpenAI's newer name for max_tokens: the same cap.
        const int32_t n = int32_t(get_int(doc["max_completion_tokens"], "max_completion_tokens", 1, limits.max_tokens));
        if (has(max_tokens.c_str()) && n != p.max_new_tokens) {
            reject("max_completion_tokens", std::to_string(n) + " differs from " + max_tokens + " = " +
                                                std::to_string(p.max_new_tokens) + " (they are the same cap)");
        }
        p.max_new_tokens = n;
    }
    // OpenAI's n is the number of choices: our chains.
    if (has("n")) {
        if (has(chains.c_str())) reject("n", "give " + chains + " or n, not both");
        p.n_chains = int32_t(get_int(doc["n"], "n", 1, limits.max_chains));
    }
    parse_neutral_fields(doc, chat);
    parse_output_options(doc, chat, r);
    // What this server can afford; the library's ranges are validate()'s, below.
    cap(doc, p, &ps::sampling_params::max_new_tokens, limits.max_tokens);
    cap(doc, p, &ps::sampling_params::alpha, limits.max_alpha);
    cap(doc, p, &ps::sampling_params::block_size, limits.max_tokens);
    cap(doc, p, &ps::sampling_params::n_steps_per_block, limits.max_steps);
    cap(doc, p, &ps::sampling_params::n_chains, limits.max_chains);
    cap(doc, p, &ps::sampling_params::temperature, 100.0);
    cap(doc, p, &ps::sampling_params::top_k, n_vocab);
    cap(doc, p, &ps::sampling_params::entropy_beta, 100.0);
    cap(doc, p, &ps::sampling_params::n_particles, 127);
    cap(doc, p, &ps::sampling_params::resample_interval, limits.max_tokens);
    cap(doc, p, &ps::sampling_params::alpha_ramp_tokens, limits.max_tokens);
    cap(doc, p, &ps::sampling_params::sps_candidates, 254);
    cap(doc, p, &ps::sampling_params::sps_top_k, 254);
    cap(doc, p, &ps::sampling_params::sps_rollouts, 254);
    cap(doc, p, &ps::sampling_params::sps_lookahead, limits.max_tokens);
    cap(doc, p, &ps::sampling_params::sps_last_candidates, 254);
    cap(doc, p, &ps::sampling_params::sps_last_top_k, 254);
    cap(doc, p, &ps::sampling_params::best_of, 127);
    if (has("seed")) {
        p.seed = uint64_t(get_int(doc["seed"], "seed", 0, INT64_MAX));
    } else {
        // As OpenAI's API: no seed, a fresh draw; the seed used is in the response.
        std::random_device rd;
        p.seed = ((uint64_t(rd()) << 32) | rd()) & uint64_t(INT64_MAX);
    }
    if (has("stream")) {
        if (!doc["stream"].is_boolean())
            reject("stream", std::string("must be a boolean, got ") + type_name(doc["stream"]));
        r.stream = doc["stream"].get<bool>();
    }

    if (chat) {
        if (!has("messages")) reject("messages", "required");
        const json & msgs = doc["messages"];
        if (!msgs.is_array() || msgs.empty()) reject("messages", "must be a non-empty array");
        for (size_t i = 0; i < msgs.size(); ++i) {
            const std::string f = "messages[" + std::to_string(i) + "]";
            const json &      m = msgs[i];
            if (!m.is_object()) reject(f, std::string("must be an object, got ") + type_name(m));
            for (auto it = m.begin(); it != m.end(); ++it) {
                if (it.key() != "role" && it.key() != "content" && it.key() != "name") {
                    reject(f + "." + it.key(), "unknown field (supported: role, content, name)");
                }
            }
            if (!m.contains("role")) reject(f + ".role", "required");
            if (!m.contains("content")) reject(f + ".content", "required");
            const std::string role = get_string(m["role"], f + ".role");
            if (role != "system" && role != "user" && role != "assistant") {
                reject(f + ".role", "'" + role + "' is not one of system, user, assistant");
            }
            r.messages.push_back({ role, get_string(m["content"], f + ".content") });
        }
    } else {
        if (!has("prompt")) reject("prompt", "required");
        const json & pr = doc["prompt"];
        if (pr.is_string()) {
            r.prompt_text = pr.get<std::string>();
            if (r.prompt_text.empty()) reject("prompt", "empty");
        } else if (pr.is_array()) {
            if (pr.empty()) reject("prompt", "empty");
            if (int64_t(pr.size()) > limits.max_prompt_tokens) {
                reject("prompt", std::to_string(pr.size()) + " tokens, above the limit " +
                                     std::to_string(limits.max_prompt_tokens));
            }
            if (!pr[0].is_number_integer()) {
                reject("prompt", "an array prompt must hold token ids (one prompt per request)");
            }
            for (size_t i = 0; i < pr.size(); ++i) {
                r.prompt_tokens.push_back(
                    ps::token_id(get_int(pr[i], "prompt[" + std::to_string(i) + "]", 0, n_vocab - 1)));
            }
            r.prompt_is_tokens = true;
        } else {
            reject("prompt", std::string("must be a string or an array of token ids, got ") + type_name(pr));
        }
    }
    try {
        ps::validate(p);
    } catch (const ps::invalid_argument_error & e) {
        // The library's error names its field as the knob table does: the request's name too.
        throw request_error(400, e.field().empty() ? "params" : e.field(), e.what());
    }
    if (const int32_t need = ps::sequences_needed(p); need > limits.max_sequences) {
        // Blame the knob that sets the method's width.
        const std::string field = p.method == ps::method::smc         ? name_of(&ps::sampling_params::n_particles)
                                  : p.method == ps::method::sps       ? name_of(&ps::sampling_params::sps_candidates)
                                  : p.method == ps::method::best_of_n ? name_of(&ps::sampling_params::best_of)
                                                                      : chains;
        reject(field, "the request needs " + std::to_string(need) + " KV sequences, the server holds " +
                          std::to_string(limits.max_sequences) + " (raise --parallel or --max-chains)");
    }
    return r;
}

}  // namespace psserver
