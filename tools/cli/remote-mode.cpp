#include "remote-mode.h"

#include "cli-output.h"

#include "powersample/remote.h"

#include <nlohmann/json.hpp>

#include <cstdio>
#include <iostream>

namespace ps = powersample;

void check_remote_api(const std::string & api) {
    if (api != "llama-server" && api != "vllm") {
        throw ps::invalid_argument_error("--remote-api = '" + api + "': must be llama-server or vllm");
    }
}

namespace {

std::vector<ps::token_id> prompt_tokens(const ps::llama_server_generator & gen, const remote_mode_options & o,
                                        const std::string & prompt) {
    return gen.tokenize(o.chat ? gen.apply_chat_template(prompt, o.system_prompt) : prompt);
}

// vLLM renders the chat template in /tokenize and returns the ids directly.
std::vector<ps::token_id> prompt_tokens(const ps::vllm_generator & gen, const remote_mode_options & o,
                                        const std::string & prompt) {
    return o.chat ? gen.tokenize_chat(prompt, o.system_prompt) : gen.tokenize(prompt);
}

template <typename Generator> int run_with(Generator & gen, const remote_mode_options & o,
                                           const ps::sampling_params & params, const std::string & prompt,
                                           const std::atomic<bool> & interrupted) {
    const std::vector<ps::token_id> tokens = prompt_tokens(gen, o, prompt);
    ps::remote_run_options          ro;
    ro.cancel           = &interrupted;
    ps::remote_result r = ps::sample_remote(gen, tokens, params, ro);
    for (auto & c : r.result.chains) {
        std::vector<ps::token_id> visible = c.tokens;
        if (c.finish == ps::finish_reason::eog && !visible.empty()) visible.pop_back();
        c.text = gen.detokenize(visible);
    }
    if (o.json) {
        // The local --json shape (runs[].params, runs[].chains[], the same keys), with what only a
        // remote run has under "remote".
        ps::sampling_params ran = params;
        ran.early_rejection     = false;  // the remote chain decodes every proposal (docs/remote.md)
        nlohmann::json run      = report_to_json({ ran, r.result });
        const int64_t  cached   = gen.n_context_tokens_cached();
        nlohmann::json out      = {
                 { "remote",
                   { { "url", o.url },
                     { "api", o.api },
                     { "exact", r.exact },
                     { "max_log_q_error", r.max_log_q_error },
                     { "n_requests", r.n_requests },
                     { "context_tokens_sent", gen.n_context_tokens_sent() },
                     { "context_tokens_cached", cached >= 0 ? nlohmann::json(cached) : nlohmann::json() } } },
                 { "prompt", prompt },
                 { "runs", nlohmann::json::array({ run }) }
        };
        std::cout << dump_json(out, 2) << "\n";
    } else {
        for (const auto & c : r.result.chains) std::cout << c.text << "\n";
    }
    std::cout.flush();
    if (!o.quiet) {
        print_summary({ params, r.result });
        std::fprintf(stderr, "remote: %lld requests, %.2f s, acceptance ratio %s", (long long)r.n_requests,
                     r.result.wall_seconds,
                     r.exact ? "exact\n" : "APPROXIMATE (proposal normaliser from the top-K log-probabilities");
        if (!r.exact) std::fprintf(stderr, "; each log q within %.2g nats)\n", r.max_log_q_error);
        if (gen.n_context_tokens_cached() >= 0) {
            std::fprintf(stderr, "remote prefix cache: %lld of %lld context tokens reused\n",
                         (long long)gen.n_context_tokens_cached(), (long long)gen.n_context_tokens_sent());
        } else {
            std::fprintf(stderr, "remote prefix cache: not reported by the server (%lld context tokens sent)\n",
                         (long long)gen.n_context_tokens_sent());
        }
    }
    return interrupted ? 130 : 0;
}

}  // namespace

int run_remote(const remote_mode_options & o, const ps::sampling_params & params, const std::string & prompt,
               const std::atomic<bool> & interrupted) {
    try {
        check_remote_api(o.api);
        ps::remote_params rp;
        rp.url             = o.url;
        rp.api_key         = o.api_key;
        rp.model           = o.model;
        rp.top_logprobs    = o.top_logprobs;
        rp.max_retries     = o.max_retries;
        rp.timeout_seconds = o.timeout;
        if (o.api == "vllm") {
            ps::vllm_generator gen(rp);
            return run_with(gen, o, params, prompt, interrupted);
        }
        ps::llama_server_generator gen(rp);
        return run_with(gen, o, params, prompt, interrupted);
    } catch (const ps::invalid_argument_error & e) {
        std::fprintf(stderr, "power-sampling: %s\n", e.what());
        return 1;
    } catch (const std::exception & e) {
        std::fprintf(stderr, "power-sampling: error: %s\n", e.what());
        return 2;
    }
}
