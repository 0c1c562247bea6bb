#include "batch-mode.h"

#include "cli-output.h"
#include "../knob-json.h"

#include <nlohmann/json.hpp>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <set>

namespace ps = powersample;

namespace {

struct batch_item {
    size_t      line;
    std::string id;
    std::string prompt;  // as sent to the model (chat template applied), for display
    // What is sampled from: a chat prompt tokenized so that the line's text cannot write the
    // template's markers (model::tokenize_chat).
    std::vector<ps::token_id> tokens;
    ps::sampling_params       params;
};

// A line may set every knob of the knob table, by its JSON name, and these of its own.
bool line_takes(const ps::knob_info &) { return true; }

const std::set<std::string> & known_fields() {
    static const std::set<std::string> fields = [] {
        std::set<std::string> f = { "id", "prompt", "chat", "system" };
        for (const auto & key : powersample_tools::knob_keys(line_takes)) f.insert(key);
        return f;
    }();
    return fields;
}

// Parses one line into an item; throws invalid_argument_error naming the field.
batch_item parse_line(const std::string & text, size_t line, const ps::sampling_params & defaults,
                      const batch_options & options, const ps::model & m) {
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(text);
    } catch (const nlohmann::json::parse_error & e) {
        throw ps::invalid_argument_error(std::string("not valid JSON (") + e.what() + ")");
    }
    if (!j.is_object()) throw ps::invalid_argument_error("not a JSON object");
    for (auto it = j.begin(); it != j.end(); ++it) {
        if (!known_fields().count(it.key())) throw ps::invalid_argument_error("unknown field '" + it.key() + "'");
    }
    auto field = [&](const char * name, auto & out) {
        if (!j.contains(name)) return;
        try {
            j.at(name).get_to(out);
        } catch (const nlohmann::json::exception &) {
            throw ps::invalid_argument_error(std::string("field '") + name + "': wrong type (" + j.at(name).dump() +
                                             ")");
        }
    };
    batch_item item;
    item.line   = line;
    item.params = defaults;
    // Each line gets its own stream unless it names a seed: same file, same seed, same results.
    item.params.seed = defaults.seed + line;
    if (!j.contains("prompt")) throw ps::invalid_argument_error("missing field 'prompt'");
    std::string prompt;
    field("prompt", prompt);
    if (prompt.empty()) throw ps::invalid_argument_error("field 'prompt': empty");
    if (j.contains("id")) {
        if (j["id"].is_string())
            item.id = j["id"].get<std::string>();
        else if (j["id"].is_number_integer())
            item.id = std::to_string(j["id"].get<int64_t>());
        else
            throw ps::invalid_argument_error("field 'id': must be a string or an integer");
    } else {
        item.id = "line-" + std::to_string(line);
    }
    // Errors name the knob as the line spells it ("sps.top_k: must be an integer, got string").
    powersample_tools::read_knobs(j, item.params, line_takes);
    bool chat = options.chat;
    field("chat", chat);
    std::string system = options.system_prompt;
    field("system", system);
    ps::validate(item.params);
    item.prompt = chat ? m.format_chat(prompt, system) : prompt;
    std::vector<ps::chat_message> messages;
    if (!system.empty()) messages.push_back({ "system", system });
    messages.push_back({ "user", prompt });
    item.tokens = chat ? m.tokenize_chat(messages) : m.tokenize(prompt, true);
    return item;
}

std::set<std::string> ids_already_done(const std::string & path) {
    std::set<std::string> done;
    std::ifstream         in(path);
    std::string           text;
    while (std::getline(in, text)) {
        try {
            const auto j = nlohmann::json::parse(text);
            if (j.contains("id") && j["id"].is_string()) done.insert(j["id"].get<std::string>());
        } catch (const nlohmann::json::exception &) {
            // A torn last line from an interrupted write: its prompt runs again.
        }
    }
    return done;
}

