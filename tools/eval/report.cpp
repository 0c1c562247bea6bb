#include "report.h"

#include <powersample/text.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <map>
#include <string_view>

namespace powersample::eval {

namespace {

std::string fixed(double v, int digits) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*f", digits, v);
    return buf;
}

std::string percent(double v) { return fixed(100.0 * v, 1); }

std::string pass_at_text(const method_summary & r, std::uint64_t k_wanted_index) {
    if (k_wanted_index >= r.pass_at.size()) return "-";
    return percent(r.pass_at[k_wanted_index].second) + " (k=" + std::to_string(r.pass_at[k_wanted_index].first) + ")";
}

std::string paired_text(const method_summary & r) {
    if (!r.paired) return "-";
    return "+" + std::to_string(r.paired->wins) + "/-" + std::to_string(r.paired->losses) + " (p " +
           fixed(r.paired->p_value, 2) + ")";
}

}  // namespace

double sign_test_p_value(std::uint64_t wins, std::uint64_t losses) {
    const std::uint64_t n = wins + losses, k = std::min(wins, losses);
    if (n == 0) return 1.0;
    // sum_{i<=k} C(n, i) / 2^n, in logs so that n in the thousands does not overflow.
    double tail = 0;
    for (std::uint64_t i = 0; i <= k; ++i) {
        tail += std::exp(std::lgamma(double(n) + 1) - std::lgamma(double(i) + 1) - std::lgamma(double(n - i) + 1) -
                         double(n) * std::log(2.0));
    }
    return std::min(1.0, 2.0 * tail);
}

std::vector<method_summary> summarize(const std::vector<nlohmann::json> &         records,
                                      const std::vector<std::string> &            method_order,
                                      const std::map<std::string, batch_timing> & timings) {
    std::vector<method_summary> rows;
    for (const auto & name : method_order) {
        method_summary row;
        row.method = name;
        std::vector<std::pair<std::uint64_t, std::uint64_t>> n_c;  // samples, correct samples
        double                                               tokens = 0, wall = 0;
        std::uint64_t                                        proposals = 0, accepted = 0;
        bool                                                 has_power = false;
        for (const auto & rec : records) {
            if (rec.value("method", "") != name) continue;
            if (rec.contains("skipped")) {
                ++row.n_skipped;
                continue;
            }
            if (!rec.contains("grade")) continue;
            ++row.n_problems;
            const auto & g = rec.at("grade");
            if (g.value("correct", false)) ++row.n_correct;
            if (g.value("answer", "").empty()) ++row.n_no_answer;
            const auto & samples = rec.at("samples");
            n_c.emplace_back(samples.size(), g.value("n_correct", 0));
            for (const auto & s : samples) {
                ++row.n_samples_total;
                if (s.value("finish", "") == "length") ++row.n_samples_at_cap;
                tokens += s.value("n_tokens_generated", 0.0);
                proposals += s.value("n_proposals", 0);
                accepted += s.value("n_accepted", 0);
            }
            const std::string engine = rec.value("engine", "");
            has_power |= engine == "power" || engine == "power-entropy";
            wall += rec.value("wall_seconds", 0.0);
        }
        if (row.n_problems == 0) continue;
        row.accuracy_ci           = wilson_interval(row.n_correct, row.n_problems);
        row.mean_tokens_generated = tokens / double(row.n_problems);
        row.mean_wall_seconds     = wall / double(row.n_problems);
        row.n_samples             = std::numeric_limits<std::uint64_t>::max();
        for (const auto & [n, c] : n_c) row.n_samples = std::min<std::uint64_t>(row.n_samples, n);
        if (row.n_samples > 1) {
            for (std::uint64_t k : { std::uint64_t{ 1 }, row.n_samples }) {
                double sum = 0;
                for (const auto & [n, c] : n_c) sum += pass_at_k(n, std::min(c, n), k);
                row.pass_at.emplace_back(k, sum / double(n_c.size()));
            }
        }
        if (has_power && proposals > 0) row.acceptance_rate = double(accepted) / double(proposals);
        if (auto it = timings.find(name); it != timings.end() && it->second.problems > 0) {
            row.seconds_per_problem = it->second.seconds / double(it->second.problems);
        }
        rows.push_back(row);
    }
    // Paired comparison with the first row's method, problem by problem.
    if (!rows.empty()) {
        auto correct_by_problem = [&](const std::string & method) {
            std::map<std::string, bool> out;
            for (const auto & rec : records) {
                if (rec.value("method", "") != method || !rec.contains("grade")) continue;
                out[rec.value("problem_id", "")] = rec.at("grade").value("correct", false);
            }
            return out;
        };
        const auto reference = correct_by_problem(rows[0].method);
        for (size_t i = 1; i < rows.size(); ++i) {
            method_summary::paired_comparison pc;
            pc.reference = rows[0].method;
            for (const auto & [id, ok] : correct_by_problem(rows[i].method)) {
                const auto it = reference.find(id);
                if (it == reference.end()) continue;
                ++pc.n_common;
                pc.wins += ok && !it->second;
                pc.losses += !ok && it->second;
            }
            pc.p_value     = sign_test_p_value(pc.wins, pc.losses);
            rows[i].paired = pc;
        }
    }
    // The reference for wall time: one plain sample, or greedy (one sample's length) without it.
    std::optional<double> plain;
    for (const char * ref : { "sample", "greedy" }) {
        for (const auto & r : rows) {
            if (!plain && r.method == ref && r.seconds_per_problem && *r.seconds_per_problem > 0) {
                plain = r.seconds_per_problem;
            }
        }
    }
    for (auto & r : rows) {
        if (plain && r.seconds_per_problem) r.time_vs_sample = *r.seconds_per_problem / *plain;
    }
    return rows;
}

