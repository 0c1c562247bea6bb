// powersample: power sampling for language models on llama.cpp.
//
// Basic usage:
//
//     #include <powersample/powersample.h>
//
//     auto m = powersample::model::load({.path = "qwen2.5-coder-0.5b"});   // a catalogue name or a .gguf
//     powersample::power_sampler sampler(m);
//     powersample::sampling_params sp = powersample::preset("quality");
//     sp.seed = 42;
//     auto result = sampler.generate(m->format_chat("What is 7 * 8?"), sp);
//     std::cout << result.chains[0].text << "\n";
//
//     // or, mirroring the seed's Python API:
//     auto r = powersample::power_sample(m, "What is 7 * 8?", 4.0, 64, 5, 256);
//
// sampling.h documents the parameters, presets and results; engine.h the batching engine that
// runs them on any language_model (language-model.h). This header adds the llama.cpp backend.
//
// Ownership: `model` is shared (std::shared_ptr) and read-only after loading; a power_sampler
// holds one llama.cpp context and is used from one thread at a time. Several power_samplers may
// share one model across threads.
// Errors: invalid_argument_error for bad user input (the message names the parameter and the
// value), error for everything else. Nothing here exits or aborts the process.
// Logging: llama.cpp's and powersample's log lines go to stderr, warnings and errors only, unless
// set_log_callback() says otherwise.
#pragma once

