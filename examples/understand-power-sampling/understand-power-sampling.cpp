// understand-power-sampling: an interactive tour of power sampling, on the public API only.
//
//   1. choose a model (the catalogue menu, or a GGUF file of your own) and check it;
//   2. standard sampling vs power sampling on a few prompts;
//   3. the effect of alpha (1, 2, 4, 6) on log-likelihood, acceptance and text;
//   4. one chain step by step: the position resampled, the old and new suffix, log A, the decision.
//
// --auto runs it without input over every cached catalogue model; --check-models only checks the
// catalogue (each cached model loads, its chat flag matches, its size-adapted settings are sane).
// Offline: models come from the cache (power-sampling models lists it).
//
// Exit codes: 0 ok (also on end of input or "q"), 1 usage or input error, 2 runtime failure or a
// failed model check.
#include "powersample/powersample.h"
#include "powersample/trace-svg.h"

#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>
#include <unistd.h>

namespace ps = powersample;

namespace {

// Thrown when the user types q or input ends: the tour stops cleanly (exit 0).
struct quit_requested {};

// Questions on stdout, answers from stdin; in --auto mode nothing is read.
class console {
public:
    explicit console(bool automatic) : automatic_(automatic) {}
    bool automatic() const { return automatic_; }

    // The answer with surrounding blanks removed; throws quit_requested at end of input.
    std::string ask(const std::string & question, const std::string & auto_answer = "") {
        if (automatic_) return auto_answer;
        std::cout << question << std::flush;
        std::string line;
        if (!std::getline(std::cin, line)) {
            std::cout << "\n(end of input: bye)\n";
            throw quit_requested{};
        }
        const size_t b = line.find_first_not_of(" \t\r");
        const size_t e = line.find_last_not_of(" \t\r");
        return b == std::string::npos ? "" : line.substr(b, e - b + 1);
    }

