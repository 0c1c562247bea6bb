// power-sampling-bench: powersample's speed against the limits, in the manner of llama-bench.
//
// Every test that reports a ratio measures its baseline in the same run, with repetitions of
// the test and of its baseline interleaved, so that load from other processes hits both alike.
// Timed: token generation only: generate_tokens() on a context created (at full size) by the
// warm-up, prompt decode included; llama.cpp's loops after their prompt. Not timed: model
// loading, context creation, tokenization, and the baselines' prompts.
// --timer cpu measures the process's CPU time instead of wall time: with -t 1 that is the work
// done, and much less disturbed than wall time by other processes on a shared machine.
#include "powersample/powersample.h"

#include "llama.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <time.h>
#include <vector>

namespace ps = powersample;

namespace {

const std::vector<std::string> default_tests = { "decode-limit", "mcmc-single",    "recompute-speedup",
                                                 "batch-limit",  "chains-scaling", "memory" };
// "methods" runs every sampler once per repetition: minutes per row on a CPU, so only on request.
const std::vector<std::string> all_tests = { "decode-limit",   "mcmc-single", "recompute-speedup", "batch-limit",
                                             "chains-scaling", "memory",      "methods",           "early-rejection" };

struct options {
    std::string              model                    = ps::default_model_name;
    int32_t                  n_threads                = 0;
    int32_t                  n_gpu_layers             = 0;
    uint64_t                 seed                     = 42;
    int32_t                  repetitions              = 3;
    std::string              output                   = "md";
    std::vector<std::string> tests                    = default_tests;
    std::vector<std::string> methods                  = { "sample", "power", "power-entropy", "smc", "sps" };
    int32_t                  particles                = 0;  // methods: smc particles; 0 = the library default
    int32_t                  n_prompt                 = 32;
    int32_t                  n_gen                    = 256;
    std::string              preset                   = "quality";
    int32_t                  max_new_tokens           = 0;
    int32_t                  recompute_max_new_tokens = 0;
    std::vector<int32_t>     prompt_lengths           = { 32, 256, 1024 };
    std::vector<int32_t>     chains                   = { 1, 2, 4, 8, 16, 32 };
    bool                     warmup                   = true;
};

struct stats {
    double mean = 0.0, stddev = 0.0;
    int    n = 0;
};

stats summarize(const std::vector<double> & xs) {
    stats s;
    s.n = int(xs.size());
    if (xs.empty()) return s;
    for (double x : xs) s.mean += x;
    s.mean /= double(xs.size());
    if (xs.size() > 1) {
        double ss = 0.0;
        for (double x : xs) ss += (x - s.mean) * (x - s.mean);
        s.stddev = std::sqrt(ss / double(xs.size() - 1));  // sample standard deviation, as llama-bench
    }
    return s;
}

struct row {
    std::string           test;
    std::string           params;  // the settings that distinguish rows of one test
    stats                 value;
    std::string           unit;
    double                n_tokens = 0;  // mean tokens through the model per repetition (work done)
    std::optional<double> ratio;         // speed relative to ratio_to: > 1 means faster (or more)
    std::string           ratio_to;
};

void log_line(const std::string & s) { std::fprintf(stderr, "bench: %s\n", s.c_str()); }

// Exactly n tokens of ordinary prose: a text repeated until long enough, then cut.
std::vector<ps::token_id> make_prompt(const ps::model & m, int32_t n) {
    static const std::string text =
        "The history of mathematics spans thousands of years and many cultures. Early counting systems "
        "grew into arithmetic, geometry arose from measuring land, and astronomy demanded ever more "
        "precise calculation. Greek scholars introduced proof, Indian mathematicians gave us the digits "
        "and zero, and scholars in Baghdad wrote the first books on algebra. ";
    std::string               long_text = text;
    std::vector<ps::token_id> tokens    = m.tokenize(long_text, true);
    while (int32_t(tokens.size()) < n) {
        long_text += text;
        tokens = m.tokenize(long_text, true);
    }
    tokens.resize(size_t(n));
    return tokens;
}

bool use_cpu_timer = false;

double clock_now() {
    timespec ts{};
    clock_gettime(use_cpu_timer ? CLOCK_PROCESS_CPUTIME_ID : CLOCK_MONOTONIC, &ts);
    return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

double seconds_since(double t0) { return clock_now() - t0; }

// Peak resident set size. Linux lets a process reset its own high-water mark by writing 5 to
// /proc/self/clear_refs; where that fails the figure is the process's peak since start.
bool reset_peak_rss() {
    std::ofstream f("/proc/self/clear_refs");
    if (!f) return false;
    f << "5";
    f.flush();
    return bool(f);
}

double status_kib(const std::string & key) {
    std::ifstream f("/proc/self/status");
    std::string   line;
    while (std::getline(f, line)) {
        if (line.rfind(key + ":", 0) == 0) {
            return std::atof(line.c_str() + key.size() + 1);
        }
    }
    return 0.0;
}

// ---------------------------------------------------------------- llama.cpp's own decode loop

struct llama_baseline {
    llama_model *   model = nullptr;
    llama_context * ctx   = nullptr;

    llama_baseline(const std::string & path, int32_t n_gpu_layers, int32_t n_ctx, int32_t n_threads) {
        llama_model_params mp = llama_model_default_params();
        mp.n_gpu_layers       = n_gpu_layers;
        model                 = llama_model_load_from_file(path.c_str(), mp);
        if (!model) throw ps::error("llama.cpp could not load '" + path + "'");
        llama_context_params cp = llama_context_default_params();
        cp.n_ctx                = uint32_t(n_ctx);
        cp.n_batch              = uint32_t(n_ctx);  // the whole prompt in one llama_decode
        cp.n_threads            = n_threads;
        cp.n_threads_batch      = n_threads;
        cp.no_perf              = true;
        ctx                     = llama_init_from_model(model, cp);
        if (!ctx) throw ps::error("could not create a llama.cpp context of " + std::to_string(n_ctx) + " cells");
    }
    ~llama_baseline() {
        if (ctx) llama_free(ctx);
        if (model) llama_model_free(model);
    }

    void decode_or_throw(llama_batch b) {
        if (llama_decode(ctx, b) != 0) throw ps::error("llama_decode failed in the decode-limit baseline");
    }

    // Prompt (untimed), then n_gen single-token decodes with argmax; returns tokens/s.
    double run(const std::vector<ps::token_id> & prompt, int32_t n_gen) {
        llama_memory_clear(llama_get_memory(ctx), true);
        std::vector<llama_token> p(prompt.begin(), prompt.end());
        decode_or_throw(llama_batch_get_one(p.data(), int32_t(p.size())));
        const int32_t n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(model));
        const double  t0      = clock_now();
        for (int32_t i = 0; i < n_gen; ++i) {
            const float * row  = llama_get_logits_ith(ctx, -1);
            llama_token   best = int32_t(std::max_element(row, row + n_vocab) - row);
            decode_or_throw(llama_batch_get_one(&best, 1));
        }
        return n_gen / seconds_since(t0);
    }
};

// ---------------------------------------------------------------- tests

class bench {
public:
    bench(options o, std::shared_ptr<ps::model> m) : opt_(std::move(o)), model_(std::move(m)) {}

