// power-sampling-eval: runs decoding methods (greedy, plain and low-temperature sampling, power
// sampling, best-of-N, majority votes) on the same problems of a dataset, writes one result file
// per (problem, method), grades them and summarises accuracy against compute.
//
//   power-sampling-eval -d mawps-multiarith --limit 100 --methods greedy,power --out runs/ma
//
// Runs survive: each result file is written atomically when its problem finishes, a rerun skips
// finished files, and SIGINT stops the batch, keeping everything already written.
#include "datasets.h"
#include "graders.h"
#include "report.h"
#include "results.h"
#include "../knob-flags.h"
#include "../knob-json.h"

#include <powersample/powersample.h>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cerrno>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <unistd.h>

namespace fs = std::filesystem;
namespace ev = powersample::eval;
namespace ps = powersample;

namespace {

std::atomic<bool> g_cancel{ false };

extern "C" void on_sigint(int) {
    g_cancel.store(true);
    // A second Ctrl-C kills the process the usual way.
    std::signal(SIGINT, SIG_DFL);
}

[[noreturn]] void usage_error(const std::string & message) {
    fmt::print(stderr, "power-sampling-eval: {}\n", message);
    std::exit(1);
}

std::vector<std::string> split_list(const std::string & s) {
    std::vector<std::string> out;
    size_t                   start = 0;
    while (start <= s.size()) {
        const size_t end = std::min(s.find(',', start), s.size());
        if (end > start) out.push_back(s.substr(start, end - start));
        start = end + 1;
    }
    return out;
}

// Why `prompt` cannot be generated from with max_new_tokens more, or nullopt. The same bounds
// (and wording) as power_sampler's request check, which would reject the whole batch.
std::optional<std::string> beyond_context(const ps::model & model, const std::vector<ps::token_id> & prompt,
                                          int32_t max_new_tokens) {
    const int64_t n   = int64_t(prompt.size());
    const int64_t ctx = model.n_ctx_train();
    if (n >= ctx) {
        return "prompt: " + std::to_string(n) + " tokens, beyond the model's context of " + std::to_string(ctx) +
               " tokens";
    }
    if (n + max_new_tokens > ctx) {
        return ps::knob_for(&ps::sampling_params::max_new_tokens).name() + " = " + std::to_string(max_new_tokens) +
               ": with the prompt's " + std::to_string(n) + " tokens this exceeds the model's context of " +
               std::to_string(ctx) + " tokens";
    }
    return std::nullopt;
}

// Each problem gets its own seed from (run seed, problem id), so a problem's samples do not
// depend on --offset, --limit or on which other problems share the batch.
uint64_t problem_seed(uint64_t seed, const std::string & id) {
    uint64_t h = 1469598103934665603ull ^ (seed * 0x9e3779b97f4a7c15ull);
    for (char c : id) {
        h ^= static_cast<unsigned char>(c);
        h *= 1099511628211ull;
    }
    return h;
}

struct options {
    std::string model = ps::default_model_name;
    std::string dataset;
    std::string data_dir;
    std::string question_field = "question", answer_field = "answer", id_field, task = "numeric";
    std::string methods   = "greedy,sample,low-temp,power";
    int32_t     n_samples = 4;
    std::string preset;
    // The sampling knobs' flags, from the knob table (tools/knob-flags.h); a knob whose flag is
    // not given keeps the preset's value (sps: the sps-small preset's, see below).
    powersample_tools::knob_flags knobs;
    size_t                        limit   = 0;  // 0: all
    size_t                        offset  = 0;
    bool                          shuffle = false;
    uint64_t                      seed    = 0;
    int32_t                       threads = 0;
    // KV cells shared by the batch. It bounds how many problems run at once: every live token
    // attends over all used cells of the unified cache, so a cache sized for 100 problems makes
    // each step cost several times its weight reads. 4096 keeps ~10-20 problems in flight.
    int32_t     ctx_size = 0;
    std::string out      = "eval-results";
    bool        chat = false, raw = false;
    bool        summary_only = false, regrade = false;
};

// A record written for a problem that was not run (see "skipped" below): not finished, so a
// rerun checks it again, but counted by the summary.
bool is_skipped_record(const fs::path & file) {
    std::ifstream in(file);
    try {
        return nlohmann::json::parse(in).contains("skipped");
    } catch (const std::exception &) {
        return false;
    }
}

// Finished records of `methods` (and skipped ones with include_skipped), each with "_file".
std::vector<nlohmann::json> read_records(const fs::path & out, const std::vector<std::string> & methods,
                                         const std::set<std::string> * only_ids, bool include_skipped = false) {
    std::vector<nlohmann::json> records;
    for (const auto & m : methods) {
        const fs::path dir = out / m;
        if (!fs::is_directory(dir)) continue;
        std::vector<fs::path> files;
        for (const auto & e : fs::directory_iterator(dir)) {
            const auto name = e.path().filename().string();
            if (e.path().extension() == ".json" && name[0] != '_') files.push_back(e.path());
        }
        std::sort(files.begin(), files.end());
        for (const auto & f : files) {
            if (!ev::is_finished_record(f) && !(include_skipped && is_skipped_record(f))) continue;
            std::ifstream in(f);
            auto          j = nlohmann::json::parse(in);
            if (only_ids && !only_ids->count(j.value("problem_id", ""))) continue;
            j["_file"] = f.string();
            records.push_back(std::move(j));
        }
    }
    return records;
}

std::map<std::string, ev::batch_timing> read_timings(const fs::path & out, const std::vector<std::string> & methods) {
    // An interrupted batch spent time on problems it then dropped, so its seconds per problem
    // overstate the cost: use whole batches when there are any, all batches otherwise.
    std::map<std::string, ev::batch_timing> whole, all;
    for (const auto & m : methods) {
        std::ifstream in(out / m / "_timing.jsonl");
        std::string   line;
        while (std::getline(in, line)) {
            try {
                const auto   j        = nlohmann::json::parse(line);
                const double seconds  = j.at("seconds").get<double>();
                const auto   problems = j.at("problems").get<uint64_t>();
                all[m].seconds += seconds;
                all[m].problems += problems;
                if (!j.value("interrupted", false) && problems > 0) {
                    whole[m].seconds += seconds;
                    whole[m].problems += problems;
                }
            } catch (const std::exception &) {
                // A line cut by a crash: the timing of that batch is lost, nothing else.
            }
        }
    }
    for (auto & [m, t] : all) {
        if (whole.count(m)) t = whole[m];
    }
    return all;
}

struct matched_budget {
    int32_t n_samples;
    double  method_tokens;           // mean tokens per problem of the matched method
    double  sample_tokens;           // mean tokens of one sample at T = 1
    bool    sample_tokens_measured;  // false: no T = 1 samples found, the cap stands in
};

// N for best-of-n matched to `method`: its mean tokens per problem (all proposals, particles and
// rollouts) over the mean length of one T = 1 sample, both over the selected problems' finished
// files. Nullopt when the method has no finished files there.
std::optional<matched_budget> matched_n_samples(const fs::path & out, const std::string & method,
                                                const std::set<std::string> & ids, int32_t max_new_tokens) {
    double method_tokens = 0, sample_tokens = 0;
    size_t n_method = 0, n_samples = 0;
    for (const auto & rec : read_records(out, { method }, &ids)) {
        method_tokens += rec.value("n_tokens_generated", 0.0);
        ++n_method;
    }
    if (n_method == 0) return std::nullopt;
    std::vector<std::string> t1_methods;
    for (const auto & m : ev::eval_methods()) {
        if (m.engine == "sample") t1_methods.push_back(m.name);
    }
    for (const auto & rec : read_records(out, t1_methods, &ids)) {
        for (const auto & s : rec.at("samples")) {
            sample_tokens += s.value("n_tokens_generated", 0.0);
            ++n_samples;
        }
    }
    matched_budget b;
    b.method_tokens          = method_tokens / double(n_method);
    b.sample_tokens_measured = n_samples > 0;
    b.sample_tokens          = n_samples > 0 ? sample_tokens / double(n_samples) : double(max_new_tokens);
    b.n_samples = int32_t(std::clamp<long>(std::lround(b.method_tokens / std::max(1.0, b.sample_tokens)), 1, 127));
    return b;
}

// Why results cannot be written into `dir` (created when `create` and missing), or nullopt.
// Tried with a real file: access(2) says yes to root even on a read-only file system.
std::optional<std::string> unwritable_dir(const fs::path & dir, bool create) {
    std::error_code ec;
    const auto      st = fs::status(dir, ec);
    if (fs::exists(st)) {
        if (!fs::is_directory(st)) return "'" + dir.string() + "' is not a directory";
    } else if (!create) {
        return std::nullopt;  // --regrade: a method without results has nothing to write
    } else if (fs::create_directories(dir, ec); ec) {
        return "cannot create '" + dir.string() + "': " + ec.message();
    }
    std::string probe = (dir / ".write-check-XXXXXX").string();
    const int   fd    = ::mkstemp(probe.data());
    if (fd < 0) return "cannot write in '" + dir.string() + "': " + std::strerror(errno);
    ::close(fd);
    ::unlink(probe.c_str());
    return std::nullopt;
}

// What the checked command line asks for: the steps of main share it.
struct run_plan {
    std::vector<std::string> method_names;
    bool                     user_file = false;  // --dataset names a .jsonl file, not a built-in set
    ps::sampling_params      base;               // every method's parameters, but sps's
    ps::sampling_params      sps;                // sps's: the sps-small preset's knobs unless given
    fs::path                 out_dir;
};

// The selected problems, and their ids (what the summary and --regrade read).
struct problem_set {
    std::vector<ev::problem> problems;
    std::set<std::string>    ids;
};

// Parses argv into o. Returns the exit code when the process ends here (--help, --version, a
// usage error), nullopt to go on.
std::optional<int> parse_command_line(int argc, char ** argv, CLI::App & app, options & o) {
    app.description(
        "power-sampling-eval: compare decoding methods (greedy, sampling, power sampling, best-of-N, "
        "majority votes) on a dataset");
    app.set_version_flag("--version", powersample::version_line(), "Print the version (commit, llama.cpp) and exit");
    app.option_defaults()->always_capture_default();
    app.add_option("-m,--model", o.model, "catalogue name or .gguf path")->envname("POWERSAMPLE_MODEL");
    app.add_option(
        "-d,--dataset", o.dataset,
        fmt::format("built-in dataset ({}) or a .jsonl[.gz] file", fmt::join(ev::builtin_dataset_names(), ", ")));
    app.add_option("--data-dir", o.data_dir,
                   "directory of the built-in datasets (default: $POWERSAMPLE_DATA_DIR or "
                   "../shared/datasets)");
    app.add_option("--question-field", o.question_field, "user JSONL: field holding the question")
        ->group("User dataset");
    app.add_option("--answer-field", o.answer_field, "user JSONL: field holding the answer")->group("User dataset");
    app.add_option("--id-field", o.id_field, "user JSONL: field holding the id (default: file/index)")
        ->group("User dataset");
    app.add_option("--task", o.task, "user JSONL: numeric, math or humaneval")->group("User dataset");
    app.add_option("--methods", o.methods, "comma list of: " + ev::eval_method_names())->group("Methods");
    app.add_option("--n-samples", o.n_samples, "samples (chains) per problem for best-of-n, maj-vote, power-maj-vote")
        ->group("Methods");
    // -n is the token cap in power-sampling (llama.cpp's meaning) and was the sample count here:
    // taken by neither, so that a command written for one tool never silently means the other.
    std::string ambiguous_n;
    app.add_option("-n", ambiguous_n)->group("");
    app.add_option(
           "--preset", o.preset,
           fmt::format("power-sampling preset ({}); default: the library's defaults (alpha 4, B 64, N 5, T 256)",
                       fmt::join(ps::preset_names(), ", ")))
        ->group("Methods");
    {
        // What this tool takes from the table: not the method (--methods), the seed (the run's
        // base seed, below), the chain count (--n-samples) or the stop strings (the dataset's).
        const auto takes = [](const ps::knob_info & k) {
            using P = ps::sampling_params;
            for (const std::string & own : { ps::knob_for(&P::method).name(), ps::knob_for(&P::seed).name(),
                                             ps::knob_for(&P::n_chains).name(), ps::knob_for(&P::stop).name() }) {
                if (k.name() == own) return false;
            }
            return true;
        };
        ps::sampling_params shown;
        ps::copy_knobs(ps::preset("sps-small"), shown, ps::knob_group(ps::method::sps));
        o.knobs.add_to(app, shown, "Methods",
                       "Other methods (docs/methods.md; unset: the preset's or the library's value)", takes,
                       /*short_names=*/false);
    }
    app.add_option("--limit", o.limit, "at most this many problems (0: all)")->group("Selection");
    app.add_option("--offset", o.offset, "skip this many problems (after shuffling)")->group("Selection");
    app.add_flag("--shuffle", o.shuffle, "shuffle the problems with --seed before offset and limit")
        ->group("Selection");
    app.add_option("-s,--seed", o.seed, "seed for shuffling and sampling");
    app.add_option("-t,--threads", o.threads, "CPU threads (0: all)");
    app.add_option("-c,--ctx-size", o.ctx_size,
                   "KV-cache cells for the whole batch, one stream of prompt + max-new-tokens (rounded up to 256) "
                   "per sequence; bounds the problems in flight (0: up to 64Ki cells)");
    app.add_option("--out", o.out, "results directory");
    auto * chat_flag = app.add_flag("--chat", o.chat, "use the model's chat template (default when it has one)");
    auto * raw_flag  = app.add_flag("--raw", o.raw, "plain prompt without chat template (default for base models)");
    chat_flag->excludes(raw_flag);
    app.add_flag("--summary-only", o.summary_only, "no generation: summarise the finished result files");
    app.add_flag("--regrade", o.regrade, "no generation: grade the result files again, then summarise");
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError & e) {
        return app.exit(e) == 0 ? 0 : 1;  // usage errors exit 1, as the other tools'
    }