std::string summary_markdown(const std::vector<method_summary> & rows, const run_info & info) {
    std::string out;
    for (const auto & [key, value] : info) out += "- " + key + ": " + value + "\n";
    if (!info.empty()) out += "\n";
    out +=
        "| method | problems | accuracy % | 95% CI | pass@1 % | pass@N % | no answer | skipped | at cap % | "
        "tokens/problem | "
        "latency s/problem | s/problem (batched) | time x sample | MH accept | vs " +
        (rows.empty() ? std::string("first") : rows[0].method) + ": +won/-lost (p) |\n";
    out += "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n";
    for (const auto & r : rows) {
        out += "| " + r.method + " | " + std::to_string(r.n_problems) + " | " + percent(r.accuracy()) + " | [" +
               percent(r.accuracy_ci.lower) + ", " + percent(r.accuracy_ci.upper) + "] | " + pass_at_text(r, 0) +
               " | " + pass_at_text(r, 1) + " | " + std::to_string(r.n_no_answer) + " | " +
               std::to_string(r.n_skipped) + " | " +
               (r.n_samples_total ? percent(double(r.n_samples_at_cap) / double(r.n_samples_total)) : "-") + " | " +
               fixed(r.mean_tokens_generated, 1) + " | " + fixed(r.mean_wall_seconds, 2) + " | " +
               (r.seconds_per_problem ? fixed(*r.seconds_per_problem, 2) : "-") + " | " +
               (r.time_vs_sample ? fixed(*r.time_vs_sample, 1) : "-") + " | " +
               (r.acceptance_rate ? percent(*r.acceptance_rate) + "%" : "-") + " | " + paired_text(r) + " |\n";
    }
    return out;
}