    std::vector<row> rows;

    void run() {
        const auto has = [&](const std::string & t) {
            return std::find(opt_.tests.begin(), opt_.tests.end(), t) != opt_.tests.end();
        };
        if (has("decode-limit") || has("mcmc-single")) decode_and_single(has("decode-limit"), has("mcmc-single"));
        if (has("recompute-speedup")) recompute_speedup();
        if (has("batch-limit")) batch_limit();
        if (has("chains-scaling")) chains_scaling();
        if (has("memory")) memory();
        if (has("methods")) methods();
        if (has("early-rejection")) early_rejection();
    }

private:
    options                    opt_;
    std::shared_ptr<ps::model> model_;

    ps::context_params context(bool recompute) const {
        ps::context_params cp;
        cp.n_threads        = opt_.n_threads;
        cp.recompute_prefix = recompute;
        return cp;
    }

    // KV cells power_sampler gives a job: one stream per sequence (two per chain and one for the
    // prompt), each the prompt plus the completion, rounded up to llama.cpp's 256.
    static int32_t stream_cells(int32_t n_prompt, const ps::sampling_params & sp) {
        return (2 * sp.n_chains + 1) * ((n_prompt + sp.max_new_tokens + 255) / 256 * 256);
    }

    // A context big enough for the full run, so that a short warm-up creates it once and no
    // timed run re-creates it.
    ps::context_params sized_context(int32_t n_prompt, const ps::sampling_params & sp, bool recompute) const {
        ps::context_params cp = context(recompute);
        cp.n_ctx              = stream_cells(n_prompt, sp);
        return cp;
    }

    static ps::generation_result timed_generate(ps::power_sampler & s, const std::vector<ps::token_id> & prompt,
                                                const ps::sampling_params & sp, double & seconds) {
        const double          t0 = clock_now();
        ps::generation_result g  = s.generate_tokens(prompt, sp);
        seconds                  = seconds_since(t0);
        return g;
    }

    ps::sampling_params mcmc_params(int32_t n_chains) const {
        ps::sampling_params sp = ps::preset(opt_.preset);
        sp.seed                = opt_.seed;
        sp.n_chains            = n_chains;
        sp.record_trace        = false;
        if (opt_.max_new_tokens > 0) sp.max_new_tokens = opt_.max_new_tokens;
        return sp;
    }

    std::string mcmc_desc(const ps::sampling_params & sp) const {
        return fmt::format("{} a={} B={} N={} T={}", opt_.preset, sp.alpha, sp.block_size, sp.n_steps_per_block,
                           sp.max_new_tokens);
    }

    // Chains' decoded tokens per second of wall time. The prompt's batched decode is left out of
    // the tokens but not of the time: a conservative rate.
    static double chain_tokens(const ps::generation_result & g) {
        double n = 0;
        for (const auto & c : g.chains) n += double(c.n_tokens_decoded);
        return n;
    }

    // Runs fns[k] for every repetition, interleaved; the order rotates each repetition so that no
    // case always runs first after a pause.
    void interleave(const std::vector<std::function<void(int)>> & fns) {
        for (int r = 0; r < opt_.repetitions; ++r) {
            for (size_t i = 0; i < fns.size(); ++i) {
                fns[(i + size_t(r)) % fns.size()](r);
            }
        }
    }

    void decode_and_single(bool want_limit, bool want_single) {
        const auto                      prompt = make_prompt(*model_, opt_.n_prompt);
        std::unique_ptr<llama_baseline> base;
        if (want_limit) {
            base = std::make_unique<llama_baseline>(model_->path(), opt_.n_gpu_layers, opt_.n_prompt + opt_.n_gen + 16,
                                                    opt_.n_threads);
        }
        const ps::sampling_params sp = mcmc_params(1);
        ps::power_sampler         sampler(model_, sized_context(opt_.n_prompt, sp, false));

        std::vector<double>                   limit, single, single_tokens;
        std::vector<std::function<void(int)>> fns;
        if (want_limit) {
            if (opt_.warmup) base->run(prompt, opt_.n_gen);
            fns.push_back([&](int r) {
                limit.push_back(base->run(prompt, opt_.n_gen));
                log_line(fmt::format("decode-limit rep {}: {:.2f} t/s", r + 1, limit.back()));
            });
        }
        if (want_single) {
            if (opt_.warmup) sampler.generate_tokens(prompt, sp);
            fns.push_back([&](int r) {
                double     secs = 0;
                const auto g    = timed_generate(sampler, prompt, sp, secs);
                single.push_back(chain_tokens(g) / secs);
                single_tokens.push_back(chain_tokens(g));
                log_line(fmt::format("mcmc-single rep {}: {:.2f} t/s ({} tokens, acceptance {:.2f})", r + 1,
                                     single.back(), chain_tokens(g), g.chains[0].acceptance_rate()));
            });
        }
        interleave(fns);

        if (want_limit) {
            row rw{ "decode-limit",     fmt::format("p={} n={} argmax", opt_.n_prompt, opt_.n_gen),
                    summarize(limit),   "t/s",
                    double(opt_.n_gen), 1.0,
                    "decode-limit" };
            rows.push_back(rw);
        }
        if (want_single) {
            row rw{ "mcmc-single",
                    fmt::format("p={} {} chains=1", opt_.n_prompt, mcmc_desc(sp)),
                    summarize(single),
                    "t/s",
                    summarize(single_tokens).mean,
                    std::nullopt,
                    "" };
            if (want_limit) {
                rw.ratio    = rw.value.mean / summarize(limit).mean;
                rw.ratio_to = "decode-limit";
            }
            rows.push_back(rw);
        }
    }

