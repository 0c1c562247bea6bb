// power-sampling-server: OpenAI-compatible completions with power sampling, all requests sharing
// one batched engine.
//
//   POST /v1/completions, POST /v1/chat/completions   (extra fields: alpha, block_size, steps,
//        chains, method, seed; statistics under "power_sampling"; stream: true for SSE progress)
//   GET  /v1/models, GET /health
//
// Exit codes: 0 clean stop, 1 usage error, 2 runtime failure.
#include "powersample/powersample.h"

#include "http-front.h"
#include "server-request.h"
#include "../knob-json.h"
#include "server-runner.h"

#include <CLI/CLI.hpp>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <ctime>

namespace ps = powersample;
using json   = nlohmann::json;
using namespace psserver;

namespace {

struct server_options {
    std::string    model = ps::default_model_name;
    std::string    host  = "127.0.0.1";
    int            port  = 8080;
    std::string    api_key;
    int32_t        threads            = 0;        // 0 = hardware concurrency
    int32_t        parallel           = 2;        // requests of the largest size decoded at once
    int32_t        sequences          = 0;        // KV sequences of the context; 0 = parallel * (1 + 2 * max_chains)
    size_t         max_queue          = 64;       // requests in flight (running + waiting) before 503
    size_t         max_body           = 1 << 20;  // bytes
    double         request_timeout    = 10.0;     // seconds to receive a whole request head and body
    int64_t        max_request_tokens = 0;        // decoded tokens per request; 0 = derived from the limits
    int32_t        http_threads       = 0;        // 0 = max_queue + 8
    request_limits limits;
};

std::atomic<uint64_t> g_request_counter{ 0 };
guarded_server *      g_server = nullptr;

extern "C" void on_signal(int) {
    if (g_server) g_server->stop();
}

void send_error(httplib::Response & res, int status, const std::string & message, const std::string & field = "") {
    res.status = status;
    res.set_content(error_json(status, message, field), "application/json");
}

// Every body we send: text from the model or the client that is not UTF-8 is replaced (U+FFFD),
// never a throw that would turn into a 500.
std::string to_wire(const json & v) { return v.dump(-1, ' ', false, json::error_handler_t::replace); }

std::string finish_name(ps::finish_reason r) {
    switch (r) {
        case ps::finish_reason::eog: return "stop";  // OpenAI: "stop" for EOG and stop strings
        case ps::finish_reason::stop: return "stop";
        case ps::finish_reason::length: return "length";
        case ps::finish_reason::cancelled: return "cancelled";
    }
    return "stop";
}

json chain_stats(const ps::sample_result & c) {
    return { { "acceptance_rate", c.acceptance_rate() },
             { "n_proposals", c.n_proposals },
             { "n_accepted", c.n_accepted },
             { "n_tokens_generated", c.n_tokens_generated },
             { "n_tokens_decoded", c.n_tokens_decoded },
             { "n_early_rejections", c.n_early_rejections },
             { "n_tokens_saved", c.n_tokens_saved },
             { "log_p", c.log_p },
             { "completion_tokens", c.tokens.size() } };
}

json power_stats(const ps::sampling_params & p, const ps::generation_result & g) {
    int64_t generated = 0, proposals = 0, accepted = 0;
    for (const auto & c : g.chains) {
        generated += c.n_tokens_generated;
        proposals += c.n_proposals;
        accepted += c.n_accepted;
    }
    // The knobs as they ran, in the knob table's vocabulary (the request's), then the counts.
    json stats = powersample_tools::knobs_to_json(p);
    stats.update({ { "acceptance_rate", proposals ? double(accepted) / double(proposals) : 0.0 },
                   { "n_proposals", proposals },
                   { "n_accepted", accepted },
                   { "n_tokens_generated", generated },
                   { "n_tokens_decoded", g.n_tokens_decoded },
                   { "wall_seconds", g.wall_seconds },
                   { "budget_exhausted", g.budget_exhausted } });
    return stats;
}

// The returned sample's per-token log p under the base model (the chain holds them), in OpenAI's
// shape: chat {"content": [{token, logprob, bytes, top_logprobs}]}, completions {tokens,
// token_logprobs, top_logprobs, text_offset}. End-of-generation tokens are left out, as from the text.
json token_bytes_json(const std::string & piece) {
    json bytes = json::array();
    for (unsigned char b : piece) bytes.push_back(int(b));
    return bytes;
}

// top_logprobs: the alternatives at each position (sample_result::top_log_p, asked for with
// request::n_top_log_p), in OpenAI's shape: chat a list of {token, logprob, bytes}, completions
// an object from token text to logprob (null when none were asked).
json logprobs_body(const ps::model & m, const ps::sample_result & c, bool chat, int32_t n_top) {
    json content = json::array(), tokens = json::array(), token_logprobs = json::array(), offsets = json::array(),
         top_by_position = json::array();
    const bool with_top  = n_top > 0 && c.top_log_p.size() == c.tokens.size();
    size_t     offset    = 0;
    for (size_t i = 0; i < c.tokens.size(); ++i) {
        if (m.is_eog(c.tokens[i])) continue;
        const std::string piece = m.token_to_piece(c.tokens[i]);
        json              top   = chat ? json::array() : json::object();
        if (with_top) {
            for (const auto & alt : c.top_log_p[i]) {
                const std::string alt_piece = m.token_to_piece(alt.token);
                if (chat) {
                    top.push_back(
                        { { "token", alt_piece }, { "logprob", alt.log_p }, { "bytes", token_bytes_json(alt_piece) } });
                } else if (!top.contains(alt_piece)) {
                    top[alt_piece] = alt.log_p;  // two tokens with one text: the likelier is kept
                }
            }
        }
        if (chat) {
            content.push_back({ { "token", piece },
                                { "logprob", c.token_log_p[i] },
                                { "bytes", token_bytes_json(piece) },
                                { "top_logprobs", top } });
        } else {
            tokens.push_back(piece);
            token_logprobs.push_back(c.token_log_p[i]);
            top_by_position.push_back(top);
            offsets.push_back(offset);
            offset += piece.size();
        }
    }
    if (chat) return { { "content", content } };
    return { { "tokens", tokens },
             { "token_logprobs", token_logprobs },
             { "top_logprobs", with_top ? top_by_position : json(nullptr) },
             { "text_offset", offsets } };
}

json usage_body(const ps::generation_result & g) {
    int64_t completion_tokens = 0;
    for (const auto & c : g.chains) completion_tokens += int64_t(c.tokens.size());
    return { { "prompt_tokens", g.n_prompt_tokens },
             { "completion_tokens", completion_tokens },
             { "total_tokens", g.n_prompt_tokens + completion_tokens } };
}

json final_body(const ps::model & m, const std::string & model_name, const std::string & id, const parsed_request & r,
                const ps::generation_result & g, bool chunk) {
    json choices = json::array();
    for (size_t i = 0; i < g.chains.size(); ++i) {
        const auto &      c      = g.chains[i];
        json              choice = { { "index", i },
                                     { "finish_reason", finish_name(c.finish) },
                                     { "power_sampling", chain_stats(c) } };
        const std::string text   = m.completion_text(c.tokens, c.stop);
        choice["logprobs"]       = r.logprobs ? logprobs_body(m, c, r.chat, r.top_logprobs) : json(nullptr);
        if (!r.chat) {
            choice["text"] = text;
        } else if (chunk) {
            choice["delta"] = { { "role", "assistant" }, { "content", text } };
        } else {
            choice["message"] = { { "role", "assistant" }, { "content", text } };
        }
        choices.push_back(choice);
    }
    const char * object = r.chat ? (chunk ? "chat.completion.chunk" : "chat.completion") : "text_completion";
    return { { "id", id },
             { "object", object },
             { "created", int64_t(std::time(nullptr)) },
             { "model", model_name },
             { "choices", choices },
             { "usage", usage_body(g) },
             { "power_sampling", power_stats(r.params, g) } };
}

json progress_event(const std::string & id, const ps::progress & p) {
    return { { "id", id },
             { "object", "power_sampling.progress" },
             { "chain", p.chain },
             { "block", p.block },
             { "n_blocks", p.n_blocks },
             { "step", p.step },
             { "n_steps", p.n_steps },
             { "length", p.length },
             { "n_proposals", p.n_proposals },
             { "n_accepted", p.n_accepted },
             { "acceptance_rate", p.n_proposals ? double(p.n_accepted) / p.n_proposals : 0.0 },
             { "n_tokens_generated", p.n_tokens_generated },
             { "done", p.done } };
}

class completion_service {
public:
    completion_service(std::shared_ptr<ps::model> m, std::string model_name, engine_runner & runner,
                       const server_options & o)
        : model_(std::move(m)), model_name_(std::move(model_name)), runner_(runner), options_(o) {}

