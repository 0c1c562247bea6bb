#include "powersample/powersample.h"

#include "llama/llama-backend.h"
#include "llama/log.h"
#include "core/token-sampler.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <unistd.h>

namespace powersample {

namespace {

constexpr int32_t max_sequences   = 256;  // llama.cpp's LLAMA_MAX_SEQ
constexpr int64_t batch_cells_cap = 65536;

}  // namespace

struct power_sampler::impl {
    std::shared_ptr<model>                model_ref;
    context_params                        params;
    std::unique_ptr<llama_language_model> lm;

    // Recreates the context only when a job needs longer sequences, or more of them, than it
    // has. seq_len: the longest sequence of the job (prompt + completion); seqs_wanted: ids for
    // everything at once; seqs_min: ids for the largest single request.
    void ensure_context(int64_t seq_len, int32_t seqs_wanted, int32_t seqs_min) {
        const int64_t per_seq = (std::max<int64_t>(seq_len, 1) + 255) / 256 * 256;  // llama.cpp's padding
        int64_t       seqs    = params.n_seq_max > 0 ? params.n_seq_max : seqs_wanted;
        if (params.n_ctx > 0) {
            seqs = std::min<int64_t>(seqs, params.n_ctx / per_seq);
            if (seqs < seqs_min) {
                throw invalid_argument_error("n_ctx", "n_ctx = " + std::to_string(params.n_ctx) +
                                                          ": too small; a request needs " + std::to_string(seqs_min) +
                                                          " sequences of " + std::to_string(per_seq) + " cells (" +
                                                          std::to_string(seqs_min * per_seq) + " cells)");
            }
        } else {
            seqs = std::min<int64_t>(seqs, std::max<int64_t>(seqs_min, batch_cells_cap / per_seq));
        }
        seqs = std::max<int64_t>(1, std::min<int64_t>(seqs, max_sequences));
        if (lm && lm->n_cells_per_sequence() >= per_seq && lm->n_seq_max() >= seqs) {
            return;
        }
        lm.reset();
        lm = std::make_unique<llama_language_model>(*model_ref, int32_t(per_seq), int32_t(seqs), params.n_batch,
                                                    params.n_threads, params.recompute_prefix);
    }

    void check_request(const std::vector<token_id> & prompt, const sampling_params & sp) const {
        validate(sp);
        if (prompt.empty()) {
            throw invalid_argument_error("prompt", "prompt: empty");
        }
        if (int64_t(prompt.size()) >= model_ref->n_ctx_train()) {
            throw invalid_argument_error("prompt", "prompt: " + std::to_string(prompt.size()) +
                                                       " tokens, beyond the model's context of " +
                                                       std::to_string(model_ref->n_ctx_train()) + " tokens");
        }
        const int64_t need = int64_t(prompt.size()) + sp.max_new_tokens;
        if (need > model_ref->n_ctx_train()) {
            const std::string field = knob_for(&sampling_params::max_new_tokens).name();
            throw invalid_argument_error(field, field + " = " + std::to_string(sp.max_new_tokens) +
                                                    ": with the prompt's " + std::to_string(prompt.size()) +
                                                    " tokens this exceeds the model's context of " +
                                                    std::to_string(model_ref->n_ctx_train()) + " tokens");
        }
        if (sequences_needed(sp) > max_sequences) {
            throw invalid_argument_error(
                "chains", std::string("method ") + method_name(sp.method) + " with chains = " +
                              std::to_string(sp.n_chains) + ": needs " + std::to_string(sequences_needed(sp)) +
                              " sequence ids, llama.cpp allows " + std::to_string(max_sequences) +
                              " (fewer chains, particles, candidates "
                              "or rollouts)");
        }
    }

    void fill_text(generation_result & g) const {
        for (auto & c : g.chains) c.text = model_ref->completion_text(c.tokens, c.stop);
    }