    // The same chains with early rejection on and off, in one run: tokens decoded by each, the
    // fraction saved, and the wall-time ratio (off over on: > 1 means early rejection is faster).
    // The chains must be identical, token for token, or the bench fails.
    void early_rejection() {
        const auto prompt = make_prompt(*model_, opt_.n_prompt);
        for (const char * name : { "quality", "paper" }) {
            ps::sampling_params on = ps::preset(name);
            on.seed                = opt_.seed;
            on.record_trace        = false;
            if (opt_.max_new_tokens > 0) on.max_new_tokens = opt_.max_new_tokens;
            ps::sampling_params off = on;
            off.early_rejection     = false;
            ps::power_sampler         sampler(model_, sized_context(opt_.n_prompt, on, false));
            std::vector<double>       secs_on, secs_off, tokens_on, tokens_off;
            std::vector<ps::token_id> chain_on, chain_off;
            auto run = [&](const ps::sampling_params & sp, std::vector<double> & secs, std::vector<double> & tokens,
                           std::vector<ps::token_id> & chain) {
                double     t = 0;
                const auto g = timed_generate(sampler, prompt, sp, t);
                secs.push_back(t);
                tokens.push_back(chain_tokens(g));
                chain = g.chains.at(0).tokens;
            };
            interleave({ [&](int) { run(on, secs_on, tokens_on, chain_on); },
                         [&](int) { run(off, secs_off, tokens_off, chain_off); } });
            if (chain_on != chain_off) throw ps::error("early-rejection: the chains differ with it on and off");
            const std::string desc  = fmt::format("p={} {} a={} B={} N={} T={}", opt_.n_prompt, name, on.alpha,
                                                  on.block_size, on.n_steps_per_block, on.max_new_tokens);
            const stats       t_off = summarize(tokens_off), t_on = summarize(tokens_on);
            rows.push_back({ "early-rejection", desc + " off", t_off, "tokens", t_off.mean, 1.0, "off" });
            rows.push_back(
                { "early-rejection", desc + " on", t_on, "tokens", t_on.mean, t_off.mean / t_on.mean, "off" });
            rows.push_back({ "early-rejection", desc + " saved", summarize({ 1.0 - t_on.mean / t_off.mean }),
                             "fraction", t_off.mean - t_on.mean, std::nullopt, "" });
            rows.push_back({ "early-rejection", desc + " wall", summarize(secs_on), "s", t_on.mean,
                             summarize(secs_off).mean / summarize(secs_on).mean, "off" });
            log_line(fmt::format("early-rejection {}: {:.0f} -> {:.0f} tokens ({:.1f}% saved), wall {:.2f}x", name,
                                 t_off.mean, t_on.mean, 100.0 * (1.0 - t_on.mean / t_off.mean),
                                 summarize(secs_off).mean / summarize(secs_on).mean));
        }
    }

    // Every method on the same prompt and seed: wall time, every token decoded (rejected
    // proposals, particles, candidates, rollouts), and the ratio of wall time to one plain sample
    // (ratio_to "sample-time": here > 1 means slower). Each method other than sample is followed
    // by best-of-n with the same token budget: best_of = its tokens / one plain sample's tokens.
    void methods() {
        const auto        prompt = make_prompt(*model_, opt_.n_prompt);
        ps::power_sampler sampler(model_, context(false));
        auto              params_for = [&](const std::string & name) {
            ps::sampling_params sp = mcmc_params(1);
            const ps::method    m  = ps::method_from_name(name);
            if (m == ps::method::sps) {
                sp              = ps::preset("sps-small");
                sp.seed         = opt_.seed;
                sp.record_trace = false;
                if (opt_.max_new_tokens > 0) sp.max_new_tokens = opt_.max_new_tokens;
                // sps needs room for one block: a shorter run is one block of all of it.
                sp.block_size = std::min(sp.block_size, sp.max_new_tokens);
            }
            sp.method = m;
            if (m == ps::method::sample) sp.temperature = 1.0;
            if (m == ps::method::smc && opt_.particles > 0) sp.n_particles = opt_.particles;
            return sp;
        };
        struct result {
            double seconds = 0, tokens = 0;
        };
        auto measure = [&](const ps::sampling_params & sp, const std::string & label) {
            if (opt_.warmup) sampler.generate_tokens(prompt, sp);
            std::vector<double> secs, tokens;
            for (int r = 0; r < opt_.repetitions; ++r) {
                double     t = 0;
                const auto g = timed_generate(sampler, prompt, sp, t);
                secs.push_back(t);
                tokens.push_back(double(g.n_tokens_decoded - g.n_prompt_tokens + 1));
                log_line(fmt::format("methods {} rep {}: {:.2f} s, {} tokens decoded", label, r + 1, t, tokens.back()));
            }
            return std::make_pair(summarize(secs), summarize(tokens).mean);
        };
        const auto plain   = measure(params_for("sample"), "sample");
        auto       add_row = [&](const std::string & label, const ps::sampling_params & sp,
                           const std::pair<stats, double> & m) {
            row rw{ "methods",    fmt::format("p={} {} T={} seed={}", opt_.n_prompt, label, sp.max_new_tokens, sp.seed),
                    m.first,      "s",
                    m.second,     m.first.mean / plain.first.mean,
                    "sample-time" };
            rows.push_back(rw);
        };
        add_row("sample", params_for("sample"), plain);
        for (const auto & name : opt_.methods) {
            if (name == "sample") continue;
            const ps::sampling_params sp = params_for(name);
            const auto                m  = measure(sp, name);
            add_row(name, sp, m);
            if (name == "best-of-n") continue;
            ps::sampling_params matched = params_for("best-of-n");
            matched.best_of = std::max<int32_t>(1, int32_t(std::lround(m.second / std::max(1.0, plain.second))));
            // llama.cpp's 256 sequence ids bound one request's samples.
            matched.best_of         = std::min<int32_t>(matched.best_of, 127);
            const std::string label = fmt::format("best-of-n N={} matched-to={}", matched.best_of, name);
            add_row(label, matched, measure(matched, label));
        }
    }