    void handle(const httplib::Request & req, httplib::Response & res, bool chat) {
        // The cheap refusal first: a full queue costs no parse and no tokenization.
        if (runner_.stats().in_flight >= options_.max_queue) return send_busy(res);
        parsed_request r;
        auto           j = std::make_shared<job>();
        try {
            r         = parse_request(req.body, chat, options_.limits, model_->n_vocab());
            j->prompt = prompt_tokens(r);
            j->cost   = ps::estimate_decode_cost(r.params, int64_t(j->prompt.size()));
            check_budget(r.params, j->cost);
        } catch (const request_error & e) {
            return send_error(res, e.status(), e.what(), e.field());
        } catch (const ps::invalid_argument_error & e) {
            // Tokenising is the only library step here that can fail on the prompt; any other
            // field is the library's own name for a parameter.
            const std::string & f            = e.field();
            const bool          prompt_field = f.empty() || f == "prompt" || f == "messages";
            return send_error(res, 400, e.what(), prompt_field ? (chat ? "messages" : "prompt") : f);
        } catch (const ps::error & e) {
            return send_error(res, 400, e.what(), chat ? "messages" : "prompt");
        }
        r.params.max_tokens_decoded = options_.max_request_tokens;
        j->params                   = r.params;
        j->n_top_log_p              = r.top_logprobs;
        j->want_progress            = r.stream;
        const std::string id        = std::string(chat ? "chatcmpl-" : "cmpl-") + std::to_string(g_request_counter++);
        if (!runner_.try_submit(j)) return send_busy(res);
        if (r.stream) {
            return stream(res, r, j, id);
        }
        connection * c = current_connection();
        // A half-closed client is still waiting for its answer: the probe is an interim 100
        // Continue, which HTTP/1.1 clients must skip (RFC 9110, 15.2); HTTP/1.0 has none.
        const bool http11 = req.version == "HTTP/1.1";
        auto       probe  = [c, http11] { return http11 && c->write_raw("HTTP/1.1 100 Continue\r\n\r\n"); };
        std::unique_lock<std::mutex> lock(j->mu);
        while (!j->done) {
            j->cv.wait_for(lock, std::chrono::milliseconds(50));
            if (!j->done && !j->cancel_requested && c && c->client_gone(probe)) {
                runner_.cancel(j);
            }
        }
        if (!j->error.empty()) return send_error(res, j->error_status, j->error);
        if (j->cancel_requested) return send_error(res, 499, "client closed the request");
        res.set_content(to_wire(final_body(*model_, model_name_, id, r, j->result, false)), "application/json");
    }

private:
    void send_busy(httplib::Response & res) const {
        res.set_header("Retry-After", "1");
        send_error(res, 503, "server busy: " + std::to_string(options_.max_queue) + " requests in flight; retry later");
    }

