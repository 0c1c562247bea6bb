#include "cli-output.h"

#include "../knob-json.h"

#include <fmt/core.h>

#include <cstdio>
#include <iostream>

namespace ps = powersample;

std::string dump_json(const nlohmann::json & j, int indent) {
    return j.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

nlohmann::json params_to_json(const ps::sampling_params & p) { return powersample_tools::knobs_to_json(p); }

nlohmann::json report_to_json(const run_report & r) {
    nlohmann::json chains = nlohmann::json::array();
    for (const auto & c : r.result.chains) {
        nlohmann::json trace = nlohmann::json::array();
        for (const auto & s : c.trace) {
            trace.push_back({ { "block", s.block },
                              { "position", s.position },
                              { "len_current", s.len_current },
                              { "len_proposal", s.len_proposal },
                              { "log_accept_ratio", s.log_accept_ratio },
                              { "accepted", s.accepted },
                              { "log_p_after", s.log_p_after },
                              { "log_p_suffix_current", s.log_p_suffix_current },
                              { "log_p_suffix_proposal", s.log_p_suffix_proposal },
                              { "n_tokens_proposed", s.n_tokens_proposed },
                              { "stopped_early", s.stopped_early } });
        }
        chains.push_back({ { "text", c.text },
                           { "tokens", c.tokens },
                           { "token_log_p", c.token_log_p },
                           { "log_p", c.log_p },
                           { "finish", ps::finish_reason_name(c.finish) },
                           { "stop", c.stop },
                           { "n_proposals", c.n_proposals },
                           { "n_accepted", c.n_accepted },
                           { "acceptance_rate", c.acceptance_rate() },
                           { "n_tokens_generated", c.n_tokens_generated },
                           { "n_tokens_decoded", c.n_tokens_decoded },
                           { "n_resamples", c.n_resamples },
                           { "n_early_rejections", c.n_early_rejections },
                           { "n_tokens_saved", c.n_tokens_saved },
                           { "trace", trace } });
    }
    return { { "params", params_to_json(r.params) },
             { "n_prompt_tokens", r.result.n_prompt_tokens },
             { "n_tokens_decoded", r.result.n_tokens_decoded },
             { "wall_seconds", r.result.wall_seconds },
             { "chains", chains } };
}

namespace {

std::string describe(const ps::sampling_params & p) {
    switch (p.method) {
        case ps::method::power:
            return fmt::format("power sampling (alpha {}, block {}, steps {}, max {} tokens, proposal T {:.3g})",
                               p.alpha, p.block_size, p.n_steps_per_block, p.max_new_tokens,
                               ps::effective_temperature(p));
        case ps::method::sample:
            return fmt::format("standard sampling (temperature {:.3g}, max {} tokens)", ps::effective_temperature(p),
                               p.max_new_tokens);
        case ps::method::low_temp:
            return fmt::format("low-temperature sampling (temperature {:.3g} = 1/alpha, max {} tokens)",
                               ps::effective_temperature(p), p.max_new_tokens);
        case ps::method::greedy: return fmt::format("greedy decoding (max {} tokens)", p.max_new_tokens);
        case ps::method::power_entropy:
            return fmt::format(
                "entropy-cut power sampling (alpha {}, block {}, steps {}, beta {}, floor {}, max {} tokens)", p.alpha,
                p.block_size, p.n_steps_per_block, p.entropy_beta, p.entropy_floor, p.max_new_tokens);
        case ps::method::smc:
            return fmt::format("Power-SMC (alpha {}, {} particles, kappa {}, ramp {}, max {} tokens)", p.alpha,
                               p.n_particles, p.ess_threshold, p.alpha_ramp_tokens, p.max_new_tokens);
        case ps::method::sps:
            return fmt::format(
                "scalable power sampling ({} proposal, {} level, alpha {}, block {}, {} candidates, K {}, "
                "M {}, look-ahead {}, max {} tokens)",
                ps::sps_proposal_name(p.sps_proposal), ps::sps_level_name(p.sps_level), p.alpha, p.block_size,
                p.sps_candidates, p.sps_top_k, p.sps_rollouts, p.sps_lookahead, p.max_new_tokens);
        case ps::method::best_of_n:
            return fmt::format("best of {} samples (temperature {:.3g}, max {} tokens)", p.best_of,
                               ps::effective_temperature(p), p.max_new_tokens);
    }
    return "?";
}

std::string one_line(const std::string & s, size_t max_len) {
    std::string out;
    for (char c : s) out += (c == '\n' || c == '\r' || c == '\t') ? ' ' : c;
    if (out.size() > max_len) out = out.substr(0, max_len - 3) + "...";
    return out;
}

void print_trace(const ps::sample_result & c) {
    std::cout << fmt::format("{:>5} {:>5} {:>5} {:>9} {:>6} {:>12} {:>8}  {}\n", "block", "pos", "len", "len'", "log A",
                             "accepted", "log p", "");
    for (const auto & s : c.trace) {
        std::cout << fmt::format("{:>5} {:>5} {:>5} {:>9} {:>6.2f} {:>12} {:>8.2f}\n", s.block, s.position,
                                 s.len_current, s.len_proposal, s.log_accept_ratio, s.accepted ? "yes" : "no",
                                 s.log_p_after);
    }
}

}  // namespace

void print_summary(const run_report & r) {
    const bool many = r.result.chains.size() > 1;
    for (size_t i = 0; i < r.result.chains.size(); ++i) {
        const auto & c = r.result.chains[i];
        std::fprintf(stderr, "[%s%s] log p %.2f | %d tokens%s | acceptance %d/%d | generated %lld tokens\n",
                     ps::method_name(r.params.method), many ? fmt::format(" chain {}", i).c_str() : "", c.log_p,
                     int(c.tokens.size()), c.finish == ps::finish_reason::cancelled ? " (interrupted)" : "",
                     c.n_accepted, c.n_proposals, (long long)c.n_tokens_generated);
    }
    std::fprintf(stderr, "[%s] %s: %.2f s, %lld tokens decoded\n", ps::method_name(r.params.method),
                 describe(r.params).c_str(), r.result.wall_seconds, (long long)r.result.n_tokens_decoded);
}

void print_reports(const ps::model & m, const std::string & prompt, const std::vector<run_report> & reports,
                   const output_style & style) {
    if (style.json) {
        nlohmann::json runs = nlohmann::json::array();
        for (const auto & r : reports) runs.push_back(report_to_json(r));
        nlohmann::json out = {
            { "model", m.path() }, { "model_description", m.description() }, { "prompt", prompt }, { "runs", runs }
        };
        std::cout << dump_json(out, 2) << "\n";
        return;
    }
    for (const auto & r : reports) {
        const bool many = r.result.chains.size() > 1;
        if (style.compare || style.trace) std::cout << "=== " << describe(r.params) << " ===\n";
        for (size_t i = 0; i < r.result.chains.size(); ++i) {
            const auto & c = r.result.chains[i];
            if (many) std::cout << "--- chain " << i << " ---\n";
            std::cout << c.text << "\n";
            if (style.trace && !c.trace.empty()) {
                std::cout << "\n";
                print_trace(c);
            }
        }
        if (!style.quiet) print_summary(r);
        if (style.compare) std::cout << "\n";
    }
    if (style.compare && reports.size() > 1) {
        std::cout << fmt::format("{:<10} {:>10} {:>8} {:>11} {:>10} {:>8}  {}\n", "method", "log p", "tokens",
                                 "generated", "acceptance", "time s", "text");
        for (const auto & r : reports) {
            const auto & c = r.result.chains.at(0);
            std::cout << fmt::format("{:<10} {:>10.2f} {:>8} {:>11} {:>10} {:>8.2f}  {}\n",
                                     ps::method_name(r.params.method), c.log_p, c.tokens.size(), c.n_tokens_generated,
                                     c.n_proposals ? fmt::format("{:.0f}%", 100 * c.acceptance_rate()) : "-",
                                     r.result.wall_seconds, one_line(c.text, 50));
        }
    }
}

progress_display::progress_display(bool enabled, const ps::sampling_params & params)
    : enabled_(enabled),
      n_chains_(params.n_chains),
      latest_(size_t(params.n_chains)),
      start_(std::chrono::steady_clock::now()) {}

void progress_display::update(const ps::progress & p) {
    if (!enabled_ || p.chain < 0 || p.chain >= n_chains_) return;
    latest_[size_t(p.chain)] = p;
    const auto now           = std::chrono::steady_clock::now();
    if (drawn_ && now - last_draw_ < std::chrono::milliseconds(100) && !p.done) return;
    last_draw_        = now;
    drawn_            = true;
    double  frac      = 0.0;
    int64_t generated = 0;
    int32_t accepted = 0, proposals = 0;
    for (const auto & q : latest_) {
        const double per_block = q.n_steps > 0 ? double(q.step) / (q.n_steps + 1) : 0.0;
        frac += q.done ? 1.0 : q.n_blocks > 0 ? (q.block - 1 + per_block) / q.n_blocks : 0.0;
        generated += q.n_tokens_generated;
        accepted += q.n_accepted;
        proposals += q.n_proposals;
    }
    frac /= double(n_chains_);
    const int    width  = 24;
    const int    filled = std::min(width, int(frac * width));
    const double secs   = std::chrono::duration<double>(now - start_).count();
    const auto & q      = latest_[size_t(p.chain)];
    std::fprintf(stderr, "\r\033[K[%s%s] %3.0f%% block %d/%d step %d/%d | accepted %d/%d | %lld tokens | %.1f s",
                 std::string(size_t(filled), '#').c_str(), std::string(size_t(width - filled), '.').c_str(), 100 * frac,
                 q.block, q.n_blocks, q.step, q.n_steps, accepted, proposals, (long long)generated, secs);
    std::fflush(stderr);
}

void progress_display::finish() {
    if (enabled_ && drawn_) {
        std::fprintf(stderr, "\r\033[K");
        std::fflush(stderr);
    }
}