    void recompute_speedup() {
        for (int32_t P : opt_.prompt_lengths) {
            const auto          prompt = make_prompt(*model_, P);
            ps::sampling_params sp     = mcmc_params(1);
            if (opt_.recompute_max_new_tokens > 0) sp.max_new_tokens = opt_.recompute_max_new_tokens;
            ps::power_sampler reuse(model_, sized_context(P, sp, false));
            ps::power_sampler recompute(model_, sized_context(P, sp, true));
            if (opt_.warmup) {
                // A short warm-up creates both contexts at their full size; it need not be a full run.
                ps::sampling_params w = sp;
                w.max_new_tokens      = std::min(sp.max_new_tokens, sp.block_size);
                w.n_steps_per_block   = 1;
                reuse.generate_tokens(prompt, sp.max_new_tokens == w.max_new_tokens ? sp : w);
                recompute.generate_tokens(prompt, sp.max_new_tokens == w.max_new_tokens ? sp : w);
            }
            std::vector<double> t_reuse, t_recompute, n_reuse, n_recompute;
            interleave({ [&](int r) {
                            double     secs = 0;
                            const auto g    = timed_generate(recompute, prompt, sp, secs);
                            t_recompute.push_back(secs);
                            n_recompute.push_back(double(g.n_tokens_decoded));
                            log_line(fmt::format("recompute p={} rep {}: {:.2f} s ({} tokens decoded, {} generated)", P,
                                                 r + 1, secs, g.n_tokens_decoded, g.chains[0].n_tokens_generated));
                        },
                         [&](int r) {
                             double     secs = 0;
                             const auto g    = timed_generate(reuse, prompt, sp, secs);
                             t_reuse.push_back(secs);
                             n_reuse.push_back(double(g.n_tokens_decoded));
                             log_line(fmt::format("kv-reuse p={} rep {}: {:.2f} s ({} tokens decoded, {} generated)", P,
                                                  r + 1, secs, g.n_tokens_decoded, g.chains[0].n_tokens_generated));
                         } });
            const std::string desc = fmt::format("p={} {}", P, mcmc_desc(sp));
            const stats       base = summarize(t_recompute), ours = summarize(t_reuse);
            rows.push_back({ "recompute-speedup", desc + " recompute_prefix", base, "s", summarize(n_recompute).mean,
                             1.0, "recompute_prefix" });
            rows.push_back({ "recompute-speedup", desc + " kv-reuse", ours, "s", summarize(n_reuse).mean,
                             base.mean / ours.mean, "recompute_prefix" });
        }
    }

    void chains_scaling() {
        const auto                                      prompt = make_prompt(*model_, opt_.n_prompt);
        std::vector<std::unique_ptr<ps::power_sampler>> samplers;
        for (int32_t n : opt_.chains) {
            samplers.push_back(
                std::make_unique<ps::power_sampler>(model_, sized_context(opt_.n_prompt, mcmc_params(n), false)));
            if (opt_.warmup) {
                ps::sampling_params w = mcmc_params(n);
                // Full-size context, short run: the warm-up only has to allocate and touch memory.
                w.max_new_tokens    = std::min(w.max_new_tokens, w.block_size);
                w.n_steps_per_block = 1;
                samplers.back()->generate_tokens(prompt, w);
            }
        }
        std::vector<std::vector<double>>      rate(opt_.chains.size()), tokens(opt_.chains.size());
        std::vector<std::function<void(int)>> fns;
        for (size_t k = 0; k < opt_.chains.size(); ++k) {
            fns.push_back([&, k](int r) {
                double     secs = 0;
                const auto g    = timed_generate(*samplers[k], prompt, mcmc_params(opt_.chains[k]), secs);
                rate[k].push_back(chain_tokens(g) / secs);
                tokens[k].push_back(chain_tokens(g));
                log_line(fmt::format("chains={} rep {}: {:.2f} t/s ({} tokens, {:.2f} s)", opt_.chains[k], r + 1,
                                     rate[k].back(), chain_tokens(g), secs));
            });
        }
        interleave(fns);
        const auto                  one = std::find(opt_.chains.begin(), opt_.chains.end(), 1);
        const std::optional<double> base =
            one == opt_.chains.end() ? std::nullopt
                                     : std::optional<double>(summarize(rate[size_t(one - opt_.chains.begin())]).mean);
        for (size_t k = 0; k < opt_.chains.size(); ++k) {
            row rw{ "chains-scaling",
                    fmt::format("p={} {} chains={}", opt_.n_prompt, mcmc_desc(mcmc_params(opt_.chains[k])),
                                opt_.chains[k]),
                    summarize(rate[k]),
                    "t/s",
                    summarize(tokens[k]).mean,
                    std::nullopt,
                    "" };
            if (base) {
                rw.ratio    = rw.value.mean / *base;
                rw.ratio_to = "chains=1";
            }
            rows.push_back(rw);
        }
    }