    void pause() {
        if (automatic_) return;
        const std::string a = ask("\n[Enter] continue, [q] quit: ");
        if (a == "q" || a == "quit") throw quit_requested{};
    }

private:
    bool automatic_;
};

void heading(const std::string & title) {
    std::cout << "\n" << std::string(78, '=') << "\n" << title << "\n" << std::string(78, '=') << "\n";
}

// Wrapped explanatory text, prefixed so that it stands apart from results.
void explain(const std::string & text) {
    std::string line;
    size_t      pos = 0;
    while (pos < text.size()) {
        size_t end = text.find(' ', pos);
        if (end == std::string::npos) end = text.size();
        const std::string word = text.substr(pos, end - pos);
        if (!line.empty() && line.size() + 1 + word.size() > 74) {
            std::cout << "  | " << line << "\n";
            line.clear();
        }
        line += (line.empty() ? "" : " ") + word;
        pos = end + 1;
    }
    if (!line.empty()) std::cout << "  | " << line << "\n";
}

// One line of at most max_len bytes, cut at a UTF-8 character boundary, quoted.
std::string quoted(const std::string & s, size_t max_len = 60) {
    std::string out;
    for (char c : s) out += (c == '\n' || c == '\r' || c == '\t') ? ' ' : c;
    if (out.size() > max_len) {
        size_t cut = max_len - 3;
        while (cut > 0 && (static_cast<unsigned char>(out[cut]) & 0xC0) == 0x80) --cut;
        out = out.substr(0, cut) + "...";
    }
    return "\"" + out + "\"";
}

// Settings scaled to the model's size so that a pass stays short on a CPU.
struct demo_settings {
    int32_t max_new_tokens;
    int32_t block_size;
    int32_t steps;
    size_t  n_prompts;
};

demo_settings settings_for(uint64_t n_params, int32_t max_new_tokens_override) {
    demo_settings s;
    if (n_params <= 400'000'000ull) {
        s = { 48, 16, 3, 3 };
    } else if (n_params <= 2'000'000'000ull) {
        s = { 24, 8, 2, 2 };
    } else {
        s = { 16, 8, 2, 1 };
    }
    if (max_new_tokens_override > 0) {
        s.max_new_tokens = max_new_tokens_override;
        s.block_size     = std::min(s.block_size, max_new_tokens_override);
    }
    return s;
}

const std::vector<std::string> example_prompts = {
    "What is 7 * 8? Answer briefly.",
    "Name three fruits.",
    "Complete the sentence: The capital of France is",
};

struct loaded_model {
    std::string                name;  // catalogue name or the path given
    std::shared_ptr<ps::model> model;
    bool                       chat = false;
};

std::string cached_path(const ps::catalog_entry & e) {
    const std::string path = ps::models_directory() + "/" + e.file;
    return access(path.c_str(), R_OK) == 0 ? path : "";
}

// Every finding about one model; empty means the model passed.
std::vector<std::string> check_model(const loaded_model & lm, const ps::catalog_entry * entry,
                                     const demo_settings & s) {
    std::vector<std::string> problems;
    const auto &             m = *lm.model;
    if (m.n_vocab() <= 0) problems.push_back("vocabulary is empty");
    if (m.n_params() == 0) problems.push_back("parameter count is 0");
    if (entry && entry->chat != m.has_chat_template()) {
        problems.push_back(fmt::format("catalogue says {}, the GGUF {} a chat template", entry->chat ? "chat" : "base",
                                       m.has_chat_template() ? "has" : "has no"));
    }
    if (m.has_chat_template()) {
        try {
            if (m.format_chat("hi").find("hi") == std::string::npos)
                problems.push_back("chat template drops the message");
        } catch (const std::exception & e) {
            problems.push_back(std::string("chat template fails: ") + e.what());
        }
    }
    ps::sampling_params p;
    p.max_new_tokens    = s.max_new_tokens;
    p.block_size        = s.block_size;
    p.n_steps_per_block = s.steps;
    try {
        ps::validate(p);
    } catch (const std::exception & e) {
        problems.push_back(std::string("settings invalid: ") + e.what());
    }
    if (s.block_size > s.max_new_tokens) problems.push_back("block size exceeds max tokens");
    if (s.max_new_tokens + 256 > m.n_ctx_train()) problems.push_back("max tokens do not fit the training context");
    if (s.n_prompts < 1 || s.n_prompts > example_prompts.size()) problems.push_back("prompt count out of range");
    // Size adaptation (apart from a -n override): a model over 1B parameters gets fewer tokens
    // and prompts than the smallest, so a pass stays short on a CPU.
    const demo_settings adapted = settings_for(m.n_params(), 0), smallest = settings_for(1, 0);
    if (m.n_params() > 1'000'000'000ull &&
        (adapted.max_new_tokens >= smallest.max_new_tokens || adapted.n_prompts >= smallest.n_prompts)) {
        problems.push_back("settings not size-adapted");
    }
    return problems;
}

// llama.cpp's description is "arch size quant", where size is its guess of the model class from
// the layer count ("llama 256M" for SmolLM2-135M): shown beside the true parameter count it
// contradicts it, so the card keeps the architecture and the quantisation only.
std::string architecture_and_quantisation(const std::string & description) {
    const size_t arch_end = description.find(' ');
    if (arch_end == std::string::npos) return description;
    const size_t size_end = description.find(' ', arch_end + 1);
    if (size_end == std::string::npos) return description;
    return description.substr(0, arch_end) + ", " + description.substr(size_end + 1);
}

// Prints the model's card and its check; returns whether it passed.
bool show_model(const loaded_model & lm, const ps::catalog_entry * entry, const demo_settings & s) {
    const auto & m = *lm.model;
    std::cout << fmt::format("model: {} ({})\n", lm.name, architecture_and_quantisation(m.description()));
    std::cout << fmt::format("  {:.0f} M parameters, {:.0f} MB, vocabulary {}, trained context {}, {}\n",
                             double(m.n_params()) / 1e6, double(m.size_bytes()) / 1e6, m.n_vocab(), m.n_ctx_train(),
                             m.has_chat_template() ? "chat model (prompts get its chat template)"
                                                   : "base model (prompts used as plain text)");
    std::cout << fmt::format(
        "  demo settings for this size: max {} new tokens, block size B {}, {} MH steps per "
        "block, {} prompt(s)\n",
        s.max_new_tokens, s.block_size, s.steps, s.n_prompts);
    const auto problems = check_model(lm, entry, s);
    for (const auto & p : problems) std::cout << "  model check FAILED: " << p << "\n";
    if (problems.empty()) std::cout << "  model check: ok\n";
    return problems.empty();
}

loaded_model load(const std::string & name_or_path) {
    loaded_model lm;
    lm.name  = name_or_path;
    lm.model = ps::model::load({ name_or_path });
    lm.chat  = lm.model->has_chat_template();
    return lm;
}

const ps::catalog_entry * catalogue_entry(const std::string & name) {
    for (const auto & e : ps::model_catalog()) {
        if (e.name == name) return &e;
    }
    return nullptr;
}

// The menu; asks again after a wrong choice, a model not downloaded, or a file that fails to load.
loaded_model choose_model(console & con) {
    const auto & cat = ps::model_catalog();
    for (;;) {
        std::cout << "\nChoose a model (all local, from " << ps::models_directory() << "):\n";
        size_t default_choice = 0;
        for (size_t i = 0; i < cat.size(); ++i) {
            const bool cached = !cached_path(cat[i]).empty();
            if (cat[i].name == ps::default_model_name) default_choice = i + 1;
            std::cout << fmt::format("  {}) {:<20} {:<5} {:<15} {}\n", i + 1, cat[i].name,
                                     cat[i].chat ? "chat" : "base", cached ? "cached" : "not downloaded",
                                     cat[i].description);
        }
        std::cout << "  c) a GGUF file of your own\n  q) quit\n";
        const std::string answer = con.ask(fmt::format("Your choice [{}]: ", default_choice));
        if (answer == "q" || answer == "quit") throw quit_requested{};
        std::string target;
        if (answer == "c") {
            target = con.ask("Path to a .gguf file: ");
            if (target.empty()) continue;
        } else {
            size_t k = default_choice;
            if (!answer.empty()) {
                char *              end = nullptr;
                const unsigned long v   = std::strtoul(answer.c_str(), &end, 10);
                k                       = (*end == '\0' && v >= 1 && v <= cat.size()) ? size_t(v) : 0;
            }
            if (k == 0) {
                std::cout << fmt::format("'{}' is not a choice: type a number from 1 to {}, c or q.\n", answer,
                                         cat.size());
                continue;
            }
            const auto & e = cat[k - 1];
            if (cached_path(e).empty()) {
                std::cout << fmt::format(
                    "{} is not downloaded (this demo stays offline); fetch it with: power-sampling models --fetch {}\n",
                    e.name, e.name);
                continue;
            }
            target = e.name;
        }
        try {
            std::cout << "loading " << target << " ...\n";
            return load(target);
        } catch (const std::exception & e) {
            std::cout << "cannot load '" << target << "': " << e.what() << "\n";
        }
    }
}

struct tour {
    console &         con;
    loaded_model      lm;
    demo_settings     s;
    ps::power_sampler sampler;
    uint64_t          seed;
    std::string       svg_path;

