// Result records of the evaluation harness: the evaluation methods, one JSON file per
// (problem, method) written atomically, and grading as a separate step over those files.
// Nothing here loads a model; power-sampling-eval.cpp does the generation.
#pragma once

#include "datasets.h"
#include "graders.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace powersample::eval {

// How a method turns its samples into one answer.
enum class selection {
    single,      // one sample: its answer
    best_log_p,  // the sample with the highest base-model log p(x | prompt)
    majority,    // the most frequent extracted answer (self-consistency)
};

struct eval_method {
    std::string    name;    // e.g. "power-maj-vote"
    std::string    engine;  // the library method: "greedy", "sample", "low-temp", "power"
    bool           uses_n;  // draws --n-samples chains instead of one
    enum selection selection;
    std::string    description;
    // Compute-matched best-of-n or majority vote ("best-of-n@smc", "maj-vote@power"): the method
    // whose tokens per problem set N.
    std::string matched_to;
};

// greedy, sample, low-temp, power, power-entropy, smc, sps, best-of-n, maj-vote, power-maj-vote,
// in that order.
const std::vector<eval_method> & eval_methods();
// A method of the table, or "best-of-n@M" / "maj-vote@M" for M one of the table's single-answer
// methods other than greedy (N samples at the token budget M spent); nullopt for anything else.
std::optional<eval_method> find_eval_method(std::string_view name);
// "greedy, sample, ..., best-of-n@METHOD" for error messages.
std::string eval_method_names();

// A problem id as a file name: [A-Za-z0-9._-] kept, anything else replaced by '_'; when
// something was replaced, a hash of the original is appended so that "a/b" and "a_b" differ.
std::string sanitize_id(std::string_view id);

// The prompt-side part of a task: the user message (chat) or the whole prompt (raw), and for
// raw prompts the text at which a base model's continuation is cut before grading (base models
// go on to invent the next question).
struct prompt_text {
    std::string text;
    std::string stop;  // empty: grade the whole response
};
prompt_text build_prompt(const problem & p, bool chat);

// The response as graded: cut at the first `stop` when one is given.
std::string graded_text(std::string_view response, std::string_view stop);

struct sample_grade {
    std::optional<std::string> answer;  // extracted answer (humaneval: the assembled program)
    bool                       correct = false;
    std::string                detail;   // humaneval: why a program failed
    std::string                sandbox;  // humaneval: test_outcome::sandbox, the isolation that ran
};

struct selected_answer {
    int         index = -1;  // sample chosen; -1 when no sample has an answer
    std::string answer;      // "" when none
    bool        correct = false;
};

// Key under which two answers count as the same vote: numeric answers by value, MATH answers
// after normalisation, programs with trailing whitespace trimmed.
std::string answer_key(std::string_view task, std::string_view answer);

// Majority vote over the samples that have an answer; a tie goes to the answer that appears
// first in chain order, so the result is deterministic. Correct iff that answer is.
selected_answer select_majority(std::string_view task, const std::vector<sample_grade> & grades);
// The sample with the largest log_p (ties: the first); its answer may be empty.
selected_answer select_best_log_p(const std::vector<double> & log_p, const std::vector<sample_grade> & grades);

// True when a response states its answer: a \boxed{}, "####", or an "answer is/answer:/answer ="
// phrase (case-insensitive).
bool has_explicit_answer(std::string_view response);

// Grades one response of a problem. `reference`, `question`, `test` and `entry_point` are as
// stored in the record; numeric and math grading are pure, humaneval runs the sandbox.
// `truncated`: the response was cut at the token cap. A cut numeric response without an explicit
// answer has no answer: its last number is mid-reasoning (often a list marker such as "8."), and
// taking it would credit runaway responses with lucky numbers.
sample_grade grade_response(std::string_view task, std::string_view response, std::string_view reference,
                            std::string_view question, std::string_view test, std::string_view entry_point,
                            const sandbox_limits & limits = {}, bool truncated = false);

// Fills record["grade"] from record["samples"] (answers, per-sample correctness, selection,
// n_correct). Everything it needs is inside the record, so --regrade needs no model.
void grade_record(nlohmann::json & record, const sandbox_limits & limits = {});

// The result file format. 2: "params" holds the knobs in the knob table's vocabulary
// (powersample/knobs.h: max_tokens, chains, a method's own under its group); 1 had
// max_new_tokens, n_chains and a flat "method_params" (scripts/convert-results-v2.py converts).
constexpr int record_version = 2;

// A finished result file: parses, has samples, none of them cancelled. Anything else (missing,
// truncated, cancelled) is work still to do.
bool is_finished_record(const std::filesystem::path & file);

// Writes `record` to `file` via a temporary file in the same directory and rename(2), so a
// reader sees either the old file or the whole new one. Throws std::runtime_error on failure.
void write_json_atomically(const std::filesystem::path & file, const nlohmann::json & record);
// The same for any text (summaries, reports); fsync'd before the rename, so that after a crash
// the name never points at an empty file.
void write_text_atomically(const std::filesystem::path & file, const std::string & text);

}  // namespace powersample::eval
