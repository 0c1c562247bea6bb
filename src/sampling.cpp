#include "powersample/sampling.h"

#include <cmath>
#include <sstream>

namespace powersample {

namespace {

std::string format_number(double v) {
    std::ostringstream os;
    os << v;
    return os.str();
}

[[noreturn]] void reject(const std::string & field, const std::string & value, const std::string & why) {
    throw invalid_argument_error(field + " = " + value + ": " + why);
}

}  // namespace

const char * method_name(method m) {
    switch (m) {
        case method::power:    return "power";
        case method::sample:   return "sample";
        case method::greedy:   return "greedy";
        case method::low_temp: return "low-temp";
    }
    return "?";
}

method method_from_name(const std::string & name) {
    for (method m : {method::power, method::sample, method::greedy, method::low_temp}) {
        if (name == method_name(m)) {
            return m;
        }
    }
    throw invalid_argument_error("method = '" + name + "': unknown (valid: power, sample, greedy, low-temp)");
}

const char * finish_reason_name(finish_reason r) {
    switch (r) {
        case finish_reason::eog:       return "eog";
        case finish_reason::length:    return "length";
        case finish_reason::cancelled: return "cancelled";
    }
    return "?";
}

void validate(const sampling_params & p) {
    if (!std::isfinite(p.alpha) || p.alpha <= 0.0) {
        reject("alpha", format_number(p.alpha), "must be a finite number > 0");
    }
    if (p.block_size < 1) {
        reject("block_size", std::to_string(p.block_size), "must be >= 1");
    }
    if (p.n_steps_per_block < 0) {
        reject("steps", std::to_string(p.n_steps_per_block), "must be >= 0");
    }
    if (p.max_new_tokens < 1) {
        reject("max_new_tokens", std::to_string(p.max_new_tokens), "must be >= 1");
    }
    if (!std::isfinite(p.temperature) || p.temperature < 0.0) {
        reject("temperature", format_number(p.temperature), "must be >= 0 (0 = the method's default)");
    }
    if (p.top_k < 0) {
        reject("top_k", std::to_string(p.top_k), "must be >= 0 (0 = off)");
    }
    if (!std::isfinite(p.top_p) || p.top_p <= 0.0 || p.top_p > 1.0) {
        reject("top_p", format_number(p.top_p), "must be in (0, 1] (1 = off)");
    }
    if (!std::isfinite(p.min_p) || p.min_p < 0.0 || p.min_p >= 1.0) {
        reject("min_p", format_number(p.min_p), "must be in [0, 1) (0 = off)");
    }
    if (p.n_chains < 1) {
        reject("chains", std::to_string(p.n_chains), "must be >= 1");
    }
}

double effective_temperature(const sampling_params & p) {
    if (p.temperature > 0.0) {
        return p.temperature;
    }
    switch (p.method) {
        case method::power:
        case method::low_temp: return 1.0 / p.alpha;
        case method::sample:   return 1.0;
        case method::greedy:   return 0.0;
    }
    return 1.0;
}

sampling_params preset(const std::string & name) {
    sampling_params p;
    p.alpha = 4.0;
    if (name == "speed") {
        p.block_size = 32; p.n_steps_per_block = 2; p.max_new_tokens = 128;
    } else if (name == "quality") {
        p.block_size = 64; p.n_steps_per_block = 5; p.max_new_tokens = 256;
    } else if (name == "max-quality") {
        p.block_size = 64; p.n_steps_per_block = 10; p.max_new_tokens = 512;
    } else if (name == "paper") {
        p.block_size = 192; p.n_steps_per_block = 10; p.max_new_tokens = 3072;
    } else {
        throw invalid_argument_error("preset = '" + name + "': unknown (valid: speed, quality, max-quality, paper)");
    }
    return p;
}

std::vector<std::string> preset_names() {
    return {"speed", "quality", "max-quality", "paper"};
}

}  // namespace powersample