    tour(console & c, loaded_model m, demo_settings st, int32_t threads, uint64_t sd, std::string svg)
        : con(c),
          lm(std::move(m)),
          s(st),
          sampler(lm.model, ps::context_params{ threads }),
          seed(sd),
          svg_path(std::move(svg)) {}

    std::string format(const std::string & user_text) const {
        return lm.chat ? lm.model->format_chat(user_text) : "Question: " + user_text + "\nAnswer:";
    }

    ps::sampling_params power_params(double alpha) const {
        ps::sampling_params p;
        p.method            = ps::method::power;
        p.alpha             = alpha;
        p.max_new_tokens    = s.max_new_tokens;
        p.block_size        = s.block_size;
        p.n_steps_per_block = s.steps;
        p.seed              = seed;
        return p;
    }

    ps::sample_result run(const std::string & prompt, const ps::sampling_params & p) {
        return sampler.generate(prompt, p).chains.at(0);
    }

    void intro() {
        heading("Power sampling in one paragraph");
        explain(
            "A language model gives every completion x of a prompt a probability p(x). Standard sampling "
            "draws x with probability p(x), one token at a time. Power sampling draws x with probability "
            "proportional to p(x)^alpha (alpha > 1), which favours completions the model finds likely as a "
            "whole. That is not the same as lowering the temperature: temperature 1/alpha sharpens each "
            "next-token choice on its own, while p^alpha prefers tokens after which the model stays "
            "confident. Nobody can sample p^alpha directly, so a Metropolis-Hastings chain does it "
            "(arXiv 2510.14901): grow the text block by block; after each block, repeatedly pick a position, "
            "regenerate the rest from there, and accept the new version with a probability that makes the "
            "chain's long-run distribution exactly p^alpha.");
    }