    // Admission against the per-request budget, on the expected cost: a request expected to fit
    // runs, and the engine stops it if it turns out longer (finish_reason length,
    // power_sampling.budget_exhausted).
    void check_budget(const ps::sampling_params & p, const ps::decode_cost & cost) const {
        if (cost.expected <= options_.max_request_tokens) return;
        // Blame the knob that multiplies the cost most for the method.
        using P                      = ps::sampling_params;
        const auto        name       = [](auto member) { return ps::knob_for(member).name(); };
        const std::string field      = p.method == ps::method::power || p.method == ps::method::power_entropy
                                           ? name(&P::n_steps_per_block)
                                       : p.method == ps::method::smc       ? name(&P::n_particles)
                                       : p.method == ps::method::sps       ? name(&P::sps_rollouts)
                                       : p.method == ps::method::best_of_n ? name(&P::best_of)
                                                                           : name(&P::max_new_tokens);
        const std::string max_tokens = name(&P::max_new_tokens), block_size = name(&P::block_size),
                          steps = name(&P::n_steps_per_block), chains = name(&P::n_chains);
        throw request_error(
            400, field,
            field + ": " + max_tokens + " = " + std::to_string(p.max_new_tokens) + ", " + block_size + " = " +
                std::to_string(p.block_size) + ", " + steps + " = " + std::to_string(p.n_steps_per_block) + ", " +
                chains + " = " + std::to_string(p.n_chains) + " (method " + ps::method_name(p.method) +
                ") would decode about " + std::to_string(cost.expected) + " tokens (at most " +
                std::to_string(cost.worst) + "), above this server's budget of " +
                std::to_string(options_.max_request_tokens) + " per request (--max-request-tokens); lower " + steps +
                ", " + max_tokens + " or " + chains + ", or raise " + block_size);
    }