    if (app.count("-n")) {
        usage_error("-n " + ambiguous_n +
                    ": ambiguous here; give --n-samples N (samples per problem) or "
                    "--n-predict N (the token cap, power-sampling's -n)");
    }
    return std::nullopt;
}

// Checks what the options ask for before anything is loaded (a usage error exits 1): methods,
// dataset, the parameters of every method, and that --out can be written.
run_plan plan_run(const options & o) {
    run_plan plan;
    plan.method_names         = split_list(o.methods);
    const auto & method_names = plan.method_names;
    if (method_names.empty()) usage_error("--methods: empty; valid methods: " + ev::eval_method_names());
    for (const auto & m : method_names) {
        if (!ev::find_eval_method(m)) {
            usage_error("--methods: unknown method '" + m + "'; valid methods: " + ev::eval_method_names());
        }
    }
    if (o.ctx_size < 0) usage_error("--ctx-size: " + std::to_string(o.ctx_size) + " must be >= 0");
    if (o.n_samples < 1 || o.n_samples > 127) {
        usage_error("--n-samples: " + std::to_string(o.n_samples) + " must be in [1, 127]");
    }
    const bool need_dataset = !(o.summary_only || o.regrade);
    if (!o.dataset.empty() && !ev::is_builtin_dataset(o.dataset)) {
        const bool looks_like_file = o.dataset.find(".jsonl") != std::string::npos;
        if (!looks_like_file || !fs::is_regular_file(o.dataset)) {
            usage_error("--dataset: unknown dataset '" + o.dataset + "'" + (looks_like_file ? " (no such file)" : "") +
                        "; valid names: " + fmt::format("{}", fmt::join(ev::builtin_dataset_names(), ", ")) +
                        ", or a .jsonl file");
        }
        plan.user_file     = true;
        const auto & tasks = ev::valid_tasks();
        if (std::find(tasks.begin(), tasks.end(), o.task) == tasks.end()) {
            usage_error("--task: unknown task '" + o.task +
                        "'; valid tasks: " + fmt::format("{}", fmt::join(tasks, ", ")));
        }
    }
    if (need_dataset && o.dataset.empty()) {
        usage_error("--dataset: required; valid names: " +
                    fmt::format("{}", fmt::join(ev::builtin_dataset_names(), ", ")) + ", or a .jsonl file");
    }

    ps::sampling_params & base = plan.base;
    try {
        if (!o.preset.empty()) base = ps::preset(o.preset);
    } catch (const ps::invalid_argument_error & e) {
        usage_error(std::string("--preset: ") + e.what());
    }
    ps::sampling_params & sps = plan.sps;
    try {
        o.knobs.apply(base);
        base.record_trace = false;  // result files stay small; counts are kept
        // sps: the paper's settings (B 192, 64 rollouts per block to the cap) cost hours per problem
        // on a small model on a CPU, so the eval starts from the scaled preset (its block size too,
        // unless --block-size is given); the sps flags given override it.
        sps = base;
        {
            const ps::sampling_params small = ps::preset("sps-small");
            const char *              group = ps::knob_group(ps::method::sps);
            ps::copy_knobs(small, sps, group);
            o.knobs.apply(sps, group);
            if (!o.knobs.given(ps::knob_for(&ps::sampling_params::block_size))) sps.block_size = small.block_size;
            sps.method = ps::method::sps;
        }
        for (const auto & name : method_names) {
            const auto          m     = ev::find_eval_method(name);
            ps::sampling_params check = m->engine == "sps" ? sps : base;
            check.method              = ps::method_from_name(m->engine);
            ps::validate(check);
        }
        ps::validate(base);
    } catch (const ps::invalid_argument_error & e) {
        usage_error(powersample_tools::name_the_flag(e).what());
    }

    plan.out_dir             = o.out;
    const fs::path & out_dir = plan.out_dir;
    // Checked before the model loads (which takes minutes), not when the first result is due.
    if (!o.summary_only) {
        std::vector<fs::path> dirs{ out_dir };
        for (const auto & m : method_names) dirs.push_back(out_dir / m);
        for (const auto & dir : dirs) {
            if (const auto why = unwritable_dir(dir, !o.regrade)) usage_error("--out '" + o.out + "': " + *why);
        }
    }
    return plan;
}

