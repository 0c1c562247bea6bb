// Loading of evaluation datasets (JSONL, optionally gzip-compressed) into a uniform
// `problem` list, independent of any model or inference engine.
#pragma once

#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace powersample::eval {

struct problem {
    std::string id;
    std::string question;
    // The gold answer as text: a number for "numeric", a LaTeX answer for "math", the
    // canonical solution body for "humaneval" (the tests live in raw["test"]).
    std::string reference;
    // One of "numeric", "math", "humaneval"; selects the grader.
    std::string    task;
    nlohmann::json raw;
};

// A skipped input line. `line` is 1-based, as editors show it.
struct load_warning {
    std::string file;
    std::size_t line = 0;
    std::string reason;
};

using warning_callback = std::function<void(const load_warning &)>;

// Selection is applied in this order: shuffle (if requested), then offset, then limit, so
// that `shuffle + limit` gives a random subset and `offset + limit` pages through it.
struct load_options {
    std::size_t                offset = 0;
    std::optional<std::size_t> limit;
    bool                       shuffle = false;
    std::uint64_t              seed    = 0;
    // Called for every skipped line in addition to collecting it in load_result::warnings.
    warning_callback on_warning;
};

struct load_result {
    std::vector<problem>      problems;
    std::vector<load_warning> warnings;
};

// Field mapping for a user-supplied JSONL file. An empty id_field (or a row without it)
// gives ids "<file stem>/<index>".
struct field_mapping {
    std::string question_field = "question";
    std::string answer_field   = "answer";
    std::string id_field;
    std::string task = "numeric";
};

// The three task kinds the graders understand.
const std::vector<std::string> & valid_tasks();

// Names accepted by load_builtin_dataset, in a stable order.
const std::vector<std::string> & builtin_dataset_names();
bool                             is_builtin_dataset(std::string_view name);

// File name of a built-in dataset inside the data directory; throws std::invalid_argument
// listing the valid names when `name` is unknown.
std::string builtin_dataset_file(std::string_view name);

// `../shared/datasets`, i.e. relative to the repository root when run from there; the
// POWERSAMPLE_DATA_DIR environment variable overrides it.
std::filesystem::path default_data_dir();

load_result load_builtin_dataset(std::string_view name, const std::filesystem::path & data_dir,
                                 const load_options & options = {});
load_result load_builtin_dataset(std::string_view name, const load_options & options = {});

load_result load_jsonl_dataset(const std::filesystem::path & file, const field_mapping & mapping,
                               const load_options & options = {});

// Reads a whole file, transparently gunzipping it when it is gzip-compressed.
// Throws std::runtime_error naming the path on failure.
std::string read_possibly_gzipped_file(const std::filesystem::path & file);

// Reference extraction, exposed for testing and for graders of user files.
// GSM8K: the number after the last "####", commas removed.
std::optional<std::string> gsm8k_reference(std::string_view answer);
// MATH: the content of the last \boxed{...}, else the text after "The answer is:".
std::optional<std::string> math_reference(std::string_view answer);
// Shortest text that round-trips the value; integral values print without ".0".
std::string format_number(double value);

// Uniform integer in [0, bound) by rejection sampling, so the result depends only on the
// engine's (standardised) output sequence and not on the standard library's distributions.
std::uint64_t uniform_below(std::mt19937_64 & rng, std::uint64_t bound);

// Fisher-Yates permutation of 0..n-1 that is identical on every standard library.
std::vector<std::size_t> shuffled_indices(std::size_t n, std::uint64_t seed);

}  // namespace powersample::eval
