#include "datasets.h"
#include "graders/scan.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <zlib.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <stdexcept>
#include <system_error>
#include <utility>

namespace powersample::eval {

namespace {

struct builtin_dataset {
    const char * name;
    const char * file;
};

const builtin_dataset k_builtin[] = {
    { "gsm8k", "gsm8k_test.jsonl" },
    { "math500", "math500_test.jsonl" },
    { "mawps-singleop", "mawps_singleop.jsonl" },
    { "mawps-addsub", "mawps_addsub.jsonl" },
    { "mawps-singleeq", "mawps_singleeq.jsonl" },
    { "mawps-multiarith", "mawps_multiarith.jsonl" },
    { "svamp", "svamp_test.jsonl" },
    { "humaneval", "HumanEval.jsonl.gz" },
};

using scan::trim;

// Thrown while converting one row; caught per line and turned into a warning.
struct row_error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

const nlohmann::json & require_field(const nlohmann::json & row, const std::string & field) {
    if (!row.is_object()) {
        throw row_error("row is not a JSON object");
    }
    const auto it = row.find(field);
    if (it == row.end()) {
        throw row_error("missing field '" + field + "'");
    }
    if (it->is_null()) {
        throw row_error("field '" + field + "' is null");
    }
    return *it;
}

std::string require_string(const nlohmann::json & row, const std::string & field) {
    const auto & v = require_field(row, field);
    if (!v.is_string()) {
        throw row_error("field '" + field + "' is not a string (got " + std::string(v.type_name()) + ")");
    }
    return v.get<std::string>();
}

double require_number(const nlohmann::json & row, const std::string & field) {
    const auto & v = require_field(row, field);
    if (!v.is_number()) {
        throw row_error("field '" + field + "' is not a number (got " + std::string(v.type_name()) + ")");
    }
    const double d = v.get<double>();
    if (!std::isfinite(d)) {
        throw row_error("field '" + field + "' is not finite");
    }
    return d;
}

// Strings are taken verbatim and numbers formatted, so user files may store either.
std::string require_text(const nlohmann::json & row, const std::string & field) {
    const auto & v = require_field(row, field);
    if (v.is_string()) {
        return v.get<std::string>();
    }
    if (v.is_number()) {
        return format_number(v.get<double>());
    }
    throw row_error("field '" + field + "' is neither a string nor a number (got " + std::string(v.type_name()) + ")");
}

using row_converter = std::function<problem(const nlohmann::json & row, std::size_t index)>;

load_result load_with(const std::filesystem::path & file, const row_converter & convert, const load_options & options) {
    const std::string text = read_possibly_gzipped_file(file);
    load_result       result;
    const std::string file_name = file.string();

    auto warn = [&](std::size_t line, std::string reason) {
        load_warning w{ file_name, line, std::move(reason) };
        if (options.on_warning) {
            options.on_warning(w);
        }
        result.warnings.push_back(std::move(w));
    };

    std::size_t line_no = 0;
    std::size_t index   = 0;  // counts non-blank lines so ids stay stable when a row is bad
    std::size_t pos     = 0;
    while (pos < text.size()) {
        auto nl = text.find('\n', pos);
        if (nl == std::string::npos) {
            nl = text.size();
        }
        const std::string_view line = trim(std::string_view(text).substr(pos, nl - pos));
        pos                         = nl + 1;
        ++line_no;
        if (line.empty()) {
            continue;
        }
        const std::size_t this_index = index++;
        nlohmann::json    row;
        try {
            row = nlohmann::json::parse(line);
        } catch (const nlohmann::json::parse_error & e) {
            warn(line_no, std::string("invalid JSON: ") + e.what());
            continue;
        }
        try {
            problem p = convert(row, this_index);
            p.raw     = std::move(row);
            result.problems.push_back(std::move(p));
        } catch (const row_error & e) {
            warn(line_no, e.what());
        } catch (const nlohmann::json::exception & e) {
            warn(line_no, e.what());
        }
    }

    auto & ps = result.problems;
    if (options.shuffle) {
        const auto           order = shuffled_indices(ps.size(), options.seed);
        std::vector<problem> shuffled;
        shuffled.reserve(ps.size());
        for (auto i : order) {
            shuffled.push_back(std::move(ps[i]));
        }
        ps = std::move(shuffled);
    }
    const std::size_t begin = std::min(options.offset, ps.size());
    std::size_t       end   = ps.size();
    if (options.limit) {
        end = std::min(end, begin + std::min(*options.limit, ps.size() - begin));
    }
    ps.erase(ps.begin() + static_cast<std::ptrdiff_t>(end), ps.end());
    ps.erase(ps.begin(), ps.begin() + static_cast<std::ptrdiff_t>(begin));
    return result;
}

std::string indexed_id(std::string_view prefix, std::size_t index) {
    return std::string(prefix) + "/" + std::to_string(index);
}

row_converter converter_for(std::string_view name) {
    const std::string prefix(name);
    if (name == "gsm8k") {
        return [prefix](const nlohmann::json & row, std::size_t index) {
            problem p;
            p.id              = indexed_id(prefix, index);
            p.question        = require_string(row, "question");
            const auto answer = require_string(row, "answer");
            auto       ref    = gsm8k_reference(answer);
            if (!ref) {
                throw row_error("field 'answer' has no number after '####'");
            }
            p.reference = *ref;
            p.task      = "numeric";
            return p;
        };
    }
    if (name == "math500") {
        return [prefix](const nlohmann::json & row, std::size_t index) {
            problem p;
            p.id       = indexed_id(prefix, index);
            p.question = require_string(row, "question");
            auto ref   = math_reference(require_string(row, "answer"));
            if (!ref) {
                throw row_error("field 'answer' has neither \\boxed{...} nor 'The answer is:'");
            }
            p.reference = *ref;
            p.task      = "math";
            return p;
        };
    }
    if (name.substr(0, 6) == "mawps-") {
        return [prefix](const nlohmann::json & row, std::size_t index) {
            problem p;
            p.id        = indexed_id(prefix, index);
            p.question  = require_string(row, "input");
            p.reference = format_number(require_number(row, "target"));
            p.task      = "numeric";
            return p;
        };
    }
    if (name == "svamp") {
        return [prefix](const nlohmann::json & row, std::size_t index) {
            problem    p;
            const auto it = row.is_object() ? row.find("ID") : row.end();
            p.id          = (it != row.end() && it->is_string()) ? it->get<std::string>() : indexed_id(prefix, index);
            const std::string body(trim(require_string(row, "Body")));
            const std::string question(trim(require_string(row, "Question")));
            p.question  = body + " " + question;
            p.reference = format_number(require_number(row, "Answer"));
            p.task      = "numeric";
            return p;
        };
    }
    if (name == "humaneval") {
        return [](const nlohmann::json & row, std::size_t) {
            problem p;
            p.id        = require_string(row, "task_id");
            p.question  = require_string(row, "prompt");
            p.reference = require_string(row, "canonical_solution");
            // Checked here so a row that could never be executed is reported at load time.
            require_string(row, "test");
            require_string(row, "entry_point");
            p.task = "humaneval";
            return p;
        };
    }
    throw std::logic_error("no converter for built-in dataset '" + prefix + "'");
}

}  // namespace

const std::vector<std::string> & valid_tasks() {
    static const std::vector<std::string> tasks{ "numeric", "math", "humaneval" };
    return tasks;
}

const std::vector<std::string> & builtin_dataset_names() {
    static const std::vector<std::string> names = [] {
        std::vector<std::string> v;
        for (const auto & d : k_builtin) {
            v.emplace_back(d.name);
        }
        return v;
    }();
    return names;
}

bool is_builtin_dataset(std::string_view name) {
    return std::any_of(std::begin(k_builtin), std::end(k_builtin), [&](const auto & d) { return name == d.name; });
}

std::string builtin_dataset_file(std::string_view name) {
    for (const auto & d : k_builtin) {
        if (name == d.name) {
            return d.file;
        }
    }
    throw std::invalid_argument("unknown dataset '" + std::string(name) +
                                "'; valid names: " + fmt::format("{}", fmt::join(builtin_dataset_names(), ", ")));
}

std::filesystem::path default_data_dir() {
    if (const char * env = std::getenv("POWERSAMPLE_DATA_DIR"); env && *env) {
        return env;
    }
    // ../shared/datasets from where it runs (the repository root), else beside the source tree it
    // was built from, so that the eval finds its data from any directory on the machine that built it.
    const auto      relative = std::filesystem::path("..") / "shared" / "datasets";
    std::error_code ec;
    if (std::filesystem::is_directory(relative, ec)) return relative;
#ifdef POWERSAMPLE_SOURCE_DIR
    const auto beside_source = std::filesystem::path(POWERSAMPLE_SOURCE_DIR) / ".." / "shared" / "datasets";
    if (std::filesystem::is_directory(beside_source, ec)) return beside_source.lexically_normal();
#endif
    return relative;
}

load_result load_builtin_dataset(std::string_view name, const std::filesystem::path & data_dir,
                                 const load_options & options) {
    const auto file = data_dir / builtin_dataset_file(name);
    return load_with(file, converter_for(name), options);
}

load_result load_builtin_dataset(std::string_view name, const load_options & options) {
    return load_builtin_dataset(name, default_data_dir(), options);
}

load_result load_jsonl_dataset(const std::filesystem::path & file, const field_mapping & mapping,
                               const load_options & options) {
    const auto & tasks = valid_tasks();
    if (std::find(tasks.begin(), tasks.end(), mapping.task) == tasks.end()) {
        throw std::invalid_argument("unknown task '" + mapping.task +
                                    "'; valid tasks: " + fmt::format("{}", fmt::join(tasks, ", ")));
    }
    if (mapping.question_field.empty()) {
        throw std::invalid_argument("field mapping: question_field is empty");
    }
    if (mapping.answer_field.empty()) {
        throw std::invalid_argument("field mapping: answer_field is empty");
    }
    const std::string prefix  = file.stem().string();
    auto              convert = [mapping, prefix](const nlohmann::json & row, std::size_t index) {
        problem p;
        p.id = indexed_id(prefix, index);
        if (!mapping.id_field.empty() && row.is_object()) {
            const auto it = row.find(mapping.id_field);
            if (it != row.end() && (it->is_string() || it->is_number())) {
                p.id = it->is_string() ? it->get<std::string>() : it->dump();
            }
        }
        p.question  = require_string(row, mapping.question_field);
        p.reference = require_text(row, mapping.answer_field);
        p.task      = mapping.task;
        return p;
    };
    return load_with(file, convert, options);
}

std::string read_possibly_gzipped_file(const std::filesystem::path & file) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(file, ec)) {
        throw std::runtime_error("dataset file not found: " + file.string());
    }
    // gzread passes plain files through unchanged, so one code path serves both.
    gzFile gz = gzopen(file.c_str(), "rb");
    if (!gz) {
        throw std::runtime_error("cannot open dataset file: " + file.string());
    }
    std::string out;
    char        buf[1 << 16];
    for (;;) {
        const int n = gzread(gz, buf, sizeof buf);
        if (n < 0) {
            int               errnum = 0;
            const std::string msg    = gzerror(gz, &errnum);
            gzclose(gz);
            throw std::runtime_error("cannot read dataset file " + file.string() + ": " + msg);
        }
        if (n == 0) {
            break;
        }
        out.append(buf, static_cast<std::size_t>(n));
    }
    int               errnum = 0;
    const std::string msg    = gzerror(gz, &errnum);
    gzclose(gz);
    // A truncated gzip stream ends with Z_BUF_ERROR rather than a failing gzread.
    if (errnum != Z_OK && errnum != Z_STREAM_END) {
        throw std::runtime_error("cannot read dataset file " + file.string() + ": " + msg);
    }
    return out;
}