// The problems --dataset and the selection flags name; nullopt (after a message) when the
// dataset cannot be read.
std::optional<problem_set> load_problems(const options & o, const run_plan & plan) {
    problem_set set;
    auto &      problems = set.problems;
    if (!o.dataset.empty()) {
        ev::load_options lo;
        lo.offset = o.offset;
        if (o.limit > 0) lo.limit = o.limit;
        lo.shuffle    = o.shuffle;
        lo.seed       = o.seed;
        lo.on_warning = [](const ev::load_warning & w) {
            fmt::print(stderr, "{}:{}: skipped: {}\n", w.file, w.line, w.reason);
        };
        try {
            if (plan.user_file) {
                ev::field_mapping fm{ o.question_field, o.answer_field, o.id_field, o.task };
                problems = ev::load_jsonl_dataset(o.dataset, fm, lo).problems;
            } else {
                const fs::path  dir  = o.data_dir.empty() ? ev::default_data_dir() : fs::path(o.data_dir);
                const fs::path  file = dir / ev::builtin_dataset_file(o.dataset);
                std::error_code ec;
                if (!fs::is_regular_file(file, ec)) {
                    usage_error(
                        fmt::format("--dataset '{}': {} not found; give --data-dir DIR (or set "
                                    "POWERSAMPLE_DATA_DIR) to the directory that holds it",
                                    o.dataset, file.string()));
                }
                problems = ev::load_builtin_dataset(o.dataset, dir, lo).problems;
            }
        } catch (const std::invalid_argument & e) {
            usage_error(std::string("--dataset: ") + e.what());
        } catch (const std::exception & e) {
            fmt::print(stderr, "power-sampling-eval: --dataset '{}': {}\n", o.dataset, e.what());
            return std::nullopt;
        }
        for (const auto & p : problems) set.ids.insert(p.id);
        fmt::print(stderr, "{} problems from {}\n", problems.size(), o.dataset);
    }
    return set;
}