nlohmann::json summary_json(const std::vector<method_summary> & rows, const run_info & info) {
    nlohmann::json j;
    j["run"] = nlohmann::json::object();
    for (const auto & [key, value] : info) j["run"][key] = value;
    j["methods"] = nlohmann::json::array();
    for (const auto & r : rows) {
        nlohmann::json row{
            { "method", r.method },
            { "n_problems", r.n_problems },
            { "n_correct", r.n_correct },
            { "accuracy", r.accuracy() },
            { "accuracy_ci95", { r.accuracy_ci.lower, r.accuracy_ci.upper } },
            { "n_no_answer", r.n_no_answer },
            { "n_samples_at_cap", r.n_samples_at_cap },
            { "n_samples_total", r.n_samples_total },
            { "n_skipped", r.n_skipped },
            { "n_samples", r.n_samples },
            { "mean_tokens_generated", r.mean_tokens_generated },
            { "mean_wall_seconds", r.mean_wall_seconds },
            { "seconds_per_problem", r.seconds_per_problem ? nlohmann::json(*r.seconds_per_problem) : nullptr },
            { "acceptance_rate", r.acceptance_rate ? nlohmann::json(*r.acceptance_rate) : nullptr },
            { "time_vs_sample", r.time_vs_sample ? nlohmann::json(*r.time_vs_sample) : nullptr },
            { "paired", r.paired ? nlohmann::json{ { "reference", r.paired->reference },
                                                   { "n_common", r.paired->n_common },
                                                   { "wins", r.paired->wins },
                                                   { "losses", r.paired->losses },
                                                   { "p_value", r.paired->p_value } }
                                 : nlohmann::json(nullptr) },
        };
        row["pass_at_k"] = nlohmann::json::object();
        for (const auto & [k, v] : r.pass_at) row["pass_at_k"][std::to_string(k)] = v;
        j["methods"].push_back(row);
    }
    return j;
}