// Drops a torn final line (no newline) so that appended results start on a line of their own.
void trim_torn_tail(const std::string & path) {
    std::ifstream in(path, std::ios::binary);
    std::string   all((std::istreambuf_iterator<char>(in)), {});
    in.close();
    if (all.empty() || all.back() == '\n') return;
    const size_t  keep = all.rfind('\n') == std::string::npos ? 0 : all.rfind('\n') + 1;
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << all.substr(0, keep);
}

}  // namespace

int run_batch(ps::power_sampler & sampler, const ps::sampling_params & defaults, const batch_options & options,
              std::atomic<bool> & interrupted) {
    std::ifstream in(options.input);
    if (!in) throw ps::invalid_argument_error("--batch '" + options.input + "': cannot read");

    std::set<std::string> done;
    if (options.resume) {
        done = ids_already_done(options.output);
        trim_torn_tail(options.output);
    }

    std::vector<batch_item> items;
    std::set<std::string>   seen;
    std::string             text;
    size_t                  line = 0, n_skipped = 0;
    while (std::getline(in, text)) {
        ++line;
        if (text.find_first_not_of(" \t\r") == std::string::npos) continue;
        try {
            batch_item item = parse_line(text, line, defaults, options, sampler.get_model());
            if (!seen.insert(item.id).second) {
                // Not skippable: the output could not say which result is which.
                throw ps::invalid_argument_error("--batch " + options.input + ":" + std::to_string(line) +
                                                 ": duplicate id '" + item.id + "'");
            }
            if (!done.count(item.id)) items.push_back(std::move(item));
        } catch (const ps::invalid_argument_error & e) {
            const std::string msg = e.what();
            if (msg.rfind("--batch", 0) == 0) throw;
            if (options.strict) {
                throw ps::invalid_argument_error("--batch " + options.input + ":" + std::to_string(line) + ": " + msg);
            }
            std::fprintf(stderr, "power-sampling: %s:%zu: %s (skipped)\n", options.input.c_str(), line, msg.c_str());
            ++n_skipped;
        }
    }

    std::ofstream file;
    if (!options.output.empty()) {
        file.open(options.output, options.resume ? std::ios::app : std::ios::trunc);
        if (!file) throw ps::invalid_argument_error("--output '" + options.output + "': cannot write");
    }
    std::ostream & out = options.output.empty() ? std::cout : file;

    std::vector<std::pair<std::vector<ps::token_id>, ps::sampling_params>> requests;
    for (const auto & item : items) requests.emplace_back(item.tokens, item.params);

    // Results wait here until every line before them is written: output stays in input order.
    std::map<size_t, nlohmann::json> ready;
    size_t                           next_to_write = 0, n_written = 0;
    auto                             on_result = [&](size_t index, const ps::generation_result & g) {
        const bool cancelled = !g.chains.empty() && g.chains[0].finish == ps::finish_reason::cancelled;
        if (cancelled) return;  // never recorded as finished: --resume runs it again
        nlohmann::json row = report_to_json({ requests[index].second, g });
        row["id"]          = items[index].id;
        row["line"]        = items[index].line;
        ready[index]       = std::move(row);
        while (ready.count(next_to_write)) {
            out << dump_json(ready[next_to_write]) << "\n";
            out.flush();
            ready.erase(next_to_write);
            ++next_to_write;
            ++n_written;
        }
        if (options.show_progress) {
            std::fprintf(stderr, "\r\033[K%zu/%zu prompts finished", n_written + ready.size(), items.size());
            std::fflush(stderr);
        }
    };
    ps::run_options ro;
    ro.cancel = &interrupted;
    sampler.generate_batch_tokens(requests, ro, on_result);
    if (options.show_progress) std::fprintf(stderr, "\n");
    if (!options.quiet) {
        std::fprintf(stderr, "power-sampling: %zu written, %zu already done, %zu skipped as malformed%s\n", n_written,
                     done.size(), n_skipped, interrupted ? ", interrupted (rerun with --resume)" : "");
    }
    return interrupted ? 130 : 0;
}