// --regrade: grades every finished result file again, in place.
void regrade(const run_plan & plan, const options & o, const problem_set & set) {
    size_t n = 0;
    for (auto & rec : read_records(plan.out_dir, plan.method_names, o.dataset.empty() ? nullptr : &set.ids)) {
        const fs::path file = rec.at("_file").get<std::string>();
        rec.erase("_file");
        ev::grade_record(rec);
        ev::write_json_atomically(file, rec);
        ++n;
    }
    fmt::print(stderr, "regraded {} result files\n", n);
}

// Runs every method on the problems without a finished result, writing each result as it
// finishes. Returns the exit code: 0, 1 (a compute-matched method had nothing to match), 2 (the
// model failed) or 130 (interrupted; finished results are kept).
int generate(const run_plan & plan, const options & o, const problem_set & set) {
    const auto &                method_names = plan.method_names;
    const fs::path &            out_dir      = plan.out_dir;
    const auto &                problems     = set.problems;
    const auto &                selected_ids = set.ids;
    const ps::sampling_params & base         = plan.base;
    const ps::sampling_params & sps          = plan.sps;
    const bool                  tty          = isatty(STDERR_FILENO);
    int                         exit_code    = 0;
    std::shared_ptr<ps::model>  model;
    try {
        model = ps::model::load({ o.model });
    } catch (const ps::invalid_argument_error & e) {
        usage_error(std::string("--model: ") + e.what());
    } catch (const std::exception & e) {
        fmt::print(stderr, "power-sampling-eval: --model '{}': {}\n", o.model, e.what());
        return 2;
    }
    const bool chat = o.raw ? false : (o.chat || model->has_chat_template());
    if (chat && !model->has_chat_template()) usage_error("--chat: the model has no chat template");
    ps::context_params cp;
    cp.n_threads = o.threads;
    cp.n_ctx     = o.ctx_size;
    ps::power_sampler sampler(model, cp);
    std::signal(SIGINT, on_sigint);
    std::signal(SIGTERM, on_sigint);

    // Methods that draw the same kind of samples (best-of-n and maj-vote: N samples at T = 1)
    // share one generation, so they are compared on identical samples.
    // Compute-matched methods run last, once the methods they are matched to have finished.
    std::vector<std::vector<ev::eval_method>> groups;
    for (const bool matched : { false, true }) {
        for (const auto & name : method_names) {
            const auto m = *ev::find_eval_method(name);
            if (m.matched_to.empty() == matched) continue;
            bool placed = false;
            for (auto & g : groups) {
                if (m.uses_n && g[0].engine == m.engine && g[0].uses_n && m.matched_to.empty() &&
                    g[0].matched_to.empty()) {
                    g.push_back(m);
                    placed = true;
                }
            }
            if (!placed) groups.push_back({ m });
        }
    }

    for (const auto & group : groups) {
        if (g_cancel.load()) break;
        std::vector<std::string> names;
        for (const auto & m : group) {
            names.push_back(m.name);
            fs::create_directories(out_dir / m.name);
        }
        const std::string   label = fmt::format("{}", fmt::join(names, "+"));
        ps::sampling_params sp    = group[0].engine == "sps" ? sps : base;
        sp.method                 = ps::method_from_name(group[0].engine);
        sp.n_chains               = group[0].uses_n ? o.n_samples : 1;
        if (sp.method == ps::method::sample) sp.temperature = 1.0;
        if (!group[0].matched_to.empty()) {
            const auto n = matched_n_samples(out_dir, group[0].matched_to, selected_ids, sp.max_new_tokens);
            if (!n) {
                fmt::print(stderr, "[{}] skipped: no finished results of '{}' to match (run it first)\n", label,
                           group[0].matched_to);
                exit_code = 1;
                continue;
            }
            sp.n_chains = n->n_samples;
            fmt::print(stderr, "[{}] N = {}: {} spent {:.1f} tokens per problem, a sample at T = 1 {:.1f}{}\n", label,
                       n->n_samples, group[0].matched_to, n->method_tokens, n->sample_tokens,
                       n->sample_tokens_measured ? "" : " (no T = 1 samples yet: the cap, an upper bound)");
        }

        // Pending: problems for which some method of the group has no finished file.
        std::vector<size_t>                                      pending;
        std::vector<std::pair<std::string, ps::sampling_params>> requests;  // the prompt as recorded
        // What is sampled from: a chat prompt tokenized so that a question cannot write the
        // template's markers (model::tokenize_chat).
        std::vector<std::pair<std::vector<ps::token_id>, ps::sampling_params>> token_requests;
        std::vector<ev::prompt_text>                                           prompts;
        size_t                                                                 n_skipped = 0;
        for (size_t i = 0; i < problems.size(); ++i) {
            bool missing = false;
            for (const auto & m : group) {
                missing |= !ev::is_finished_record(out_dir / m.name / (ev::sanitize_id(problems[i].id) + ".json"));
            }
            if (!missing) continue;
            auto pt          = ev::build_prompt(problems[i], chat);
            auto req         = sp;
            req.seed         = problem_seed(o.seed, problems[i].id);
            std::string text = chat ? model->format_chat(pt.text) : pt.text;
            // What is sampled from: a chat prompt tokenized so that a question cannot write
            // the template's markers (model::tokenize_chat).
            std::vector<ps::token_id> tokens =
                chat ? model->tokenize_chat({ { "user", pt.text } }) : model->tokenize(pt.text, true);
            // One problem whose prompt cannot fit must not stop the run: generate_batch checks
            // every request before it starts and would refuse the whole batch.
            if (auto why = beyond_context(*model, tokens, sp.max_new_tokens)) {
                ++n_skipped;
                fmt::print(stderr, "[{}] skipped {}: {}\n", label, problems[i].id, *why);
                for (const auto & m : group) {
                    const fs::path file = out_dir / m.name / (ev::sanitize_id(problems[i].id) + ".json");
                    if (ev::is_finished_record(file)) continue;
                    ev::write_json_atomically(file, { { "version", ev::record_version },
                                                      { "problem_id", problems[i].id },
                                                      { "dataset", o.dataset },
                                                      { "task", problems[i].task },
                                                      { "method", m.name },
                                                      { "engine", m.engine },
                                                      { "model", model->path() },
                                                      { "chat", chat },
                                                      { "question", problems[i].question },
                                                      { "reference", problems[i].reference },
                                                      { "params", powersample_tools::knobs_to_json(sp) },
                                                      { "samples", nlohmann::json::array() },
                                                      { "skipped", *why } });
                }
                continue;
            }
            requests.emplace_back(std::move(text), req);
            token_requests.emplace_back(std::move(tokens), req);
            prompts.push_back(pt);
            pending.push_back(i);
        }
        fmt::print(stderr, "[{}] {} to run, {} already done{}\n", label, pending.size(),
                   problems.size() - pending.size() - n_skipped,
                   n_skipped ? fmt::format(", {} skipped", n_skipped) : std::string());
        if (pending.empty()) continue;

        const auto      t0          = std::chrono::steady_clock::now();
        auto            t_last      = t0;
        size_t          n_done      = 0;
        int64_t         tokens_done = 0;
        ps::run_options ro;
        ro.cancel      = &g_cancel;
        auto on_result = [&](size_t k, const ps::generation_result & g) {
            for (const auto & c : g.chains) {
                // A cancelled chain is not a result: the problem stays pending for the rerun.
                if (c.finish == ps::finish_reason::cancelled) return;
            }
            const auto &   p       = problems[pending[k]];
            nlohmann::json samples = nlohmann::json::array();
            int64_t        tokens  = 0;
            for (const auto & c : g.chains) {
                samples.push_back({ { "text", c.text },
                                    { "n_tokens", c.tokens.size() },
                                    { "log_p", c.log_p },
                                    { "finish", ps::finish_reason_name(c.finish) },
                                    { "n_tokens_generated", c.n_tokens_generated },
                                    { "n_tokens_decoded", c.n_tokens_decoded },
                                    { "n_proposals", c.n_proposals },
                                    { "n_accepted", c.n_accepted },
                                    { "n_early_rejections", c.n_early_rejections },
                                    { "n_tokens_saved", c.n_tokens_saved } });
                tokens += c.n_tokens_generated;
            }
            for (const auto & m : group) {
                const fs::path file = out_dir / m.name / (ev::sanitize_id(p.id) + ".json");
                if (ev::is_finished_record(file)) continue;
                nlohmann::json rec{
                    { "version", ev::record_version },
                    { "problem_id", p.id },
                    { "dataset", o.dataset },
                    { "task", p.task },
                    { "method", m.name },
                    { "engine", m.engine },
                    { "model", model->path() },
                    { "chat", chat },
                    { "question", p.question },
                    { "prompt", requests[k].first },
                    { "stop", prompts[k].stop },
                    { "reference", p.reference },
                    // How it was made, in the knob table's vocabulary, with this problem's seed.
                    { "params", powersample_tools::knobs_to_json(requests[k].second) },
                    { "samples", samples },
                    { "n_tokens_generated", tokens },
                    { "n_prompt_tokens", g.n_prompt_tokens },
                    { "wall_seconds", g.wall_seconds },
                };
                if (!m.matched_to.empty()) rec["matched_to"] = m.matched_to;
                if (p.task == "humaneval") {
                    rec["test"]        = p.raw.value("test", "");
                    rec["entry_point"] = p.raw.value("entry_point", "");
                }
                ev::grade_record(rec);
                ev::write_json_atomically(file, rec);
            }
            ++n_done;
            tokens_done += tokens;
            // Time per finished problem, written as it finishes so that a kill loses only the
            // work in flight: the batch's elapsed time since the previous finish goes with this
            // problem, so the lines of a batch add up to its throughput.
            const auto   now       = std::chrono::steady_clock::now();
            const double gap       = std::chrono::duration<double>(now - t_last).count();
            t_last                 = now;
            const std::string line = nlohmann::json{
                { "seconds", gap },
                { "problems", 1 },
                { "group", label },
                { "problem_id", p.id },
                { "interrupted", false }
            }.dump() + "\n";
            for (const auto & name : names) {
                std::ofstream(out_dir / name / "_timing.jsonl", std::ios::app) << line << std::flush;
            }
            const double s = std::chrono::duration<double>(now - t0).count();
            // The ETA assumes the remaining problems cost what the finished ones did.
            const double eta = n_done ? s / double(n_done) * double(pending.size() - n_done) : 0.0;
            if (tty) {
                fmt::print(stderr, "\r[{}] {}/{} done, {} tokens, {:.0f} s, ETA {:.0f} s", label, n_done,
                           pending.size(), tokens_done, s, eta);
            } else if (n_done % 10 == 0 || n_done == pending.size()) {
                fmt::print(stderr, "[{}] {}/{} done, {} tokens, {:.0f} s, ETA {:.0f} s\n", label, n_done,
                           pending.size(), tokens_done, s, eta);
            }
        };
        try {
            sampler.generate_batch_tokens(token_requests, ro, on_result);
        } catch (const ps::invalid_argument_error & e) {
            usage_error(powersample_tools::name_the_flag(e).what());
        } catch (const std::exception & e) {
            fmt::print(stderr, "\npower-sampling-eval: [{}] generation failed: {}\n", label, e.what());
            return 2;
        }
        if (tty) fmt::print(stderr, "\n");
    }
    if (g_cancel.load()) {
        fmt::print(stderr, "interrupted: finished results are kept; rerun the same command to resume\n");
        exit_code = 130;
    }
    return exit_code;
}