    std::vector<ps::token_id> prompt_tokens(const parsed_request & r) const {
        std::vector<ps::token_id> tokens;
        if (r.chat) {
            tokens = model_->tokenize_chat(r.messages);
        } else if (r.prompt_is_tokens) {
            tokens = r.prompt_tokens;
        } else {
            tokens = model_->tokenize(r.prompt_text, true);
        }
        const int32_t limit = options_.limits.max_prompt_tokens;
        if (int32_t(tokens.size()) > limit) {
            throw request_error(400, r.chat ? "messages" : "prompt",
                                std::string(r.chat ? "messages" : "prompt") + ": " + std::to_string(tokens.size()) +
                                    " tokens, above the limit " + std::to_string(limit));
        }
        if (tokens.empty()) throw request_error(400, "prompt", "prompt: no tokens");
        return tokens;
    }

    void stream(httplib::Response & res, const parsed_request & r, const std::shared_ptr<job> & j,
                const std::string & id) {
        connection * c = current_connection();
        res.set_header("Cache-Control", "no-cache");
        auto            model  = model_;
        auto            name   = model_name_;
        engine_runner * runner = &runner_;
        res.set_chunked_content_provider(
            "text/event-stream",
            [j, r, id, c, model, name, runner](size_t, httplib::DataSink & sink) {
                auto send = [&](const json & v) {
                    const std::string s = "data: " + to_wire(v) + "\n\n";
                    return sink.write(s.data(), s.size());
                };
                std::unique_lock<std::mutex> lock(j->mu);
                while (true) {
                    while (!j->events.empty()) {
                        const ps::progress p = j->events.front();
                        j->events.pop_front();
                        lock.unlock();
                        const bool ok = send(progress_event(id, p));
                        lock.lock();
                        if (!ok) {
                            runner->cancel(j);
                            return false;
                        }
                    }
                    if (j->done) break;
                    j->cv.wait_for(lock, std::chrono::milliseconds(50));
                    // The probe of a half-closed client: an SSE comment, which clients skip.
                    auto probe = [&sink] { return sink.write(": probe\n\n", 9); };
                    if (!j->done && c && c->client_gone(probe)) {
                        runner->cancel(j);
                        return false;
                    }
                }
                json last, usage;
                if (!j->error.empty()) {
                    last = { { "error",
                               { { "message", j->error },
                                 { "code", j->error_status },
                                 { "type", j->error_status >= 500 ? "server_error" : "invalid_request_error" } } } };
                } else {
                    last = final_body(*model, name, id, r, j->result, true);
                    // stream_options.include_usage: as OpenAI, one more chunk with no choices.
                    if (r.include_usage) {
                        usage            = last;
                        usage["choices"] = json::array();
                        usage.erase("power_sampling");
                    }
                }
                lock.unlock();
                send(last);
                if (!usage.is_null()) send(usage);
                const std::string done = "data: [DONE]\n\n";
                sink.write(done.data(), done.size());
                sink.done();
                return true;
            },
            [j, runner](bool success) {
                if (!success) runner->cancel(j);
            });
    }

