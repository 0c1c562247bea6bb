#include "powersample/sampling.h"

#include "powersample/knobs.h"

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
    throw invalid_argument_error(field, field + " = " + value + ": " + why);
}

// The knob's name as errors spell it ("sps.top_k").
template <class T> std::string name_of(T sampling_params::*member) { return knob_for(member).name(); }

}  // namespace

const char * method_name(method m) {
    switch (m) {
        case method::power: return "power";
        case method::sample: return "sample";
        case method::greedy: return "greedy";
        case method::low_temp: return "low-temp";
        case method::power_entropy: return "power-entropy";
        case method::smc: return "smc";
        case method::sps: return "sps";
        case method::best_of_n: return "best-of-n";
    }
    return "?";
}

namespace {
const method all_methods[] = { method::power,         method::sample, method::greedy, method::low_temp,
                               method::power_entropy, method::smc,    method::sps,    method::best_of_n };
}

std::vector<std::string> method_names() {
    std::vector<std::string> names;
    for (method m : all_methods) names.push_back(method_name(m));
    return names;
}

method method_from_name(const std::string & name) {
    std::string valid;
    for (method m : all_methods) {
        if (name == method_name(m)) {
            return m;
        }
        valid += (valid.empty() ? "" : ", ") + std::string(method_name(m));
    }
    const std::string field = name_of(&sampling_params::method);
    throw invalid_argument_error(field, field + " = '" + name + "': unknown (valid: " + valid + ")");
}

const char * sps_proposal_name(sps_proposal v) {
    switch (v) {
        case sps_proposal::base: return "base";
        case sps_proposal::low_temp: return "low-temp";
    }
    return "?";
}

const char * sps_level_name(sps_level v) {
    switch (v) {
        case sps_level::block: return "block";
        case sps_level::token: return "token";
    }
    return "?";
}

sps_proposal sps_proposal_from_name(const std::string & name) {
    for (sps_proposal v : { sps_proposal::base, sps_proposal::low_temp }) {
        if (name == sps_proposal_name(v)) return v;
    }
    const std::string field = name_of(&sampling_params::sps_proposal);
    throw invalid_argument_error(field, field + " = '" + name + "': unknown (valid: base, low-temp)");
}

sps_level sps_level_from_name(const std::string & name) {
    for (sps_level v : { sps_level::block, sps_level::token }) {
        if (name == sps_level_name(v)) return v;
    }
    const std::string field = name_of(&sampling_params::sps_level);
    throw invalid_argument_error(field, field + " = '" + name + "': unknown (valid: block, token)");
}

std::string knob_info::range_text() const {
    const bool has_min = std::isfinite(min), has_max = std::isfinite(max);
    if (has_min && has_max) {
        return std::string("in ") + (min_open ? "(" : "[") + format_number(min) + ", " + format_number(max) +
               (max_open ? ")" : "]");
    }
    if (has_min) return std::string(min_open ? "> " : ">= ") + format_number(min);
    if (has_max) return std::string(max_open ? "< " : "<= ") + format_number(max);
    return "";
}

const char * knob_group(method m) {
    switch (m) {
        case method::power_entropy: return "power_entropy";
        case method::smc: return "smc";
        case method::sps: return "sps";
        case method::best_of_n: return "best_of_n";
        default: return "";
    }
}

int32_t effective_sps_last_candidates(const sampling_params & p) {
    return p.sps_last_candidates > 0 ? p.sps_last_candidates : p.sps_candidates;
}

int32_t effective_sps_last_top_k(const sampling_params & p) {
    return p.sps_last_top_k > 0 ? p.sps_last_top_k : p.sps_top_k;
}

sampling_params resolved(const sampling_params & p) {
    sampling_params r     = p;
    r.temperature         = effective_temperature(p);
    r.sps_last_candidates = effective_sps_last_candidates(p);
    r.sps_last_top_k      = effective_sps_last_top_k(p);
    r.early_rejection     = early_rejection_applies(p);
    return r;
}

const char * finish_reason_name(finish_reason r) {
    switch (r) {
        case finish_reason::eog: return "eog";
        case finish_reason::length: return "length";
        case finish_reason::stop: return "stop";
        case finish_reason::cancelled: return "cancelled";
    }
    return "?";
}