// Summarises every finished result of the selected problems (stdout, and summary.md,
// summary.json and report.html in --out). Returns exit_code, or 2 when --out cannot be written.
int summarise(const run_plan & plan, const options & o, const problem_set & set, int exit_code) {
    const auto &     method_names = plan.method_names;
    const fs::path & out_dir      = plan.out_dir;
    const auto &     selected_ids = set.ids;
    auto             records = read_records(out_dir, method_names, o.dataset.empty() ? nullptr : &selected_ids, true);
    for (auto & rec : records) {
        if (!rec.contains("grade") && !rec.contains("skipped")) ev::grade_record(rec);
    }
    const auto   rows = ev::summarize(records, method_names, read_timings(out_dir, method_names));
    ev::run_info info;
    if (!records.empty()) {
        const auto & r0 = records.front();
        info.emplace_back("model", fs::path(r0.value("model", "")).filename().string());
        info.emplace_back("dataset", r0.value("dataset", ""));
        info.emplace_back("prompt", r0.value("chat", false) ? "chat template" : "raw");
        const std::string max_tokens = ps::knob_for(&ps::sampling_params::max_new_tokens).name();
        const std::string chains     = ps::knob_for(&ps::sampling_params::n_chains).name();
        info.emplace_back("max new tokens", std::to_string(r0["params"].value(max_tokens, 0)));
        for (const auto & rec : records) {
            if (rec.value("engine", "") == "power") {
                const auto & pp = rec["params"];
                info.emplace_back("power", fmt::format("alpha {}, block {}, steps {}", pp.value("alpha", 0.0),
                                                       pp.value("block_size", 0), pp.value("steps", 0)));
                break;
            }
        }
        // Each method's own knobs, from its group in the first record of it.
        for (const char * engine : { "power-entropy", "smc", "sps" }) {
            const char * group = ps::knob_group(ps::method_from_name(engine));
            for (const auto & rec : records) {
                if (rec.value("engine", "") != engine || !rec["params"].contains(group)) continue;
                std::string knobs;
                for (const auto & [k, v] : rec["params"][group].items()) {
                    knobs += (knobs.empty() ? "" : ", ") + k + " " + (v.is_string() ? v.get<std::string>() : v.dump());
                }
                if (engine == std::string("sps"))
                    knobs += ", block " + std::to_string(rec["params"].value("block_size", 0));
                info.emplace_back(engine, knobs);
                break;
            }
        }
        for (const auto & rec : records) {
            if (rec["params"].value(chains, 1) > 1) {
                info.emplace_back("N (samples for N-methods)", std::to_string(rec["params"].value(chains, 1)));
                break;
            }
        }
    }
    // Relative to the working directory when inside it, so that a summary committed with its
    // results names no machine's paths.
    {
        std::error_code ec;
        const fs::path  rel    = fs::relative(out_dir, fs::current_path(ec), ec);
        const bool      inside = !ec && !rel.empty() && *rel.begin() != "..";
        info.emplace_back("results", inside ? rel.string() : out_dir.string());
    }
    const std::string md = ev::summary_markdown(rows, info);
    fmt::print("{}", md);
    std::fflush(stdout);
    try {
        fs::create_directories(out_dir);
        ev::write_text_atomically(out_dir / "summary.md", md);
        ev::write_text_atomically(out_dir / "summary.json", ev::summary_json(rows, info).dump(2) + "\n");
        ev::write_text_atomically(out_dir / "report.html", ev::report_html(rows, info));
    } catch (const std::exception & e) {
        fmt::print(stderr, "power-sampling-eval: --out '{}': {}\n", o.out, e.what());
        return 2;
    }
    return exit_code;
}

}  // namespace

int main(int argc, char ** argv) {
    options  o;
    CLI::App app;  // outlives the parse: o.knobs asks its options which flags were given
    if (const auto code = parse_command_line(argc, argv, app, o)) return *code;
    const run_plan plan = plan_run(o);
    const auto     set  = load_problems(o, plan);
    if (!set) return 2;
    int exit_code = 0;
    if (o.regrade) {
        regrade(plan, o, *set);
    } else if (!o.summary_only) {
        exit_code = generate(plan, o, *set);
        if (exit_code == 2) return 2;
    }
    return summarise(plan, o, *set, exit_code);
}