std::optional<std::string> gsm8k_reference(std::string_view answer) {
    const auto pos = answer.rfind("####");
    if (pos == std::string_view::npos) {
        return std::nullopt;
    }
    std::string num;
    for (char c : trim(answer.substr(pos + 4))) {
        if (c != ',' && c != '$' && c != ' ') {
            num += c;
        }
    }
    while (!num.empty() && num.back() == '.') {
        num.pop_back();
    }
    double value          = 0;
    const auto [ptr, err] = std::from_chars(num.data(), num.data() + num.size(), value);
    if (num.empty() || err != std::errc() || ptr != num.data() + num.size()) {
        return std::nullopt;
    }
    return num;
}

std::optional<std::string> math_reference(std::string_view answer) {
    // Scan backwards so the last \boxed wins; a brace counter handles nested groups.
    for (auto pos = answer.rfind("\\boxed"); pos != std::string_view::npos;
         pos      = pos == 0 ? std::string_view::npos : answer.rfind("\\boxed", pos - 1)) {
        auto open = pos + 6;
        while (open < answer.size() && answer[open] == ' ') {
            ++open;
        }
        if (open >= answer.size() || answer[open] != '{') {
            continue;
        }
        int depth = 0;
        for (auto i = open; i < answer.size(); ++i) {
            if (answer[i] == '\\' && i + 1 < answer.size()) {
                ++i;  // escaped braces such as \{ do not nest
                continue;
            }
            if (answer[i] == '{') {
                ++depth;
            } else if (answer[i] == '}' && --depth == 0) {
                return std::string(trim(answer.substr(open + 1, i - open - 1)));
            }
        }
    }
    const std::string_view marker = "The answer is:";
    const auto             pos    = answer.rfind(marker);
    if (pos != std::string_view::npos) {
        const auto rest = trim(answer.substr(pos + marker.size()));
        if (!rest.empty()) {
            return std::string(rest);
        }
    }
    return std::nullopt;
}

