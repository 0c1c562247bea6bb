// powersample: power sampling against a remote server that generates the proposals: llama-server
// (its native API) or vLLM (its OpenAI-compatible API).
//
// A server generates whole suffixes, not one token per call, so the remote backend is not a
// `language_model`: the Metropolis-Hastings chain runs here over a `sequence_generator` (anything
// that samples a suffix from the proposal q after a token context and reports, per token, log p
// under the base model and log q under the proposal). The chain is the engine's own
// (src/core/methods/mh-chain.h: state, cuts, decisions, trace), so the two backends cannot drift. docs/remote.md says what
// llama-server and vLLM return and when the ratio is exact.
//
// Usage:
//     powersample::llama_server_generator gen({.url = "http://127.0.0.1:8080"});
//     auto prompt = gen.tokenize(gen.apply_chat_template("What is 7 * 8?"));
//     auto r = powersample::sample_remote(gen, prompt, powersample::preset("quality"));
//     std::cout << gen.detokenize(r.result.chains[0].tokens) << (r.exact ? "" : " (approximate)");
//
//     powersample::vllm_generator vllm({.url = "http://127.0.0.1:8000"});   // vllm serve MODEL
//     auto r2 = powersample::sample_remote(vllm, vllm.tokenize_chat("What is 7 * 8?"), params);
//
// Thread safety: a generator is used from one thread at a time. Errors: invalid_argument_error for
// bad parameters; error when the server stays down, slow or failing after the retries, or answers
// something malformed. A chain that could not finish is never returned as a finished sample: the
// call throws instead.
#pragma once

#include "powersample/engine.h"
#include "powersample/sampling.h"

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace powersample {

struct generated_suffix {
    std::vector<token_id> tokens;
    std::vector<double>   log_p;          // log p(x_i | context, x_<i), base model at temperature 1
    std::vector<double>   log_q;          // log q(x_i | ...), the proposal the token was drawn from
    bool                  eog   = false;  // the last token ends the generation (and is included)
    bool                  exact = true;   // false when log_q's normaliser was estimated from the top-K
    // When not exact: the largest bound, over the suffix's tokens, on how far the estimated log q
    // can be from the true one (nats; from the probability mass outside the top-K). 0 when exact.
    double max_log_q_error = 0.0;
};

class sequence_generator {
public:
    virtual ~sequence_generator() = default;
    // Samples a suffix of at most max_tokens tokens after `context` from the model at
    // `temperature` (> 0, no truncation), stopping early only at an end-of-generation token.
    // `seed` makes the draw reproducible where the generator can. Throws error on failure.
    virtual generated_suffix generate(const std::vector<token_id> & context, int32_t max_tokens, double temperature,
                                      uint64_t seed) = 0;
};

struct remote_run_options {
    progress_callback         on_progress;       // called from the calling thread
    const std::atomic<bool> * cancel = nullptr;  // set to true to stop; chains end as cancelled
};

struct remote_result {
    generation_result result;                  // chains' tokens, log p, statistics, trace; text left empty
    bool              exact           = true;  // false when any log q was approximated (see docs/remote.md)
    double            max_log_q_error = 0.0;   // largest per-token bound on the approximation (nats)
    int64_t           n_requests      = 0;
};

// Runs params.n_chains chains one after another, each drawing its proposals from `gen`.
// method power runs the MH chain; sample and low_temp return one proposal sample (N = 0); the other
// methods, top_k, top_p and min_p are not supported remotely (invalid_argument_error).
remote_result sample_remote(sequence_generator & gen, const std::vector<token_id> & prompt,
                            const sampling_params & params, const remote_run_options & options = {});

struct remote_params {
    std::string url;                 // e.g. "http://127.0.0.1:8080" (llama-server), ":8000" (vLLM)
    std::string api_key;             // sent as "Authorization: Bearer KEY" when not empty
    std::string model;               // vLLM: the served model's name sent with each request;
                                     // empty: the first of GET /v1/models. llama-server: unused
    int32_t top_logprobs = 20;       // log-probabilities per position when the proposal
                                     // temperature is not 1 (the normaliser); >= 1. vLLM refuses
                                     // more than its --max-logprobs (default 20)
    int32_t max_retries     = 4;     // retries of a failed request (connection, timeout, 5xx)
    double  backoff_seconds = 0.25;  // first retry delay, doubled each time
    double  timeout_seconds = 120;   // per request
};

// llama-server's native API: /completion with token-id prompts, cache_prompt, n_probs, and
// /tokenize, /detokenize, /apply-template, /v1/models.
class llama_server_generator : public sequence_generator {
public:
    explicit llama_server_generator(remote_params params);
    ~llama_server_generator() override;

    generated_suffix generate(const std::vector<token_id> & context, int32_t max_tokens, double temperature,
                              uint64_t seed) override;

    std::vector<token_id> tokenize(const std::string & text) const;
    std::string           detokenize(const std::vector<token_id> & tokens) const;
    // Wraps one user message in the server model's chat template, the assistant turn opened.
    std::string apply_chat_template(const std::string & user_message, const std::string & system_message = "") const;
    // Vocabulary size reported by the server (/v1/models meta.n_vocab); 0 when it does not say.
    int32_t n_vocab() const;
    int64_t n_requests() const;
    // Context tokens sent with proposal requests, and how many of them llama-server took from its
    // prompt cache instead of decoding them (timings.cache_n): the prefix reuse.
    int64_t n_context_tokens_sent() const;
    int64_t n_context_tokens_cached() const;

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

// vLLM's OpenAI-compatible API: /v1/completions with token-id prompts, logprobs and
// return_tokens_as_token_ids, and /tokenize, /detokenize, /v1/models. Assumes the server's default
// --logprobs-mode raw_logprobs (log p at temperature 1, before any processing; docs/remote.md).
class vllm_generator : public sequence_generator {
public:
    explicit vllm_generator(remote_params params);
    ~vllm_generator() override;

    // Throws error for a failed request and for an answer that is malformed, stopped for a
    // reason other than EOG or the length cap, or lacks a log-probability the ratio needs.
    generated_suffix generate(const std::vector<token_id> & context, int32_t max_tokens, double temperature,
                              uint64_t seed) override;

    // The model name sent with every request: remote_params.model, or the first of /v1/models.
    std::string model() const;
    // The model's tokenizer, special tokens (BOS) added as for a completion prompt.
    std::vector<token_id> tokenize(const std::string & text) const;
    // One user message in the model's chat template, the assistant turn opened, as token ids
    // (vLLM's /tokenize renders the template; no round trip through text).
    std::vector<token_id> tokenize_chat(const std::string & user_message,
                                        const std::string & system_message = "") const;
    std::string           detokenize(const std::vector<token_id> & tokens) const;
    // vLLM does not report its vocabulary size: 0.
    int32_t n_vocab() const { return 0; }
    int64_t n_requests() const;
    // Context tokens sent with proposal requests, and how many of them vLLM's prefix cache served
    // (usage.prompt_tokens_details.cached_tokens, reported when vLLM runs with
    // --enable-prompt-tokens-details); -1 when the server never reported it.
    int64_t n_context_tokens_sent() const;
    int64_t n_context_tokens_cached() const;

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

}  // namespace powersample