    void drive(engine & eng, const run_options & options, const std::function<void(finished_request &)> & on_done) {
        if (options.on_progress) eng.set_progress_callback(options.on_progress);
        bool cancelled = false;
        while (true) {
            if (!cancelled && options.cancel && options.cancel->load()) {
                eng.cancel_all();
                cancelled = true;
            }
            const bool more = eng.step();
            if (options.on_round) options.on_round();
            for (auto & f : eng.take_finished()) on_done(f);
            if (!more) break;
        }
    }
};

power_sampler::power_sampler(std::shared_ptr<model> m, context_params params) : impl_(std::make_unique<impl>()) {
    if (!m) throw invalid_argument_error("model", "model: null");
    impl_->model_ref = std::move(m);
    impl_->params    = params;
    if (params.n_threads < 0) {
        throw invalid_argument_error("n_threads", "n_threads = " + std::to_string(params.n_threads) + ": must be >= 0");
    }
    if (params.n_batch < 1) {
        throw invalid_argument_error("n_batch", "n_batch = " + std::to_string(params.n_batch) + ": must be >= 1");
    }
}

power_sampler::~power_sampler() = default;

const model & power_sampler::get_model() const { return *impl_->model_ref; }

generation_result power_sampler::generate(const std::string & prompt, const sampling_params & params,
                                          const run_options & options) {
    if (prompt.empty()) throw invalid_argument_error("prompt", "prompt: empty");
    return generate_tokens(impl_->model_ref->tokenize(prompt, true), params, options);
}

generation_result power_sampler::generate_tokens(const std::vector<token_id> & prompt, const sampling_params & params,
                                                 const run_options & options) {
    impl_->check_request(prompt, params);
    const int32_t seqs = sequences_needed(params);
    impl_->ensure_context(int64_t(prompt.size()) + params.max_new_tokens, seqs, seqs);
    engine eng(*impl_->lm);
    eng.submit({ prompt, params });
    generation_result out;
    impl_->drive(eng, options, [&](finished_request & f) { out = std::move(f.result); });
    impl_->fill_text(out);
    return out;
}

std::vector<generation_result> power_sampler::generate_batch(
    const std::vector<std::pair<std::string, sampling_params>> & requests, const run_options & options,
    const std::function<void(size_t, const generation_result &)> & on_result) {
    std::vector<std::pair<std::vector<token_id>, sampling_params>> tokenized;
    for (const auto & r : requests) {
        if (r.first.empty())
            throw invalid_argument_error("prompt", "prompt " + std::to_string(tokenized.size()) + ": empty");
        tokenized.emplace_back(impl_->model_ref->tokenize(r.first, true), r.second);
    }
    return generate_batch_tokens(tokenized, options, on_result);
}

std::vector<generation_result> power_sampler::generate_batch_tokens(
    const std::vector<std::pair<std::vector<token_id>, sampling_params>> & requests, const run_options & options,
    const std::function<void(size_t, const generation_result &)> & on_result) {
    int64_t longest = 0;
    int32_t seqs = 0, largest_seqs = 0;
    for (size_t i = 0; i < requests.size(); ++i) {
        const auto & r = requests[i];
        if (r.first.empty()) throw invalid_argument_error("prompt", "prompt " + std::to_string(i) + ": no tokens");
        impl_->check_request(r.first, r.second);
        longest      = std::max(longest, int64_t(r.first.size()) + r.second.max_new_tokens);
        seqs         = int32_t(std::min<int64_t>(int64_t(seqs) + sequences_needed(r.second), max_sequences));
        largest_seqs = std::max(largest_seqs, sequences_needed(r.second));
    }
    if (requests.empty()) return {};
    // Room for as many requests at once as the caps allow, and always for the largest one.
    impl_->ensure_context(longest, seqs, largest_seqs);
    engine eng(*impl_->lm);
    for (const auto & r : requests) eng.submit({ r.first, r.second });
    std::vector<generation_result> results(requests.size());
    impl_->drive(eng, options, [&](finished_request & f) {
        const size_t index = size_t(f.id);  // a fresh engine numbers requests 0, 1, ... in submit order
        impl_->fill_text(f.result);
        if (on_result) on_result(index, f.result);
        results[index] = std::move(f.result);
    });
    return results;
}

std::vector<double> power_sampler::score(const std::vector<token_id> & prompt,
                                         const std::vector<token_id> & completion) {
    if (prompt.empty()) throw invalid_argument_error("prompt", "prompt: empty");
    const int64_t total = int64_t(prompt.size() + completion.size());
    if (total > impl_->model_ref->n_ctx_train()) {
        throw invalid_argument_error("completion", "score: prompt + completion (" + std::to_string(total) +
                                                       " tokens) exceeds the model's context");
    }
    if (completion.empty()) return {};
    impl_->ensure_context(total + 1, 1, 1);
    auto & lm = *impl_->lm;
    lm.seq_clear(0);
    std::vector<token_id> all = prompt;
    all.insert(all.end(), completion.begin(), completion.end());
    std::vector<double> out;
    // Positions P-1 .. P+L-2 give the distributions of the completion's tokens; decode in
    // batches so that only one batch of logits rows is held at a time.
    const size_t first_scored = prompt.size() - 1;
    size_t       i            = 0;
    while (i + 1 < all.size()) {
        std::vector<decode_entry> chunk;
        const size_t              end = std::min(all.size() - 1, i + size_t(lm.n_batch()));
        for (size_t k = i; k < end; ++k) chunk.push_back({ 0, all[k], k >= first_scored });
        lm.decode(chunk);
        for (size_t k = i; k < end; ++k) {
            if (k >= first_scored) {
                out.push_back(token_log_prob(lm.logits(int32_t(k - i)), lm.n_vocab(), all[k + 1]));
            }
        }
        i = end;
    }
    lm.seq_clear(0);
    return out;
}

namespace {

// Holds the model for as long as the context lives: the holder base is built first.
struct model_holder {
    std::shared_ptr<model> held;
};

class owning_language_model : private model_holder, public llama_language_model {
public:
    owning_language_model(std::shared_ptr<model> m, const context_params & p)
        : model_holder{ std::move(m) },
          llama_language_model(*held, (p.n_ctx / p.n_seq_max + 255) / 256 * 256, p.n_seq_max, p.n_batch, p.n_threads,
                               p.recompute_prefix) {}
};

}  // namespace

std::unique_ptr<language_model> create_language_model(std::shared_ptr<model> m, const context_params & params) {
    if (!m) throw invalid_argument_error("model", "model: null");
    if (params.n_ctx < 1) {
        throw invalid_argument_error("n_ctx", "n_ctx = " + std::to_string(params.n_ctx) + ": must be >= 1");
    }
    if (params.n_seq_max > 0 && params.n_ctx / params.n_seq_max < 1) {
        throw invalid_argument_error("n_ctx",
                                     "n_ctx = " + std::to_string(params.n_ctx) + ": less than one cell per sequence");
    }
    if (params.n_seq_max < 1 || params.n_seq_max > max_sequences) {
        throw invalid_argument_error("n_seq_max", "n_seq_max = " + std::to_string(params.n_seq_max) +
                                                      ": must be in [1, " + std::to_string(max_sequences) + "]");
    }
    if (params.n_batch < 1) {
        throw invalid_argument_error("n_batch", "n_batch = " + std::to_string(params.n_batch) + ": must be >= 1");
    }
    if (params.n_threads < 0) {
        throw invalid_argument_error("n_threads", "n_threads = " + std::to_string(params.n_threads) + ": must be >= 0");
    }
    return std::make_unique<owning_language_model>(std::move(m), params);
}

sample_result power_sample(const std::shared_ptr<model> & m, const std::string & prompt, double alpha,
                           int32_t block_size, int32_t steps, int32_t max_len, double temperature, bool show_progress,
                           uint64_t seed) {
    if (!m) throw invalid_argument_error("model", "model: null");
    sampling_params sp;
    sp.alpha             = alpha;
    sp.block_size        = block_size;
    sp.n_steps_per_block = steps;
    sp.max_new_tokens    = max_len;
    sp.temperature       = temperature > 0.0 ? temperature : 0.0;
    sp.seed              = seed;
    run_options options;
    const bool  tty = show_progress && isatty(STDERR_FILENO);
    if (show_progress) {
        options.on_progress = [tty](const progress & p) {
            if (!tty && !p.done) return;
            const int    width = 30;
            const double frac =
                p.n_blocks > 0
                    ? std::min(1.0, (p.block - 1 + (p.n_steps ? double(p.step) / p.n_steps : 1.0)) / p.n_blocks)
                    : 1.0;
            const int filled = p.done ? width : int(frac * width);
            std::fprintf(stderr, "\r[%.*s%*s] block %d/%d step %d/%d accepted %d/%d tokens %lld%s", filled,
                         "##############################", width - filled, "", p.block, p.n_blocks, p.step, p.n_steps,
                         p.n_accepted, p.n_proposals, (long long)p.n_tokens_generated, p.done ? "\n" : "");
            std::fflush(stderr);
        };
    }
    if (prompt.empty()) throw invalid_argument_error("prompt", "prompt: empty");
    power_sampler               sampler(m);
    const std::vector<token_id> tokens =
        m->has_chat_template() ? m->tokenize_chat({ { "user", prompt } }) : m->tokenize(prompt, true);
    generation_result g = sampler.generate_tokens(tokens, sp, options);
    return std::move(g.chains.at(0));
}

}  // namespace powersample