    void compare_samplers(const std::vector<std::string> & prompts) {
        heading("1. Standard sampling vs power sampling (alpha 4)");
        explain(
            fmt::format("Each prompt is completed twice with seed {}: standard sampling (temperature 1) and "
                        "power sampling (alpha 4, B {}, N {}). log p is the base model's log-likelihood of the "
                        "whole completion (higher = more likely); power sampling usually raises it.",
                        seed, s.block_size, s.steps));
        for (const auto & text : prompts) {
            const std::string   prompt   = format(text);
            ps::sampling_params standard = power_params(4.0);
            standard.method              = ps::method::sample;
            standard.temperature         = 1.0;
            const auto a                 = run(prompt, standard);
            const auto b                 = run(prompt, power_params(4.0));
            std::cout << "\nprompt: " << quoted(text) << "\n";
            std::cout << fmt::format("  standard  log p {:8.2f}  ({} tokens)\n            {}\n", a.log_p,
                                     a.tokens.size(), quoted(a.text, 70));
            std::cout << fmt::format(
                "  power     log p {:8.2f}  ({} tokens, acceptance {}/{} = {:.2f}, {} tokens "
                "generated)\n            {}\n",
                b.log_p, b.tokens.size(), b.n_accepted, b.n_proposals, b.acceptance_rate(), b.n_tokens_generated,
                quoted(b.text, 70));
        }
        explain(
            "Longer completions have lower log p simply because they have more tokens, so compare log p "
            "per token too. Power sampling pays for its quality with extra tokens: every rejected proposal "
            "was generated and thrown away.");
    }

    void alpha_table(const std::string & text) {
        heading("2. The effect of alpha");
        explain(
            "The same prompt, the same seed, alpha = 1, 2, 4, 6. With alpha = 1 the target is the model "
            "itself and the proposal (temperature 1/alpha = 1) already samples it: every proposal is "
            "accepted unless its length differs. Larger alpha concentrates the target on likely "
            "completions: log p rises, the proposal at temperature 1/alpha gets sharper, and acceptance "
            "reflects how well the token-by-token proposal matches the sequence-level target.");
        std::cout << "\nprompt: " << quoted(text) << "\n\n";
        std::cout << fmt::format("| {:>5} | {:>8} | {:>11} | {:>10} | {:>9} | {}\n", "alpha", "log p", "log p/token",
                                 "acceptance", "generated", "text");
        std::cout << "|-------|----------|-------------|------------|-----------|------\n";
        const std::string prompt = format(text);
        for (double alpha : { 1.0, 2.0, 4.0, 6.0 }) {
            const auto   r         = run(prompt, power_params(alpha));
            const double per_token = r.tokens.empty() ? 0.0 : r.log_p / double(r.tokens.size());
            std::cout << fmt::format("| {:>5g} | {:>8.2f} | {:>11.3f} | {:>10.2f} | {:>9} | {}\n", alpha, r.log_p,
                                     per_token, r.acceptance_rate(), r.n_tokens_generated, quoted(r.text, 40));
        }
    }