    // llama.cpp's own aggregate throughput when every llama_decode carries one token of each of
    // n sequences (a shared prompt copied to all, argmax per sequence): the ceiling that
    // chains-scaling can reach with this model, quantisation and thread count.
    void batch_limit() {
        const auto         prompt = make_prompt(*model_, opt_.n_prompt);
        const int32_t      max_n  = *std::max_element(opt_.chains.begin(), opt_.chains.end());
        llama_model_params mp     = llama_model_default_params();
        mp.n_gpu_layers           = opt_.n_gpu_layers;
        std::unique_ptr<llama_model, decltype(&llama_model_free)> model_owner(
            llama_model_load_from_file(model_->path().c_str(), mp), &llama_model_free);
        llama_model * m = model_owner.get();
        if (!m) throw ps::error("llama.cpp could not load '" + model_->path() + "'");
        llama_context_params cp = llama_context_default_params();
        cp.n_ctx                = uint32_t(opt_.n_prompt + max_n * (opt_.n_gen + 1) + 256);
        cp.n_batch              = uint32_t(std::max({ 512, opt_.n_prompt, max_n }));
        cp.n_seq_max            = uint32_t(max_n);
        cp.kv_unified           = true;
        cp.n_threads = cp.n_threads_batch = opt_.n_threads;
        cp.no_perf                        = true;
        std::unique_ptr<llama_context, decltype(&llama_free)> ctx_owner(llama_init_from_model(m, cp), &llama_free);
        llama_context *                                       ctx = ctx_owner.get();
        if (!ctx) throw ps::error("could not create a llama.cpp context for batch-limit");
        const int32_t                                         n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(m));
        std::unique_ptr<llama_batch, void (*)(llama_batch *)> batch_owner(
            new llama_batch(llama_batch_init(std::max<int32_t>(max_n, opt_.n_prompt), 0, 1)), [](llama_batch * b) {
                llama_batch_free(*b);
                delete b;
            });
        llama_batch & batch    = *batch_owner;
        const auto    run_once = [&](int32_t n) {
            llama_memory_t mem = llama_get_memory(ctx);
            llama_memory_clear(mem, true);
            batch.n_tokens = 0;
            for (int32_t i = 0; i < opt_.n_prompt; ++i) {
                batch.token[i]     = prompt[size_t(i)];
                batch.pos[i]       = i;
                batch.n_seq_id[i]  = 1;
                batch.seq_id[i][0] = 0;
                batch.logits[i]    = i == opt_.n_prompt - 1;
                batch.n_tokens++;
            }
            if (llama_decode(ctx, batch) != 0) throw ps::error("llama_decode failed in batch-limit");
            for (int32_t s = 1; s < n; ++s) llama_memory_seq_cp(mem, 0, s, -1, -1);
            std::vector<llama_token> next(static_cast<size_t>(n));
            const float *            row0 = llama_get_logits_ith(ctx, -1);
            std::fill(next.begin(), next.end(), llama_token(std::max_element(row0, row0 + n_vocab) - row0));
            const double t0 = clock_now();
            for (int32_t step = 0; step < opt_.n_gen; ++step) {
                batch.n_tokens = n;
                for (int32_t s = 0; s < n; ++s) {
                    batch.token[s]     = next[size_t(s)];
                    batch.pos[s]       = opt_.n_prompt + step;
                    batch.n_seq_id[s]  = 1;
                    batch.seq_id[s][0] = s;
                    batch.logits[s]    = true;
                }
                if (llama_decode(ctx, batch) != 0) throw ps::error("llama_decode failed in batch-limit");
                for (int32_t s = 0; s < n; ++s) {
                    const float * row = llama_get_logits_ith(ctx, s);
                    next[size_t(s)]   = llama_token(std::max_element(row, row + n_vocab) - row);
                }
            }
            return double(n) * opt_.n_gen / seconds_since(t0);
        };
        std::vector<std::vector<double>>      rate(opt_.chains.size());
        std::vector<std::function<void(int)>> fns;
        for (size_t k = 0; k < opt_.chains.size(); ++k) {
            if (opt_.warmup) run_once(opt_.chains[k]);
            fns.push_back([&, k](int r) {
                rate[k].push_back(run_once(opt_.chains[k]));
                log_line(fmt::format("batch-limit n={} rep {}: {:.2f} t/s", opt_.chains[k], r + 1, rate[k].back()));
            });
        }
        interleave(fns);
        const auto one = std::find(opt_.chains.begin(), opt_.chains.end(), 1);
        for (size_t k = 0; k < opt_.chains.size(); ++k) {
            row rw{ "batch-limit",
                    fmt::format("p={} n={} sequences={} argmax", opt_.n_prompt, opt_.n_gen, opt_.chains[k]),
                    summarize(rate[k]),
                    "t/s",
                    double(opt_.chains[k]) * opt_.n_gen,
                    std::nullopt,
                    "" };
            if (one != opt_.chains.end()) {
                rw.ratio    = rw.value.mean / summarize(rate[size_t(one - opt_.chains.begin())]).mean;
                rw.ratio_to = "sequences=1";
            }
            rows.push_back(rw);
        }
    }