std::string report_html(const std::vector<method_summary> & rows, const run_info & info) {
    // Chart geometry: accuracy (with its Wilson interval) against tokens generated per problem.
    const double width = 720, height = 420, left = 70, right = 170, top = 20, bottom = 60;
    const double plot_w = width - left - right, plot_h = height - top - bottom;
    double       x_min = std::numeric_limits<double>::max(), x_max = 0, y_max = 0.1;
    for (const auto & r : rows) {
        x_min = std::min(x_min, std::max(1.0, r.mean_tokens_generated));
        x_max = std::max(x_max, std::max(1.0, r.mean_tokens_generated));
        y_max = std::max(y_max, r.accuracy_ci.upper);
    }
    if (rows.empty()) x_min = 1, x_max = 10;
    y_max = std::min(1.0, std::ceil(y_max * 10.0 + 1e-9) / 10.0);
    // Token budgets of the methods span orders of magnitude (greedy vs N power chains): log scale.
    const double lx_min = std::floor(std::log10(x_min)), lx_max = std::max(lx_min + 1, std::ceil(std::log10(x_max)));
    auto         px = [&](double tokens) {
        return left + (std::log10(std::max(1.0, tokens)) - lx_min) / (lx_max - lx_min) * plot_w;
    };
    auto                      py        = [&](double acc) { return top + (1.0 - acc / y_max) * plot_h; };
    static const char * const colours[] = { "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728",
                                            "#9467bd", "#8c564b", "#e377c2", "#7f7f7f" };

    std::string svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + fixed(width, 0) + "\" height=\"" +
                      fixed(height, 0) + "\" font-family=\"sans-serif\" font-size=\"12\">\n";
    svg += "<rect x=\"" + fixed(left, 0) + "\" y=\"" + fixed(top, 0) + "\" width=\"" + fixed(plot_w, 0) +
           "\" height=\"" + fixed(plot_h, 0) + "\" fill=\"none\" stroke=\"#333\"/>\n";
    for (int i = 0; i <= 5; ++i) {
        const double acc = y_max * i / 5.0, y = py(acc);
        svg += "<line x1=\"" + fixed(left, 1) + "\" y1=\"" + fixed(y, 1) + "\" x2=\"" + fixed(left + plot_w, 1) +
               "\" y2=\"" + fixed(y, 1) + "\" stroke=\"#ddd\"/>\n";
        svg += "<text x=\"" + fixed(left - 6, 1) + "\" y=\"" + fixed(y + 4, 1) + "\" text-anchor=\"end\">" +
               percent(acc) + "%</text>\n";
    }
    for (double e = lx_min; e <= lx_max + 1e-9; e += 1.0) {
        const double x = px(std::pow(10.0, e));
        svg += "<line x1=\"" + fixed(x, 1) + "\" y1=\"" + fixed(top, 1) + "\" x2=\"" + fixed(x, 1) + "\" y2=\"" +
               fixed(top + plot_h, 1) + "\" stroke=\"#ddd\"/>\n";
        svg += "<text x=\"" + fixed(x, 1) + "\" y=\"" + fixed(top + plot_h + 16, 1) + "\" text-anchor=\"middle\">" +
               fixed(std::pow(10.0, e), 0) + "</text>\n";
    }
    svg += "<text x=\"" + fixed(left + plot_w / 2, 1) + "\" y=\"" + fixed(height - 15, 1) +
           "\" text-anchor=\"middle\">tokens generated per problem (log scale, proposals included)</text>\n";
    svg += "<text transform=\"translate(16," + fixed(top + plot_h / 2, 1) +
           ") rotate(-90)\" text-anchor=\"middle\">accuracy (95% Wilson interval)</text>\n";
    for (size_t i = 0; i < rows.size(); ++i) {
        const auto &      r      = rows[i];
        const std::string colour = colours[i % 8];
        const double      x      = px(r.mean_tokens_generated);
        svg += "<line x1=\"" + fixed(x, 1) + "\" y1=\"" + fixed(py(r.accuracy_ci.lower), 1) + "\" x2=\"" + fixed(x, 1) +
               "\" y2=\"" + fixed(py(r.accuracy_ci.upper), 1) + "\" stroke=\"" + colour + "\" stroke-width=\"2\"/>\n";
        svg += "<circle cx=\"" + fixed(x, 1) + "\" cy=\"" + fixed(py(r.accuracy()), 1) + "\" r=\"5\" fill=\"" + colour +
               "\"><title>" + powersample::markup_escape(r.method) + ": " + percent(r.accuracy()) + "% at " +
               fixed(r.mean_tokens_generated, 0) + " tokens</title></circle>\n";
        const double ly = top + 14 + 18 * double(i);
        svg += "<circle cx=\"" + fixed(left + plot_w + 16, 1) + "\" cy=\"" + fixed(ly - 4, 1) + "\" r=\"5\" fill=\"" +
               colour + "\"/>\n";
        svg += "<text x=\"" + fixed(left + plot_w + 26, 1) + "\" y=\"" + fixed(ly, 1) + "\">" +
               powersample::markup_escape(r.method) + "</text>\n";
    }
    svg += "</svg>\n";

    std::string html =
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>powersample evaluation</title>\n"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
        "td:first-child,th:first-child{text-align:left}</style></head><body>\n"
        "<h1>powersample evaluation</h1>\n<ul>\n";
    for (const auto & [key, value] : info) {
        html += "<li>" + powersample::markup_escape(key) + ": " + powersample::markup_escape(value) + "</li>\n";
    }
    html += "</ul>\n" + svg +
            "<table>\n<tr><th>method</th><th>problems</th><th>accuracy %</th><th>95% CI</th><th>pass@1 %</th>"
            "<th>pass@N %</th><th>no answer</th><th>skipped</th><th>tokens/problem</th><th>latency s/problem</th>"
            "<th>s/problem (batched)</th><th>time x sample</th><th>MH accept</th><th>vs " +
            powersample::markup_escape(rows.empty() ? std::string("first") : rows[0].method) +
            ": +won/-lost (p)</th></tr>\n";
    for (const auto & r : rows) {
        html += "<tr><td>" + powersample::markup_escape(r.method) + "</td><td>" + std::to_string(r.n_problems) +
                "</td><td>" + percent(r.accuracy()) + "</td><td>[" + percent(r.accuracy_ci.lower) + ", " +
                percent(r.accuracy_ci.upper) + "]</td><td>" + pass_at_text(r, 0) + "</td><td>" + pass_at_text(r, 1) +
                "</td><td>" + std::to_string(r.n_no_answer) + "</td><td>" + std::to_string(r.n_skipped) + "</td><td>" +
                fixed(r.mean_tokens_generated, 1) + "</td><td>" + fixed(r.mean_wall_seconds, 2) + "</td><td>" +
                (r.seconds_per_problem ? fixed(*r.seconds_per_problem, 2) : "-") + "</td><td>" +
                (r.time_vs_sample ? fixed(*r.time_vs_sample, 1) : "-") + "</td><td>" +
                (r.acceptance_rate ? percent(*r.acceptance_rate) + "%" : "-") + "</td><td>" +
                powersample::markup_escape(paired_text(r)) + "</td></tr>\n";
    }
    html += "</table>\n</body></html>\n";
    return html;
}

}  // namespace powersample::eval