    void step_by_step(const std::string & text) {
        heading("3. One chain, step by step (alpha 4)");
        explain(
            "After each block, each MH step picks a position m uniformly, keeps the text before m, draws a "
            "new suffix from the proposal q (the model at temperature 1/alpha) and accepts it with "
            "probability A = min(1, exp(log A)), where log A = alpha * (log p(new suffix) - log p(old "
            "suffix)) - (log q(new suffix) - log q(old suffix)) + log len(x) - log len(x'). The first term "
            "is what the target wants; the second removes the proposal's own preference (without it the "
            "chain would not sample p^alpha); the third corrects for picking m over lengths that differ.");
        ps::sampling_params p = power_params(4.0);
        p.record_suffixes     = true;
        const auto r          = run(format(text), p);
        std::cout << "\nprompt: " << quoted(text) << "\n";
        for (size_t i = 0; i < r.trace.size(); ++i) {
            const auto & st                 = r.trace[i];
            const double target_term        = p.alpha * (st.log_p_suffix_proposal - st.log_p_suffix_current);
            const double length_term        = std::log(double(st.len_current)) - std::log(double(st.len_proposal));
            const double proposal_term      = st.log_accept_ratio - target_term - length_term;
            const double accept_probability = st.log_accept_ratio >= 0 ? 1.0 : std::exp(st.log_accept_ratio);
            std::cout << fmt::format("\nstep {} (block {}): resample from position m = {} of {} tokens\n", i + 1,
                                     st.block, st.position, st.len_current);
            std::cout << fmt::format("  old suffix  log p {:7.2f}  {}\n", st.log_p_suffix_current,
                                     quoted(lm.model->detokenize(st.suffix_current)));
            std::cout << fmt::format("  new suffix  log p {:7.2f}  {}\n", st.log_p_suffix_proposal,
                                     quoted(lm.model->detokenize(st.suffix_proposal)));
            std::cout << fmt::format(
                "  log A = {:.2f} (target) {:+.2f} (proposal) {:+.2f} (length) = {:.2f};  "
                "A = {:.3f} -> {}\n",
                target_term, proposal_term, length_term, st.log_accept_ratio, accept_probability,
                st.accepted ? "accepted" : "rejected");
        }
        std::cout << fmt::format("\nfinal: log p {:.2f}, {} tokens, acceptance {}/{}\n  {}\n", r.log_p, r.tokens.size(),
                                 r.n_accepted, r.n_proposals, quoted(r.text, 200));
        explain(
            "The chain only ever moves to a new suffix or stays; the final state is one sample from "
            "(approximately, with few steps) p^alpha. More steps per block mix better and cost more tokens.");
        if (!svg_path.empty()) {
            ps::trace_svg_options o;
            o.title = fmt::format("{}: alpha 4, B {}, N {}, T {}, seed {}", lm.name, s.block_size, s.steps,
                                  s.max_new_tokens, seed);
            ps::write_trace_svg(svg_path, r, o);
            std::cout << "trace picture: " << svg_path << "\n";
        }
    }

    void run_all(const std::vector<std::string> & prompts) {
        compare_samplers(prompts);
        con.pause();
        alpha_table(prompts.front());
        con.pause();
        step_by_step(prompts.front());
    }
};

struct options {
    std::string model;
    std::string svg;
    int32_t     threads        = 0;
    int32_t     max_new_tokens = 0;
    uint64_t    seed           = 42;
    bool        automatic      = false;
    bool        check_only     = false;
};

// Loads and checks every cached catalogue model; returns the number that failed.
int check_catalogue(const options & o, std::vector<loaded_model> * keep) {
    int failed = 0, n_cached = 0;
    heading("Model check: every cached catalogue model");
    for (const auto & e : ps::model_catalog()) {
        if (cached_path(e).empty()) {
            std::cout << fmt::format("{}: not downloaded, skipped (fetch: power-sampling models --fetch {})\n", e.name,
                                     e.name);
            continue;
        }
        ++n_cached;
        try {
            auto                lm = load(e.name);
            const demo_settings s  = settings_for(lm.model->n_params(), o.max_new_tokens);
            if (!show_model(lm, &e, s)) ++failed;
            if (keep) keep->push_back(lm);
        } catch (const std::exception & ex) {
            std::cout << fmt::format("model: {}\n  model check FAILED: cannot load: {}\n", e.name, ex.what());
            ++failed;
        }
    }
    if (n_cached == 0) {
        std::cout << "no catalogue model is cached in " << ps::models_directory() << "\n";
        ++failed;
    }
    std::cout << fmt::format("models checked: {}, failed: {}\n", n_cached, failed);
    return failed;
}

}  // namespace