    // KV bytes per token, two ways: from the model's dimensions (F16 K and V, llama.cpp's default
    // cache type) and measured as the growth of llama_state_seq_get_size over 64 more tokens.
    std::pair<double, double> kv_bytes_per_token() {
        llama_model_params mp = llama_model_default_params();
        mp.n_gpu_layers       = opt_.n_gpu_layers;
        llama_model * m       = llama_model_load_from_file(model_->path().c_str(), mp);
        if (!m) throw ps::error("llama.cpp could not load '" + model_->path() + "'");
        const double n_layer = llama_model_n_layer(m), n_embd = llama_model_n_embd(m);
        const double n_head = llama_model_n_head(m), n_head_kv = llama_model_n_head_kv(m);
        const double computed = n_layer * 2.0 * n_head_kv * (n_embd / n_head) * 2.0;

        llama_context_params cp = llama_context_default_params();
        cp.n_ctx                = 256;
        cp.n_threads = cp.n_threads_batch = opt_.n_threads;
        cp.no_perf                        = true;
        llama_context * ctx               = llama_init_from_model(m, cp);
        double          measured          = 0.0;
        if (ctx) {
            const auto               prompt = make_prompt(*model_, 128);
            std::vector<llama_token> p(prompt.begin(), prompt.end());
            size_t                   size_64 = 0, size_128 = 0;
            if (llama_decode(ctx, llama_batch_get_one(p.data(), 64)) == 0) size_64 = llama_state_seq_get_size(ctx, 0);
            if (llama_decode(ctx, llama_batch_get_one(p.data() + 64, 64)) == 0)
                size_128 = llama_state_seq_get_size(ctx, 0);
            if (size_64 && size_128) measured = double(size_128 - size_64) / 64.0;
            llama_free(ctx);
        }
        llama_model_free(m);
        return { computed, measured };
    }

    void memory() {
        const auto [per_token, per_token_measured] = kv_bytes_per_token();
        const auto           prompt                = make_prompt(*model_, opt_.n_prompt);
        const int32_t        max_chains            = *std::max_element(opt_.chains.begin(), opt_.chains.end());
        std::vector<int32_t> counts                = { 1 };
        if (max_chains > 1) counts.push_back(max_chains);

        const ps::sampling_params sp1 = mcmc_params(1);
        // A chain owns two KV streams (kept state and work sequence), each the prompt plus the
        // completion rounded up to 256 cells; one more stream holds the prompt while it starts.
        const double      cells_per_chain = 2.0 * ((opt_.n_prompt + sp1.max_new_tokens + 255) / 256 * 256);
        const std::string desc            = fmt::format("p={} {}", opt_.n_prompt, mcmc_desc(sp1));
        rows.push_back({ "memory",
                         "kv bytes/token, n_layer*2*n_head_kv*head_dim*2 (f16)",
                         { per_token / 1024.0, 0.0, 1 },
                         "KiB",
                         0,
                         std::nullopt,
                         "" });
        if (per_token_measured > 0) {
            rows.push_back({ "memory",
                             "kv bytes/token, llama_state_seq_get_size growth",
                             { per_token_measured / 1024.0, 0.0, 1 },
                             "KiB",
                             0,
                             std::nullopt,
                             "" });
        }
        rows.push_back({ "memory",
                         fmt::format("kv per chain, 2 streams of round256(P+T) cells x bytes/token, {}", desc),
                         { cells_per_chain * per_token / (1024.0 * 1024.0), 0.0, 1 },
                         "MiB",
                         0,
                         std::nullopt,
                         "" });

        std::vector<double> peaks;
        for (int32_t n : counts) {
            double peak  = 0.0;
            bool   reset = false;
            {
                // llama.cpp allocates and clears every KV cell when it creates the context, so a
                // context sized for the full run (as power_sampler would size it) followed by a
                // short run reaches the full run's peak without its minutes of decoding.
                ps::context_params  cp    = context(false);
                ps::sampling_params sized = mcmc_params(n);
                cp.n_ctx                  = stream_cells(opt_.n_prompt, sized);
                ps::power_sampler   sampler(model_, cp);
                ps::sampling_params sp = mcmc_params(n);
                sp.max_new_tokens      = std::min(sp.max_new_tokens, sp.block_size);
                sp.n_steps_per_block   = std::min(sp.n_steps_per_block, 1);
                reset                  = reset_peak_rss();
                const auto g           = sampler.generate_tokens(prompt, sp);
                peak                   = status_kib("VmHWM");
                (void)g;
            }
            peaks.push_back(peak);
            rows.push_back({ "memory",
                             fmt::format("peak RSS{}, {} chains={}", reset ? "" : " (since start)", desc, n),
                             { peak / 1024.0, 0.0, 1 },
                             "MiB",
                             0,
                             std::nullopt,
                             "" });
        }
        if (peaks.size() == 2) {
            rows.push_back({ "memory",
                             fmt::format("peak RSS growth per extra chain, 1 -> {} chains", counts[1]),
                             { (peaks[1] - peaks[0]) / 1024.0 / double(counts[1] - 1), 0.0, 1 },
                             "MiB",
                             0,
                             std::nullopt,
                             "" });
        }
    }
};

// ---------------------------------------------------------------- output

struct run_info {
    std::string commit, model_file, model_desc;
    int32_t     n_threads, n_gpu_layers;
    uint64_t    seed;
    std::string timer;
};

std::string file_name(const std::string & path) {
    const size_t slash = path.find_last_of('/');
    return slash == std::string::npos ? path : path.substr(slash + 1);
}

std::string fmt_value(const row & r) {
    const int prec = r.value.mean >= 100 ? 1 : 2;
    if (r.value.n > 1) return fmt::format("{:.{}f} ± {:.{}f}", r.value.mean, prec, r.value.stddev, prec);
    return fmt::format("{:.{}f}", r.value.mean, prec);
}

void print_md(const run_info & info, const std::vector<row> & rows) {
    std::cout << "| commit | model | description | threads | ngl | seed | timer | test | params | value | unit | "
                 "tokens | ratio |\n";
    std::cout << "| --- | --- | --- | ---: | ---: | ---: | --- | --- | --- | ---: | --- | ---: | ---: |\n";
    for (const auto & r : rows) {
        std::cout << fmt::format("| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n", info.commit,
                                 info.model_file, info.model_desc, info.n_threads, info.n_gpu_layers, info.seed,
                                 info.timer, r.test, r.params, fmt_value(r), r.unit,
                                 r.n_tokens > 0 ? fmt::format("{:.0f}", r.n_tokens) : "",
                                 r.ratio ? fmt::format("{:.2f}x {}", *r.ratio, r.ratio_to) : "");
    }
}

