#include "results.h"

#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <stdexcept>
#include <system_error>

#include <fcntl.h>
#include <unistd.h>

namespace powersample::eval {

const std::vector<eval_method> & eval_methods() {
    static const std::vector<eval_method> methods{
        { "greedy", "greedy", false, selection::single, "argmax decoding", "" },
        { "sample", "sample", false, selection::single, "one plain sample at T = 1", "" },
        { "low-temp", "low-temp", false, selection::single, "one sample at T = 1/alpha", "" },
        { "power", "power", false, selection::single, "one power-sampling (MCMC) chain", "" },
        { "power-entropy", "power-entropy", false, selection::single,
          "one power-sampling chain with entropy-guided cuts (arXiv 2605.30327)", "" },
        { "smc", "smc", false, selection::single, "Power-SMC: one answer drawn from the weighted particles", "" },
        { "sps", "sps", false, selection::single,
          "Scalable Power Sampling, sps-small settings (approximate; arXiv 2601.21590)", "" },
        { "best-of-n", "sample", true, selection::best_log_p,
          "N samples at T = 1, the one with the highest base-model log p", "" },
        { "maj-vote", "sample", true, selection::majority, "majority answer of N samples at T = 1", "" },
        { "power-maj-vote", "power", true, selection::majority, "majority answer of N power chains", "" },
    };
    return methods;
}

std::optional<eval_method> find_eval_method(std::string_view name) {
    for (const auto & m : eval_methods()) {
        if (m.name == name) return m;
    }
    // The compute-matched N-sample baselines: best-of-n@M and maj-vote@M.
    const size_t at = name.find('@');
    if (at == std::string_view::npos) return std::nullopt;
    const std::string_view base = name.substr(0, at);
    if (base != "best-of-n" && base != "maj-vote") return std::nullopt;
    const auto target = find_eval_method(name.substr(at + 1));
    // Matching needs a method with one answer per problem whose cost varies: not greedy (its
    // budget is one sample), not the N-sample methods, not another matched method.
    if (!target || target->uses_n || !target->matched_to.empty() || target->name == "greedy") return std::nullopt;
    eval_method m = *find_eval_method(base);
    m.name        = std::string(name);
    m.matched_to  = target->name;
    m.description = std::string(base) + " with N set so that its tokens per problem match " + target->name + "'s";
    return m;
}

std::string eval_method_names() {
    std::string out;
    for (const auto & m : eval_methods()) out += (out.empty() ? "" : ", ") + m.name;
    return out + ", best-of-n@METHOD, maj-vote@METHOD (compute-matched to METHOD)";
}

std::string sanitize_id(std::string_view id) {
    std::string out;
    bool        changed = id.empty();
    for (char c : id) {
        const bool keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                          c == '_' || c == '-';
        out += keep ? c : '_';
        changed |= !keep;
    }
    // A leading dot would make a hidden file, and ".."/"." are not file names.
    if (!out.empty() && out[0] == '.') {
        out[0]  = '_';
        changed = true;
    }
    if (changed) {
        // FNV-1a: fixed across platforms, unlike std::hash.
        std::uint64_t h = 1469598103934665603ull;
        for (char c : id) {
            h ^= static_cast<unsigned char>(c);
            h *= 1099511628211ull;
        }
        char buf[17];
        std::snprintf(buf, sizeof buf, "%08llx", static_cast<unsigned long long>(h & 0xffffffffull));
        out += "-";
        out += buf;
    }
    return out;
}

prompt_text build_prompt(const problem & p, bool chat) {
    if (p.task == "humaneval") {
        if (chat) {
            return {
                "Complete the following Python function. Reply with the whole function in one ```python "
                "code block.\n\n```python\n" +
                    p.question + "```",
                ""
            };
        }
        // A base model continues the function body directly after its docstring.
        return { p.question, "" };
    }
    if (chat) {
        const char * instruction = p.task == "math"
                                       ? "Solve the following problem. Reason step by step, then put the final "
                                         "answer in \\boxed{}."
                                       : "Solve the following math word problem. Reason step by step, then give "
                                         "the final answer as a number in \\boxed{}.";
        return { std::string(instruction) + "\n\nProblem: " + p.question, "" };
    }
    return { "Question: " + p.question + "\nAnswer: Let's think step by step.", "\nQuestion:" };
}

std::string graded_text(std::string_view response, std::string_view stop) {
    if (stop.empty()) return std::string(response);
    const auto at = response.find(stop);
    return std::string(at == std::string_view::npos ? response : response.substr(0, at));
}

std::string answer_key(std::string_view task, std::string_view answer) {
    if (task == "numeric") {
        if (auto v = parse_number(answer)) return format_number(*v);
        return std::string(answer);
    }
    if (task == "math") return normalize_math_answer(answer);
    auto end = answer.find_last_not_of(" \t\r\n");
    return std::string(end == std::string_view::npos ? std::string_view{} : answer.substr(0, end + 1));
}

selected_answer select_majority(std::string_view task, const std::vector<sample_grade> & grades) {
    struct tally {
        int count = 0;
        int first = 0;
    };
    std::map<std::string, tally> votes;
    for (size_t i = 0; i < grades.size(); ++i) {
        if (!grades[i].answer) continue;
        auto [it, inserted] = votes.try_emplace(answer_key(task, *grades[i].answer), tally{ 0, int(i) });
        ++it->second.count;
    }
    selected_answer out;
    int             best_count = 0;
    for (const auto & [key, t] : votes) {
        if (t.count > best_count || (t.count == best_count && t.first < out.index)) {
            best_count = t.count;
            out.index  = t.first;
        }
    }
    if (out.index >= 0) {
        out.answer  = *grades[size_t(out.index)].answer;
        out.correct = grades[size_t(out.index)].correct;
    }
    return out;
}

selected_answer select_best_log_p(const std::vector<double> & log_p, const std::vector<sample_grade> & grades) {
    selected_answer out;
    for (size_t i = 0; i < log_p.size() && i < grades.size(); ++i) {
        if (out.index < 0 || log_p[i] > log_p[size_t(out.index)]) out.index = int(i);
    }
    if (out.index >= 0) {
        const auto & g = grades[size_t(out.index)];
        out.answer     = g.answer.value_or("");
        out.correct    = g.correct;
    }
    return out;
}

bool has_explicit_answer(std::string_view response) {
    if (extract_boxed(response) || response.find("####") != std::string_view::npos) return true;
    std::string lower(response);
    for (auto & c : lower) c = char(std::tolower(static_cast<unsigned char>(c)));
    for (std::string_view phrase : { "answer is", "answer:", "answer =" }) {
        if (lower.find(phrase) != std::string::npos) return true;
    }
    return false;
}

sample_grade grade_response(std::string_view task, std::string_view response, std::string_view reference,
                            std::string_view question, std::string_view test, std::string_view entry_point,
                            const sandbox_limits & limits, bool truncated) {
    sample_grade g;
    if (task == "numeric" && truncated && !has_explicit_answer(response)) {
        g.detail = "cut at the token cap without an answer";
        return g;
    }
    if (task == "numeric") {
        g.answer  = extract_numeric_answer(response);
        g.correct = g.answer && grade_numeric(response, reference);
    } else if (task == "math") {
        g.answer  = extract_math_answer(response);
        g.correct = g.answer && grade_math(response, reference);
    } else if (task == "humaneval") {
        g.answer           = extract_python_function(response, question, entry_point);
        const auto outcome = run_humaneval_test(*g.answer, test, entry_point, limits);
        g.correct          = outcome.passed;
        g.sandbox          = outcome.sandbox;
        if (!outcome.passed) g.detail = outcome.timed_out ? "timed out" : outcome.error_text;
    } else {
        g.detail = "unknown task '" + std::string(task) + "'";
    }
    return g;
}

void grade_record(nlohmann::json & record, const sandbox_limits & limits) {
    const std::string task   = record.at("task").get<std::string>();
    const std::string stop   = record.value("stop", "");
    const auto        method = find_eval_method(record.at("method").get<std::string>());
    if (!method) throw std::runtime_error("unknown method '" + record.at("method").get<std::string>() + "'");
    std::vector<sample_grade> grades;
    std::vector<double>       log_p;
    for (const auto & s : record.at("samples")) {
        const std::string text   = s.at("text").get<std::string>();
        const std::string graded = graded_text(text, stop);
        // Cut by the cap only when the stop string did not end the response first.
        const bool truncated = s.value("finish", "") == "length" && graded.size() == text.size();
        grades.push_back(grade_response(task, graded, record.value("reference", ""), record.value("question", ""),
                                        record.value("test", ""), record.value("entry_point", ""), limits, truncated));
        log_p.push_back(s.at("log_p").get<double>());
    }
    selected_answer chosen;
    switch (method->selection) {
        case selection::single:
            chosen = select_best_log_p(log_p, grades);  // one sample: picks it
            break;
        case selection::best_log_p: chosen = select_best_log_p(log_p, grades); break;
        case selection::majority: chosen = select_majority(task, grades); break;
    }
    nlohmann::json answers = nlohmann::json::array(), correct = nlohmann::json::array(),
                   details = nlohmann::json::array();
    int n_correct          = 0;
    for (const auto & g : grades) {
        answers.push_back(g.answer ? nlohmann::json(*g.answer) : nlohmann::json(nullptr));
        correct.push_back(g.correct);
        details.push_back(g.detail);
        n_correct += g.correct;
    }
    record["grade"] = {
        { "answers", answers },       { "sample_correct", correct }, { "n_correct", n_correct },
        { "selected", chosen.index }, { "answer", chosen.answer },   { "correct", chosen.correct },
    };
    if (task == "humaneval") {
        record["grade"]["details"] = details;
        // The weakest isolation any sample ran under, so the record never overstates it.
        std::string sandbox;
        for (const char * kind : { "fork", "namespaces", "bwrap" }) {
            for (const auto & g : grades) {
                if (sandbox.empty() && g.sandbox == kind) sandbox = kind;
            }
        }
        record["grade"]["sandbox"] = sandbox.empty() ? nlohmann::json(nullptr) : nlohmann::json(sandbox);
    }
}

bool is_finished_record(const std::filesystem::path & file) {
    std::ifstream in(file);
    if (!in) return false;
    try {
        const auto   j       = nlohmann::json::parse(in);
        const auto & samples = j.at("samples");
        if (!samples.is_array() || samples.empty()) return false;
        for (const auto & s : samples) {
            if (s.value("finish", "") == "cancelled") return false;
        }
        return true;
    } catch (const std::exception &) {
        return false;
    }
}

void write_json_atomically(const std::filesystem::path & file, const nlohmann::json & record) {
    write_text_atomically(file, record.dump(1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
}

void write_text_atomically(const std::filesystem::path & file, const std::string & text) {
    const auto tmp = file.string() + ".tmp";
    const int  fd  = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) throw std::runtime_error("cannot write " + tmp + ": " + std::strerror(errno));
    size_t written = 0;
    while (written < text.size()) {
        const ssize_t n = ::write(fd, text.data() + written, text.size() - written);
        if (n < 0) {
            if (errno == EINTR) continue;
            const std::string why = std::strerror(errno);
            ::close(fd);
            throw std::runtime_error("cannot write " + tmp + ": " + why);
        }
        written += size_t(n);
    }
    // fsync before rename: after a crash the name must never point at an empty file.
    if (::fsync(fd) != 0 || ::close(fd) != 0) {
        throw std::runtime_error("cannot write " + tmp + ": " + std::strerror(errno));
    }
    if (std::rename(tmp.c_str(), file.c_str()) != 0) {
        throw std::runtime_error("cannot rename " + tmp + " to " + file.string() + ": " + std::strerror(errno));
    }
}

}  // namespace powersample::eval