    std::shared_ptr<ps::model> model_;
    std::string                model_name_;
    engine_runner &            runner_;
    const server_options &     options_;
};

}  // namespace

int main(int argc, char ** argv) {
    server_options o;
    CLI::App       app{
        "power-sampling-server: OpenAI-compatible completions with power sampling (arXiv 2510.14901); "
              "all requests share one batched engine."
    };
    app.set_version_flag("--version", powersample::version_line(), "Print the version (commit, llama.cpp) and exit");
    app.get_formatter()->column_width(34);
    app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
    app.add_option("-m,--model", o.model, "GGUF path or catalogue name")
        ->envname("POWERSAMPLE_MODEL")
        ->capture_default_str();
    app.add_option("--host", o.host, "Address to bind (default loopback only)")->capture_default_str();
    app.add_option("--port", o.port, "TCP port (0 = pick a free one, printed on stderr)")->capture_default_str();
    app.add_option("--api-key", o.api_key, "Require 'Authorization: Bearer KEY'")->envname("POWERSAMPLE_API_KEY");
    app.add_option("-t,--threads", o.threads, "CPU threads for the model (0 = all cores)")->capture_default_str();
    app.add_option("--parallel", o.parallel, "Largest requests decoded at once; sizes the KV cache")
        ->capture_default_str();
    app.add_option("--sequences", o.sequences,
                   "KV sequences in the context (0 = --parallel x (1 + 2 x --max-chains)); smc needs 1 + 2 x "
                   "particles per chain, sps 2 + candidates + top_k x rollouts, best-of-n 1 + 2 x best_of")
        ->capture_default_str();
    app.add_option("--max-queue", o.max_queue, "Requests in flight before 503 (running + waiting)")
        ->capture_default_str();
    app.add_option("--max-body", o.max_body, "Largest request body in bytes (413 above)")->capture_default_str();
    app.add_option("--request-timeout", o.request_timeout,
                   "Seconds a client has to send a whole request, head and body (408 after)")
        ->capture_default_str();
    app.add_option("--http-threads", o.http_threads, "HTTP worker threads (0 = max-queue + 8)")->capture_default_str();
    app.add_option("--max-request-tokens", o.max_request_tokens,
                   "Tokens one request may decode (prompt, chains, proposals); a request expected to need "
                   "more is refused (400), one that runs over stops with finish_reason length. 0 = the most "
                   "the library's default request (block_size 64, steps 5) costs at --max-tokens, --max-chains "
                   "and --max-prompt-tokens")
        ->capture_default_str();
    app.add_option("--max-tokens", o.limits.max_tokens, "Largest max_tokens a request may ask for")
        ->capture_default_str();
    app.add_option("--default-max-tokens", o.limits.default_max_tokens, "max_tokens when a request gives none")
        ->capture_default_str();
    app.add_option("--max-chains", o.limits.max_chains, "Largest chains (n) per request")->capture_default_str();
    app.add_option("--max-steps", o.limits.max_steps, "Largest steps per block")->capture_default_str();
    app.add_option("--max-prompt-tokens", o.limits.max_prompt_tokens, "Longest prompt in tokens")
        ->capture_default_str();
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError & e) {
        return app.exit(e) == 0 ? 0 : 1;
    }
    auto usage = [](const std::string & m) {
        std::fprintf(stderr, "power-sampling-server: %s\n", m.c_str());
        return 1;
    };
    if (o.port < 0 || o.port > 65535) return usage("--port = " + std::to_string(o.port) + ": must be in [0, 65535]");
    if (o.threads < 0) return usage("--threads = " + std::to_string(o.threads) + ": must be >= 0");
    if (o.parallel < 1) return usage("--parallel = " + std::to_string(o.parallel) + ": must be >= 1");
    if (o.max_queue < 1) return usage("--max-queue: must be >= 1");
    if (o.max_body < 64) return usage("--max-body = " + std::to_string(o.max_body) + ": must be >= 64");
    if (o.limits.max_tokens < 1) return usage("--max-tokens: must be >= 1");
    if (!app.count("--default-max-tokens"))
        o.limits.default_max_tokens = std::min(o.limits.default_max_tokens, o.limits.max_tokens);
    if (o.limits.default_max_tokens < 1 || o.limits.default_max_tokens > o.limits.max_tokens) {
        return usage("--default-max-tokens = " + std::to_string(o.limits.default_max_tokens) +
                     ": must be in [1, --max-tokens]");
    }
    if (o.limits.max_chains < 1 || 2 * o.limits.max_chains + 1 > 256) return usage("--max-chains: must be in [1, 127]");
    if (o.sequences < 0 || o.sequences > 256) {
        return usage("--sequences = " + std::to_string(o.sequences) + ": must be in [0, 256] (llama.cpp's limit)");
    }
    if (o.limits.max_steps < 0) return usage("--max-steps: must be >= 0");
    if (o.limits.max_prompt_tokens < 1) return usage("--max-prompt-tokens: must be >= 1");
    if (!(o.request_timeout > 0.0 && o.request_timeout <= 3600.0)) {
        return usage("--request-timeout = " + std::to_string(o.request_timeout) + ": must be in (0, 3600] seconds");
    }
    if (o.max_request_tokens < 0) return usage("--max-request-tokens: must be >= 0 (0 = derived from the limits)");
    if (o.max_request_tokens == 0) {
        ps::sampling_params reference;  // the library's defaults, at the largest size allowed
        reference.max_new_tokens = o.limits.max_tokens;
        reference.n_chains       = o.limits.max_chains;
        o.max_request_tokens     = ps::estimate_decode_cost(reference, o.limits.max_prompt_tokens).worst;
    }

    std::signal(SIGPIPE, SIG_IGN);
    try {
        auto          model    = ps::model::load({ o.model, 0 });
        const int64_t need_ctx = int64_t(o.limits.max_prompt_tokens) + o.limits.max_tokens;
        if (need_ctx > model->n_ctx_train()) {
            return usage("--max-prompt-tokens + --max-tokens = " + std::to_string(need_ctx) +
                         ": beyond the model's context of " + std::to_string(model->n_ctx_train()));
        }
        // Size the one context for --parallel requests of the largest allowed shape: that many
        // requests' sequences, each stream long enough for the longest prompt and completion.
        ps::sampling_params largest;
        largest.max_new_tokens = o.limits.max_tokens;
        largest.n_chains       = o.limits.max_chains;
        largest.method         = ps::method::power;
        // Plus the sequences of a one-chain request, kept for light requests (admission_policy).
        ps::sampling_params light;
        const int32_t       reserve = ps::sequences_needed(light);
        const int32_t       seqs =
            o.sequences > 0 ? o.sequences : std::min(256, o.parallel * ps::sequences_needed(largest) + reserve);
        const int64_t      per_seq = int64_t(o.limits.max_prompt_tokens) + o.limits.max_tokens + 1;
        ps::context_params cp;
        cp.n_threads = o.threads;
        cp.n_ctx     = int32_t(std::min<int64_t>(per_seq * seqs, INT32_MAX));
        cp.n_seq_max = seqs;
        auto lm      = ps::create_language_model(model, cp);
        std::fprintf(stderr, "power-sampling-server: %s, %d sequences of %d KV cells\n", model->description().c_str(),
                     lm->n_seq_max(), lm->n_cells_per_sequence());
        o.limits.max_sequences = lm->n_seq_max();
        admission_policy policy;
        policy.n_sequences = o.limits.max_sequences;
        policy.reserve     = policy.n_sequences >= ps::sequences_needed(largest) + reserve ? reserve : 0;
        policy.heavy_cost  = o.max_request_tokens / 8;
        std::fprintf(stderr,
                     "power-sampling-server: %lld decoded tokens per request; requests expected to need "
                     "more than %lld leave %d sequences to the others\n",
                     static_cast<long long>(o.max_request_tokens), static_cast<long long>(policy.heavy_cost),
                     policy.reserve);
        engine_runner runner(std::move(lm), o.max_queue, policy);

        std::string model_name = model->path();
        if (const auto slash = model_name.find_last_of('/'); slash != std::string::npos)
            model_name = model_name.substr(slash + 1);
        completion_service service(model, model_name, runner, o);

        http_limits http;
        http.max_body        = o.max_body;
        http.request_timeout = std::chrono::milliseconds(int64_t(o.request_timeout * 1000));
        guarded_server svr(http);
        g_server            = &svr;
        const size_t n_http = o.http_threads > 0 ? size_t(o.http_threads) : o.max_queue + 8;
        svr.new_task_queue  = [n_http] { return new httplib::ThreadPool(n_http); };
        svr.set_payload_max_length(o.max_body);
        svr.set_pre_routing_handler([&o](const httplib::Request & req, httplib::Response & res) {
            if (o.api_key.empty() || req.path == "/health") return httplib::Server::HandlerResponse::Unhandled;
            if (req.get_header_value("Authorization") != "Bearer " + o.api_key) {
                send_error(res, 401, "missing or wrong API key (Authorization: Bearer KEY)");
                return httplib::Server::HandlerResponse::Handled;
            }
            return httplib::Server::HandlerResponse::Unhandled;
        });
        svr.set_error_handler([](const httplib::Request &, httplib::Response & res) {
            if (!res.body.empty()) return;
            if (res.status == 413) return send_error(res, 413, "request body too large");
            if (res.status == 404) return send_error(res, 404, "no such endpoint");
            send_error(res, res.status, "HTTP error " + std::to_string(res.status));
        });
        svr.set_exception_handler([](const httplib::Request &, httplib::Response & res, std::exception_ptr ep) {
            try {
                std::rethrow_exception(ep);
            } catch (const std::exception & e) {
                send_error(res, 500, e.what());
            }
        });
        svr.Get("/health", [&runner](const httplib::Request &, httplib::Response & res) {
            const runner_stats s = runner.stats();
            res.set_content(json{ { "status", "ok" },
                                  { "requests_in_flight", s.in_flight },
                                  { "requests_live", s.live },
                                  { "requests_completed", s.completed },
                                  { "requests_cancelled", s.cancelled } }
                                .dump(),
                            "application/json");
        });
        svr.Get("/v1/models", [&model_name](const httplib::Request &, httplib::Response & res) {
            res.set_content(json{ { "object", "list" },
                                  { "data",
                                    { { { "id", model_name },
                                        { "object", "model" },
                                        { "owned_by", "powersample" },
                                        { "created", 0 } } } } }
                                .dump(),
                            "application/json");
        });
        svr.Post("/v1/completions", [&service](const httplib::Request & req, httplib::Response & res) {
            service.handle(req, res, false);
        });
        svr.Post("/v1/chat/completions",
                 [&service](const httplib::Request & req, httplib::Response & res) { service.handle(req, res, true); });

        int port = o.port;
        if (port == 0) {
            port = svr.bind_to_any_port(o.host);
        } else if (!svr.bind_to_port(o.host, port)) {
            port = -1;
        }
        if (port < 0 || !svr.set_listen_backlog(int(n_http) + 64)) {
            std::fprintf(stderr, "power-sampling-server: error: cannot listen on %s:%d\n", o.host.c_str(), o.port);
            return 2;
        }
        std::signal(SIGINT, on_signal);
        std::signal(SIGTERM, on_signal);
        std::fprintf(stderr, "power-sampling-server: listening on http://%s:%d\n", o.host.c_str(), port);
        std::fflush(stderr);
        svr.listen_after_bind();
        g_server = nullptr;
        return 0;
    } catch (const ps::invalid_argument_error & e) {
        std::fprintf(stderr, "power-sampling-server: %s\n", e.what());
        return 1;
    } catch (const std::exception & e) {
        std::fprintf(stderr, "power-sampling-server: error: %s\n", e.what());
        return 2;
    }
}