std::string format_number(double value) {
    if (value == 0) {
        return "0";  // also folds -0
    }
    if (std::nearbyint(value) == value && std::fabs(value) < 1e15) {
        return std::to_string(static_cast<long long>(value));
    }
    char buf[64];
    const auto [ptr, err] = std::to_chars(buf, buf + sizeof buf, value);
    if (err != std::errc()) {
        throw std::runtime_error("cannot format number");
    }
    return std::string(buf, ptr);
}

std::uint64_t uniform_below(std::mt19937_64 & rng, std::uint64_t bound) {
    if (bound == 0) {
        throw std::invalid_argument("uniform_below: bound must be positive");
    }
    // Values below `threshold` would make some residues more likely (2^64 mod bound of them).
    const std::uint64_t threshold = (0 - bound) % bound;
    for (;;) {
        const std::uint64_t r = rng();
        if (r >= threshold) {
            return r % bound;
        }
    }
}

std::vector<std::size_t> shuffled_indices(std::size_t n, std::uint64_t seed) {
    std::vector<std::size_t> order(n);
    for (std::size_t i = 0; i < n; ++i) {
        order[i] = i;
    }
    std::mt19937_64 rng(seed);
    for (std::size_t i = n; i > 1; --i) {
        const auto j = static_cast<std::size_t>(uniform_below(rng, i));
        std::swap(order[i - 1], order[j]);
    }
    return order;
}

}  // namespace powersample::eval