std::string csv_field(const std::string & s) {
    if (s.find_first_of(",\"\n") == std::string::npos) return s;
    std::string out = "\"";
    for (char c : s) {
        if (c == '"') out += '"';
        out += c;
    }
    return out + "\"";
}

void print_csv(const run_info & info, const std::vector<row> & rows) {
    std::cout << "commit,model_file,model_desc,n_threads,n_gpu_layers,seed,timer,test,params,value,stddev,n,unit,n_"
                 "tokens,ratio,ratio_to\n";
    for (const auto & r : rows) {
        std::cout << fmt::format("{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n", csv_field(info.commit),
                                 csv_field(info.model_file), csv_field(info.model_desc), info.n_threads,
                                 info.n_gpu_layers, info.seed, info.timer, r.test, csv_field(r.params), r.value.mean,
                                 r.value.stddev, r.value.n, r.unit, r.n_tokens,
                                 r.ratio ? fmt::format("{}", *r.ratio) : "", r.ratio_to);
    }
}

void print_json(const run_info & info, const std::vector<row> & rows) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto & r : rows) {
        out.push_back({ { "commit", info.commit },
                        { "model_file", info.model_file },
                        { "model_desc", info.model_desc },
                        { "n_threads", info.n_threads },
                        { "n_gpu_layers", info.n_gpu_layers },
                        { "seed", info.seed },
                        { "timer", info.timer },
                        { "test", r.test },
                        { "params", r.params },
                        { "value", r.value.mean },
                        { "stddev", r.value.stddev },
                        { "n", r.value.n },
                        { "unit", r.unit },
                        { "n_tokens", r.n_tokens },
                        { "ratio", r.ratio ? nlohmann::json(*r.ratio) : nlohmann::json(nullptr) },
                        { "ratio_to", r.ratio_to } });
    }
    std::cout << out.dump(2) << "\n";
}

[[noreturn]] void usage_error(const std::string & msg) {
    std::fprintf(stderr, "power-sampling-bench: %s\n", msg.c_str());
    std::exit(1);
}

}  // namespace