int main(int argc, char ** argv) {
    options  o;
    CLI::App app{
        "understand-power-sampling: an interactive tour of power sampling (arXiv 2510.14901): standard vs "
        "power sampling, the effect of alpha, and one Metropolis-Hastings chain step by step. Offline: "
        "the models come from the local cache."
    };
    app.set_version_flag("--version", powersample::version_line(), "Print the version (commit, llama.cpp) and exit");
    app.add_option("-m,--model", o.model, "Catalogue name or .gguf path (skips the menu)");
    app.add_flag("--auto", o.automatic, "No questions: run the tour on every cached catalogue model (or on -m)");
    app.add_flag("--check-models", o.check_only, "Only check the catalogue: each cached model loads and is sane");
    app.add_option("-t,--threads", o.threads, "CPU threads (0 = all cores)")->capture_default_str();
    app.add_option("-n,--n-predict", o.max_new_tokens, "Max new tokens (0 = by model size: 48 for small models)")
        ->capture_default_str();
    app.add_option("-s,--seed", o.seed, "RNG seed")->capture_default_str();
    app.add_option("--trace-svg", o.svg, "Draw the step-by-step chain as an SVG file (the last model's, with --auto)");
    app.footer(
        "Exit codes: 0 ok (also at end of input or 'q'), 1 usage or input error, 2 runtime failure or a "
        "failed model check.");
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError & e) {
        if (e.get_exit_code() == 0) return app.exit(e);
        std::fprintf(stderr, "understand-power-sampling: %s (see --help)\n", e.what());
        return 1;
    }
    ps::set_log_level(ps::log_level::error);

    try {
        if (o.threads < 0)
            throw ps::invalid_argument_error("--threads = " + std::to_string(o.threads) + ": must be >= 0");
        if (o.max_new_tokens < 0) {
            throw ps::invalid_argument_error("--n-predict = " + std::to_string(o.max_new_tokens) + ": must be >= 0");
        }
        if (!o.svg.empty()) {
            try {
                ps::check_svg_path(o.svg);
            } catch (const ps::invalid_argument_error & e) {
                throw ps::invalid_argument_error(std::string("--trace-svg: ") + e.what());
            }
        }
        if (o.check_only) {
            return check_catalogue(o, nullptr) == 0 ? 0 : 2;
        }

        console                   con(o.automatic);
        std::vector<loaded_model> models;
        int                       failed = 0;
        if (!o.model.empty()) {
            ps::resolve_model_path(o.model);  // names the model when it is neither a file nor cached
            auto lm = load(o.model);
            models.push_back(lm);
        } else if (o.automatic) {
            failed = check_catalogue(o, &models);
        } else {
            std::cout << "understand-power-sampling: a tour of power sampling. Type q (or end the input) to quit.\n";
            models.push_back(choose_model(con));
        }

        for (auto & lm : models) {
            const demo_settings s = settings_for(lm.model->n_params(), o.max_new_tokens);
            heading("Model: " + lm.name);
            if (!show_model(lm, catalogue_entry(lm.name), s)) ++failed;
            std::vector<std::string> prompts(example_prompts.begin(),
                                             example_prompts.begin() + std::ptrdiff_t(s.n_prompts));
            const std::string        own = con.ask("\nYour own prompt (Enter for the examples): ");
            if (own == "q") throw quit_requested{};
            if (!own.empty()) prompts = { own };
            tour t(con, lm, s, o.threads, o.seed, o.svg);
            t.intro();
            con.pause();
            t.run_all(prompts);
        }
        heading("Done");
        explain(
            "Try it on your own prompts: build/bin/power-sampling -p \"...\" --compare, --trace, "
            "--trace-svg FILE. docs/how-it-works.md explains the algorithm with a picture of a real chain.");
        return failed == 0 ? 0 : 2;
    } catch (const quit_requested &) {
        return 0;
    } catch (const ps::invalid_argument_error & e) {
        std::fprintf(stderr, "understand-power-sampling: %s\n", e.what());
        return 1;
    } catch (const std::exception & e) {
        std::fprintf(stderr, "understand-power-sampling: error: %s\n", e.what());
        return 2;
    }
}