void validate(const sampling_params & p) {
    // Each number against its range in the knob table.
    for_each_knob([&](const knob_info & k, auto member) {
        using T = std::remove_reference_t<decltype(p.*member)>;
        if constexpr (std::is_arithmetic_v<T> && !std::is_same_v<T, bool>) {
            const T    value  = p.*member;
            const auto v      = double(value);
            const bool finite = !std::is_floating_point_v<T> || std::isfinite(v);
            if (!finite || v < k.min || (k.min_open && v == k.min) || v > k.max || (k.max_open && v == k.max)) {
                std::string why =
                    std::string("must be ") + (std::is_floating_point_v<T> ? "a finite number " : "") + k.range_text();
                if (*k.note) why += std::string(" (") + k.note + ")";
                if constexpr (std::is_floating_point_v<T>) {
                    reject(k.name(), format_number(value), why);
                } else {
                    reject(k.name(), std::to_string(value), why);
                }
            }
        }
    });
    // The rules between knobs.
    if (p.sps_top_k > p.sps_candidates) {
        reject(name_of(&sampling_params::sps_top_k), std::to_string(p.sps_top_k),
               "must be in [1, " + name_of(&sampling_params::sps_candidates) + " = " +
                   std::to_string(p.sps_candidates) + "]");
    }
    const std::string last_candidates = name_of(&sampling_params::sps_last_candidates);
    const std::string last_top_k      = name_of(&sampling_params::sps_last_top_k);
    if (effective_sps_last_top_k(p) > effective_sps_last_candidates(p)) {
        // Blame the knob that was set: K_w when given, else L_w (K_w then is sps.top_k).
        if (p.sps_last_top_k > 0) {
            reject(
                last_top_k, std::to_string(p.sps_last_top_k),
                "must be in [1, " + last_candidates + " = " + std::to_string(effective_sps_last_candidates(p)) + "]");
        }
        reject(last_candidates, std::to_string(p.sps_last_candidates),
               "must be >= K_w = " + std::to_string(effective_sps_last_top_k(p)) + " (" + last_top_k +
                   ", 0 = " + name_of(&sampling_params::sps_top_k) + ")");
    }
    if (p.method == method::sps && p.sps_level == sps_level::block && p.max_new_tokens < p.block_size) {
        reject(name_of(&sampling_params::max_new_tokens), std::to_string(p.max_new_tokens),
               "must be >= " + name_of(&sampling_params::block_size) + " = " + std::to_string(p.block_size) +
                   " for method sps (one block)");
    }
    const std::string stop = name_of(&sampling_params::stop);
    if (p.stop.size() > max_stop_strings) {
        reject(stop, std::to_string(p.stop.size()) + " strings", "at most " + std::to_string(max_stop_strings));
    }
    for (size_t i = 0; i < p.stop.size(); ++i) {
        if (p.stop[i].empty()) {
            reject(stop, "[" + std::to_string(i) + "] \"\"", "a stop string must not be empty");
        }
        if (p.stop[i].size() > max_stop_bytes) {
            reject(stop, "[" + std::to_string(i) + "] of " + std::to_string(p.stop[i].size()) + " bytes",
                   "at most " + std::to_string(max_stop_bytes) + " bytes");
        }
    }
    if (p.method == method::smc || p.method == method::sps) {
        // Their weights assume the untruncated proposal at temperature 1/alpha(_t).
        if (p.temperature != 0.0) {
            reject(name_of(&sampling_params::temperature), format_number(p.temperature),
                   std::string("must be 0 for method ") + method_name(p.method));
        }
        const std::string why = std::string("truncation is not supported by method ") + method_name(p.method) +
                                " (it would change the target)";
        if (p.top_k != 0) reject(name_of(&sampling_params::top_k), std::to_string(p.top_k), why);
        if (p.top_p != 1.0) reject(name_of(&sampling_params::top_p), format_number(p.top_p), why);
        if (p.min_p != 0.0) reject(name_of(&sampling_params::min_p), format_number(p.min_p), why);
    }
}

bool early_rejection_applies(const sampling_params & p) {
    // w_i = alpha log p - log q <= 0 needs q = p^alpha / Z exactly: temperature 1/alpha, no
    // truncation, and alpha >= 1 (Z = sum p^alpha <= 1).
    return p.early_rejection && (p.method == method::power || p.method == method::power_entropy) && p.alpha >= 1.0 &&
           effective_temperature(p) == 1.0 / p.alpha && p.top_k == 0 && p.top_p == 1.0 && p.min_p == 0.0;
}

double effective_temperature(const sampling_params & p) {
    if (p.temperature > 0.0) {
        return p.temperature;
    }
    switch (p.method) {
        case method::power:
        case method::power_entropy:
        case method::smc:
        case method::sps:
        case method::best_of_n:
        case method::low_temp: return 1.0 / p.alpha;
        case method::sample: return 1.0;
        case method::greedy: return 0.0;
    }
    return 1.0;
}

sampling_params preset(const std::string & name) {
    sampling_params p;
    p.alpha = 4.0;
    if (name == "speed") {
        p.alpha             = 2.0;
        p.block_size        = 32;
        p.n_steps_per_block = 2;
        p.max_new_tokens    = 128;
    } else if (name == "quality") {
        p.block_size        = 64;
        p.n_steps_per_block = 5;
        p.max_new_tokens    = 256;
    } else if (name == "max-quality") {
        p.alpha             = 5.0;
        p.block_size        = 96;
        p.n_steps_per_block = 8;
        p.max_new_tokens    = 512;
    } else if (name == "paper") {
        p.block_size        = 192;
        p.n_steps_per_block = 10;
        p.max_new_tokens    = 3072;
    } else if (name == "smc") {
        p.method            = method::smc;
        p.n_particles       = 32;
        p.ess_threshold     = 0.5;
        p.alpha_ramp_tokens = 8;
        p.max_new_tokens    = 256;
    } else if (name == "sps-paper") {
        // L 16 and H 192 (one block) are our choice: the paper's text does not give them.
        p.method         = method::sps;
        p.block_size     = 192;
        p.sps_candidates = 16;
        p.sps_top_k      = 8;
        p.sps_rollouts   = 8;
        p.sps_lookahead  = 192;
        p.max_new_tokens = 3072;
    } else if (name == "sps-small") {
        p.method         = method::sps;
        p.block_size     = 16;
        p.sps_candidates = 8;
        p.sps_top_k      = 4;
        p.sps_rollouts   = 4;
        p.sps_lookahead  = 32;
        p.max_new_tokens = 256;
    } else {
        throw invalid_argument_error(
            "preset",
            "preset = '" + name + "': unknown (valid: speed, quality, max-quality, paper, smc, sps-paper, sps-small)");
    }
    return p;
}

std::vector<std::string> preset_names() {
    return { "speed", "quality", "max-quality", "paper", "smc", "sps-paper", "sps-small" };
}

}  // namespace powersample