int main(int argc, char ** argv) {
    options     opt;
    std::string tests_arg   = fmt::format("{}", fmt::join(opt.tests, ","));
    std::string lengths_arg = "32,256,1024", chains_arg = "1,2,4,8,16,32";
    bool        no_warmup = false;

    CLI::App app{
        "power-sampling-bench: powersample's speed against llama.cpp's own decode loop, a prefix-"
        "recomputing baseline and one chain, in the manner of llama-bench.\n"
        "Timed: generation only. Not timed: model loading, context creation, tokenization, and "
        "decode-limit's prompt. Results on stdout, progress on stderr.\n"
        "Tests: early-rejection (the same chains with early rejection on and off: tokens and wall "
        "time, quality and paper presets; on request), decode-limit (llama_decode one token at a time, argmax), "
        "mcmc-single (one power-"
        "sampling chain, tokens decoded/s, ratio to decode-limit), recompute-speedup (wall time with "
        "recompute_prefix vs KV reuse per prompt length), chains-scaling (aggregate tokens decoded/s "
        "per chain count, ratio to 1 chain), memory (peak RSS, KV cache per chain); on request: methods (every "
        "--methods entry: wall time, all tokens decoded, ratio to one plain sample, and a best-of-n with "
        "the same token budget)."
    };
    app.set_version_flag("--version", powersample::version_line(), "Print the version (commit, llama.cpp) and exit");
    app.add_option("-m,--model", opt.model, "GGUF path or catalogue name")->capture_default_str();
    app.add_option("-t,--threads", opt.n_threads, "CPU threads; 0 = hardware concurrency")->capture_default_str();
    app.add_option("--n-gpu-layers", opt.n_gpu_layers, "(also -ngl) layers offloaded to a GPU; -1 = all")
        ->capture_default_str();
    app.add_option("-s,--seed", opt.seed, "sampling seed (same for every repetition and both sides of a ratio)")
        ->capture_default_str();
    app.add_option("-r,--repetitions", opt.repetitions, "timed repetitions per case (after one warm-up)")
        ->capture_default_str();
    app.add_option("-o,--output", opt.output, "output format: md, csv or json")->capture_default_str();
    app.add_option("--tests", tests_arg, "comma-separated tests to run")->capture_default_str();
    app.add_option("-p,--n-prompt", opt.n_prompt,
                   "prompt tokens for decode-limit, mcmc-single, chains-scaling and memory")
        ->capture_default_str();
    app.add_option("-n,--n-gen", opt.n_gen, "tokens per sequence generated by decode-limit and batch-limit")
        ->capture_default_str();
    app.add_option("--preset", opt.preset, "sampling preset of the MCMC tests")->capture_default_str();
    app.add_option("--max-new-tokens", opt.max_new_tokens,
                   "override the preset's max_new_tokens (T) in mcmc-single, chains-scaling, memory; 0 = preset's")
        ->capture_default_str();
    app.add_option("--recompute-max-new-tokens", opt.recompute_max_new_tokens,
                   "override T in recompute-speedup; 0 = preset's")
        ->capture_default_str();
    app.add_option("--prompt-lengths", lengths_arg, "prompt lengths of recompute-speedup")->capture_default_str();
    app.add_option("--chains", chains_arg, "chain counts of chains-scaling, sequence counts of batch-limit")
        ->capture_default_str();
    app.add_flag("--no-warmup", no_warmup, "skip the untimed warm-up run of each case");
    std::string timer       = "wall";
    std::string methods_arg = fmt::format("{}", fmt::join(opt.methods, ","));
    app.add_option("--methods", methods_arg,
                   "methods of the 'methods' test, each also against a compute-matched "
                   "best-of-n")
        ->capture_default_str();
    app.add_option("--particles", opt.particles, "smc particles in the 'methods' test; 0 = library default")
        ->capture_default_str();
    app.add_option("--timer", timer,
                   "wall, or cpu: the process's CPU time (with -t 1, the work done, little disturbed by other "
                   "processes)")
        ->capture_default_str();
    // CLI11 takes only one-character short flags; llama.cpp's -ngl is spelled out before parsing.
    std::vector<std::string> args;
    for (int i = argc - 1; i >= 1; --i) {
        args.push_back(std::string(argv[i]) == "-ngl" ? "--n-gpu-layers" : argv[i]);
    }
    try {
        app.parse(args);
    } catch (const CLI::ParseError & e) {
        return app.exit(e) == 0 ? 0 : 1;
    }
    opt.warmup = !no_warmup;
    if (timer != "wall" && timer != "cpu") usage_error(fmt::format("--timer = '{}': expected wall or cpu", timer));
    use_cpu_timer = timer == "cpu";

    // Validate, then run.
    const auto split = [](const std::string & s) {
        std::vector<std::string> out;
        std::stringstream        ss(s);
        std::string              item;
        while (std::getline(ss, item, ',')) {
            if (!item.empty()) out.push_back(item);
        }
        return out;
    };
    const auto split_ints = [&](const std::string & s, const char * flag, int32_t lo, int32_t hi) {
        std::vector<int32_t> out;
        for (const auto & item : split(s)) {
            char *     end = nullptr;
            const long v   = std::strtol(item.c_str(), &end, 10);
            if (*end != '\0' || v < lo || v > hi) {
                usage_error(fmt::format("{} = '{}': expected integers in [{}, {}]", flag, s, lo, hi));
            }
            out.push_back(int32_t(v));
        }
        if (out.empty()) usage_error(fmt::format("{} = '{}': empty", flag, s));
        return out;
    };
    opt.tests = split(tests_arg);
    if (opt.tests.empty()) usage_error("--tests = '': empty");
    for (const auto & t : opt.tests) {
        if (std::find(all_tests.begin(), all_tests.end(), t) == all_tests.end()) {
            usage_error(
                fmt::format("--tests = '{}': unknown test '{}' (known: {})", tests_arg, t, fmt::join(all_tests, ",")));
        }
    }
    opt.methods = split(methods_arg);
    for (const auto & name : opt.methods) {
        try {
            ps::method_from_name(name);
        } catch (const ps::invalid_argument_error & e) {
            usage_error(fmt::format("--methods = '{}': {}", methods_arg, e.what()));
        }
    }
    if (opt.particles < 0) usage_error(fmt::format("--particles = {}: must be >= 0", opt.particles));
    opt.prompt_lengths = split_ints(lengths_arg, "--prompt-lengths", 1, 1 << 20);
    opt.chains         = split_ints(chains_arg, "--chains", 1, 127);
    if (opt.output != "md" && opt.output != "csv" && opt.output != "json") {
        usage_error(fmt::format("--output = '{}': expected md, csv or json", opt.output));
    }
    if (opt.repetitions < 1) usage_error(fmt::format("--repetitions = {}: must be >= 1", opt.repetitions));
    if (opt.n_threads < 0) usage_error(fmt::format("--threads = {}: must be >= 0", opt.n_threads));
    if (opt.n_prompt < 1) usage_error(fmt::format("--n-prompt = {}: must be >= 1", opt.n_prompt));
    if (opt.n_gen < 1) usage_error(fmt::format("--n-gen = {}: must be >= 1", opt.n_gen));
    if (opt.max_new_tokens < 0) usage_error(fmt::format("--max-new-tokens = {}: must be >= 0", opt.max_new_tokens));
    if (opt.recompute_max_new_tokens < 0) {
        usage_error(fmt::format("--recompute-max-new-tokens = {}: must be >= 0", opt.recompute_max_new_tokens));
    }
    try {
        ps::preset(opt.preset);
    } catch (const ps::invalid_argument_error &) {
        usage_error(
            fmt::format("--preset = '{}': unknown (known: {})", opt.preset, fmt::join(ps::preset_names(), ",")));
    }
    if (opt.n_threads == 0) opt.n_threads = int32_t(std::max(1u, std::thread::hardware_concurrency()));

    std::shared_ptr<ps::model> m;
    try {
        m = ps::model::load({ opt.model, opt.n_gpu_layers });
    } catch (const ps::invalid_argument_error & e) {
        usage_error(fmt::format("--model = '{}': {}", opt.model, e.what()));
    } catch (const std::exception & e) {
        std::fprintf(stderr, "power-sampling-bench: %s\n", e.what());
        return 2;
    }

    const run_info info{ ps::get_build_info().commit,
                         file_name(m->path()),
                         m->description(),
                         opt.n_threads,
                         opt.n_gpu_layers,
                         opt.seed,
                         timer };
    log_line(fmt::format("commit {}, model {} ({}), {} threads, seed {}, {} repetitions, {} timer", info.commit,
                         info.model_file, info.model_desc, info.n_threads, info.seed, opt.repetitions, timer));
    bench b(opt, m);
    try {
        b.run();
    } catch (const ps::invalid_argument_error & e) {
        // A setting the model cannot take (e.g. a prompt length beyond its context).
        std::fprintf(stderr, "power-sampling-bench: %s\n", e.what());
        return 1;
    } catch (const std::exception & e) {
        std::fprintf(stderr, "power-sampling-bench: %s\n", e.what());
        return 2;
    }
    if (opt.output == "md")
        print_md(info, b.rows);
    else if (opt.output == "csv")
        print_csv(info, b.rows);
    else
        print_json(info, b.rows);
    return 0;
}