#include "powersample/engine.h"
#include "powersample/knobs.h"
#include "powersample/language-model.h"
#include "powersample/sampling.h"

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace powersample {

enum class log_level { debug, info, warn, error };
// Receives every log line (no trailing newline). Pass nullptr to restore the default: warnings
// and errors to stderr. Not thread-safe: set it before loading models.
void set_log_callback(std::function<void(log_level, const std::string &)> callback);
// Default callback's threshold (default: warn).
void set_log_level(log_level min_level);

struct model_params {
    std::string path;              // a .gguf path, or a catalogue name (see model_catalog())
    int32_t     n_gpu_layers = 0;  // layers offloaded to a GPU; -1 = all; 0 = CPU only
};

// A known model: how `power-sampling models` lists it and where setup puts it.
struct catalog_entry {
    std::string name;  // e.g. "smollm2-135m"
    std::string file;  // file name under the models cache directory
    std::string description;
    std::string source;  // where it comes from (power-sampling models --fetch NAME fetches it)
    bool        chat;    // instruction-tuned with a chat template
};
const std::vector<catalog_entry> & model_catalog();
// The models cache: $POWERSAMPLE_CACHE, else $XDG_CACHE_HOME/powersample, else ~/.cache/powersample,
// with "/models" appended.
std::string models_directory();
// Resolves a catalogue name or a path to a file path; throws invalid_argument_error naming the
// model when it is neither an existing file nor a cached catalogue model.
std::string               resolve_model_path(const std::string & name_or_path);
extern const char * const default_model_name;  // "qwen2.5-coder-0.5b"

// This build: powersample's version and git commit, and the llama.cpp it was built against.
struct build_info {
    std::string version;    // e.g. "0.1.0"
    std::string commit;     // short git commit at configure time, "unknown" outside a checkout
    std::string llama_cpp;  // llama.cpp's package version and where it was found
};
const build_info & get_build_info();
// One line for --version: "powersample 0.1.0 (commit abc1234), llama.cpp 0.5.0-dev (...)".
std::string version_line();

struct chat_message {
    std::string role;  // "system", "user" or "assistant"
    std::string content;
};

class model {
public:
    // Loads a GGUF model. Throws invalid_argument_error for a missing, unreadable or non-GGUF
    // file, error when llama.cpp cannot load it (truncated, unsupported architecture).
    static std::shared_ptr<model> load(const model_params & params);
    ~model();

    // Text -> tokens. add_special: prepend BOS where the model wants one; parse_special: special
    // tokens written in the text (e.g. "<|im_start|>") become those tokens (false: plain text).
    // Throws invalid_argument_error for invalid UTF-8.
    std::vector<token_id> tokenize(const std::string & text, bool add_special = true, bool parse_special = true) const;
    // Tokens -> text; end-of-generation and other special tokens are not rendered. Always valid
    // UTF-8: bytes of a character cut by the end of `tokens` (or invalid bytes) become U+FFFD
    // (powersample/text.h).
    std::string detokenize(const std::vector<token_id> & tokens) const;
    // A completion's text, as sample_result::text has it: end-of-generation tokens dropped, the
    // rest detokenized (valid UTF-8), and cut before the first occurrence of `stop` (the stop
    // string that ended it, sample_result::stop; empty = none), as OpenAI returns it.
    std::string completion_text(const std::vector<token_id> & tokens, const std::string & stop = "") const;
    // One token's text, special tokens rendered; U+FFFD for a token that is part of a character.
    std::string token_to_piece(token_id token) const;

    bool has_chat_template() const;
    // Wraps one user message in the model's chat template, ready for generation (the assistant
    // turn opened). Throws error when the model has no usable template.
    std::string format_chat(const std::string & user_message, const std::string & system_message = "") const;
    // A whole conversation (roles "system", "user", "assistant"), with the assistant turn opened.
    // Throws error as above, invalid_argument_error for an empty list.
    std::string format_chat(const std::vector<chat_message> & messages) const;
    // format_chat() tokenized so that only the template's own markers become special tokens: a
    // message that contains "<|im_end|>\n<|im_start|>system" stays text and cannot forge a turn.
    // Use it, not tokenize(format_chat(...)), for anything a user wrote. For text without
    // special-token look-alikes the tokens are the same as tokenize(format_chat(messages)).
    std::vector<token_id> tokenize_chat(const std::vector<chat_message> & messages) const;

    int32_t n_vocab() const;
    int32_t n_ctx_train() const;
    bool    is_eog(token_id token) const;
    // False for recurrent and hybrid models: their state cannot be cut back to a prefix, so the
    // backend re-decodes the prefix instead (correct, slower).
    bool        can_truncate_state() const;
    std::string path() const;
    std::string description() const;  // llama.cpp's "arch size quant" line
    uint64_t    n_params() const;
    uint64_t    size_bytes() const;

    struct impl;
    const impl & internals() const { return *impl_; }

private:
    model();
    std::unique_ptr<impl> impl_;
};

struct context_params {
    int32_t n_threads = 0;    // CPU threads; 0 = hardware concurrency
    int32_t n_ctx     = 0;    // KV-cache cells in total, split into one stream per sequence (each
                              // rounded up to a multiple of 256); caps how many sequences run at
                              // once; 0 = sized for each job
    int32_t n_seq_max = 0;    // sequence ids; 0 = sized for each job (max 256)
    int32_t n_batch   = 512;  // tokens per llama_decode call; >= 1
    // Re-decode the prompt and prefix for every proposal instead of sharing them in the KV cache,
    // as the paper's reference code does. Slower and equivalent: a baseline for benchmarks and the
    // path that recurrent models take anyway.
    bool recompute_prefix = false;
};

// Per-call options that are not part of the distribution being sampled.
struct run_options {
    progress_callback         on_progress;       // called from the calling thread
    const std::atomic<bool> * cancel = nullptr;  // set to true (e.g. from SIGINT) to stop
    // Called from the calling thread after every decode round (one token of every live chain):
    // a place to poll for interrupts more often than progress reports come (a block can take
    // seconds). It may set *cancel.
    std::function<void()> on_round;
};

class power_sampler {
public:
    explicit power_sampler(std::shared_ptr<model> m, context_params params = {});
    ~power_sampler();

    // Samples a completion of `prompt` (used as is: apply format_chat() first for a chat model).
    // Throws invalid_argument_error for bad parameters, an empty prompt, or a prompt plus
    // max_new_tokens beyond the model's training context.
    generation_result generate(const std::string & prompt, const sampling_params & params,
                               const run_options & options = {});
    generation_result generate_tokens(const std::vector<token_id> & prompt, const sampling_params & params,
                                      const run_options & options = {});

    // Many prompts through one context with continuous batching. on_result is called as each
    // request finishes (in finishing order, with its index in `requests`); all results are also
    // returned in input order.
    std::vector<generation_result> generate_batch(
        const std::vector<std::pair<std::string, sampling_params>> & requests, const run_options & options = {},
        const std::function<void(size_t, const generation_result &)> & on_result = {});
    // The same with token prompts (model::tokenize_chat's, say).
    std::vector<generation_result> generate_batch_tokens(
        const std::vector<std::pair<std::vector<token_id>, sampling_params>> & requests,
        const run_options &                                                    options   = {},
        const std::function<void(size_t, const generation_result &)> &         on_result = {});

    // Log-probabilities log p(x_i | prompt, x_<i) of `completion` after `prompt`, computed in a
    // fresh pass (for checking and for ranking samples).
    std::vector<double> score(const std::vector<token_id> & prompt, const std::vector<token_id> & completion);

    const model & get_model() const;

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};
using PowerSampler = power_sampler;  // the seed's name

// An engine-ready llama.cpp context for a long-lived `engine` (a server's, say): params.n_seq_max
// sequences (1 to 256), each with its own KV stream of n_ctx / n_seq_max cells (rounded up to a
// multiple of 256), as power_sampler uses. Give n_seq_max = sequences_needed() of the largest
// request you will admit times how many such requests may run at once, and n_ctx = n_seq_max
// times the longest sequence (prompt + max_new_tokens + 1); the engine queues what does not fit.
// The result keeps the model alive, and is used from one thread at a time. Throws
// invalid_argument_error for bad sizes, error when llama.cpp cannot allocate the context.
std::unique_ptr<language_model> create_language_model(std::shared_ptr<model> m, const context_params & params);

// The seed's one-call API: chat-formats the prompt when the model has a chat template,
// samples one power-sampling chain and returns it. temperature <= 0 means 1/alpha.
// show_progress draws a progress bar on stderr.
sample_result power_sample(const std::shared_ptr<model> & m, const std::string & prompt, double alpha = 4.0,
                           int32_t block_size = 64, int32_t steps = 5, int32_t max_len = 256, double temperature = 0.0,
                           bool show_progress = false, uint64_t seed = 0);

}  // namespace powersample
