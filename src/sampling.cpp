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
    throw invalid_argument_error(field, field + " = " + value + ": " + why);
}

}  // namespace

const char * method_name(method m) {
    switch (m) {
        case method::power:    return "power";
        case method::sample:   return "sample";
        case method::greedy:   return "greedy";
        case method::low_temp: return "low-temp";
        case method::power_entropy: return "power-entropy";
        case method::smc:      return "smc";
        case method::sps:      return "sps";
        case method::best_of_n: return "best-of-n";
    }
    return "?";
}

namespace {
const method all_methods[] = {method::power, method::sample,        method::greedy, method::low_temp,
                              method::power_entropy, method::smc, method::sps, method::best_of_n};
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
    throw invalid_argument_error("method", "method = '" + name + "': unknown (valid: " + valid + ")");
}

const char * sps_proposal_name(sps_proposal v) {
    switch (v) {
        case sps_proposal::base:     return "base";
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
    for (sps_proposal v : {sps_proposal::base, sps_proposal::low_temp}) {
        if (name == sps_proposal_name(v)) return v;
    }
    throw invalid_argument_error("sps_proposal", "sps_proposal = '" + name + "': unknown (valid: base, low-temp)");
}

sps_level sps_level_from_name(const std::string & name) {
    for (sps_level v : {sps_level::block, sps_level::token}) {
        if (name == sps_level_name(v)) return v;
    }
    throw invalid_argument_error("sps_level", "sps_level = '" + name + "': unknown (valid: block, token)");
}

int32_t effective_sps_last_candidates(const sampling_params & p) {
    return p.sps_last_candidates > 0 ? p.sps_last_candidates : p.sps_candidates;
}

int32_t effective_sps_last_top_k(const sampling_params & p) {
    return p.sps_last_top_k > 0 ? p.sps_last_top_k : p.sps_top_k;
}

const char * finish_reason_name(finish_reason r) {
    switch (r) {
        case finish_reason::eog:       return "eog";
        case finish_reason::length:    return "length";
        case finish_reason::stop:      return "stop";
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
    if (p.max_tokens_decoded < 0) {
        reject("max_tokens_decoded", std::to_string(p.max_tokens_decoded), "must be >= 0 (0 = no limit)");
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
    if (!std::isfinite(p.entropy_beta) || p.entropy_beta < 0.0) {
        reject("entropy_beta", format_number(p.entropy_beta), "must be a finite number >= 0");
    }
    if (!std::isfinite(p.entropy_floor) || p.entropy_floor <= 0.0 || p.entropy_floor > 1.0) {
        reject("entropy_floor", format_number(p.entropy_floor), "must be in (0, 1] (every cut must stay reachable)");
    }
    if (p.n_particles < 1) {
        reject("particles", std::to_string(p.n_particles), "must be >= 1");
    }
    if (!std::isfinite(p.ess_threshold) || p.ess_threshold <= 0.0 || p.ess_threshold > 1.0) {
        reject("ess_threshold", format_number(p.ess_threshold), "must be in (0, 1]");
    }
    if (p.resample_interval < 1) {
        reject("resample_interval", std::to_string(p.resample_interval), "must be >= 1");
    }
    if (p.alpha_ramp_tokens < 0) {
        reject("alpha_ramp_tokens", std::to_string(p.alpha_ramp_tokens), "must be >= 0 (0 = no ramp)");
    }
    if (p.sps_candidates < 1) {
        reject("sps_candidates", std::to_string(p.sps_candidates), "must be >= 1");
    }
    if (p.sps_top_k < 1 || p.sps_top_k > p.sps_candidates) {
        reject("sps_top_k", std::to_string(p.sps_top_k),
               "must be in [1, sps_candidates = " + std::to_string(p.sps_candidates) + "]");
    }
    if (p.sps_rollouts < 2) {
        reject("sps_rollouts", std::to_string(p.sps_rollouts), "must be >= 2 (the jackknife leaves one out)");
    }
    if (p.sps_lookahead < 0) {
        reject("sps_lookahead", std::to_string(p.sps_lookahead), "must be >= 0 (0 = to the cap)");
    }
    if (p.sps_last_candidates < 0) {
        reject("sps_last_candidates", std::to_string(p.sps_last_candidates), "must be >= 0 (0 = sps_candidates)");
    }
    if (p.sps_last_top_k < 0) {
        reject("sps_last_top_k", std::to_string(p.sps_last_top_k), "must be >= 0 (0 = sps_top_k)");
    }
    if (effective_sps_last_top_k(p) > effective_sps_last_candidates(p)) {
        // Blame the knob that was set: K_w when given, else L_w (K_w then is sps_top_k).
        if (p.sps_last_top_k > 0) {
            reject("sps_last_top_k", std::to_string(p.sps_last_top_k),
                   "must be in [1, sps_last_candidates = " + std::to_string(effective_sps_last_candidates(p)) + "]");
        }
        reject("sps_last_candidates", std::to_string(p.sps_last_candidates),
               "must be >= K_w = " + std::to_string(effective_sps_last_top_k(p)) +
                   " (sps_last_top_k, 0 = sps_top_k)");
    }
    if (p.method == method::sps && p.sps_level == sps_level::block && p.max_new_tokens < p.block_size) {
        reject("max_new_tokens", std::to_string(p.max_new_tokens),
               "must be >= block_size = " + std::to_string(p.block_size) + " for method sps (one block)");
    }
    if (p.best_of < 1) {
        reject("best_of", std::to_string(p.best_of), "must be >= 1");
    }
    if (p.stop.size() > max_stop_strings) {
        reject("stop", std::to_string(p.stop.size()) + " strings", "at most " + std::to_string(max_stop_strings));
    }
    for (size_t i = 0; i < p.stop.size(); ++i) {
        if (p.stop[i].empty()) {
            reject("stop", "[" + std::to_string(i) + "] \"\"", "a stop string must not be empty");
        }
        if (p.stop[i].size() > max_stop_bytes) {
            reject("stop", "[" + std::to_string(i) + "] of " + std::to_string(p.stop[i].size()) + " bytes",
                   "at most " + std::to_string(max_stop_bytes) + " bytes");
        }
    }
    if (p.method == method::smc || p.method == method::sps) {
        // Their weights assume the untruncated proposal at temperature 1/alpha(_t).
        if (p.temperature != 0.0) {
            reject("temperature", format_number(p.temperature), std::string("must be 0 for method ") + method_name(p.method));
        }
        if (p.top_k != 0 || p.top_p != 1.0 || p.min_p != 0.0) {
            reject(p.top_k != 0 ? "top_k" : p.top_p != 1.0 ? "top_p" : "min_p",
                   p.top_k != 0 ? std::to_string(p.top_k) : format_number(p.top_p != 1.0 ? p.top_p : p.min_p),
                   std::string("truncation is not supported by method ") + method_name(p.method) +
                       " (it would change the target)");
        }
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
        case method::sample:   return 1.0;
        case method::greedy:   return 0.0;
    }
    return 1.0;
}

sampling_params preset(const std::string & name) {
    sampling_params p;
    p.alpha = 4.0;
    if (name == "speed") {
        p.alpha = 2.0; p.block_size = 32; p.n_steps_per_block = 2; p.max_new_tokens = 128;
    } else if (name == "quality") {
        p.block_size = 64; p.n_steps_per_block = 5; p.max_new_tokens = 256;
    } else if (name == "max-quality") {
        p.alpha = 5.0; p.block_size = 96; p.n_steps_per_block = 8; p.max_new_tokens = 512;
    } else if (name == "paper") {
        p.block_size = 192; p.n_steps_per_block = 10; p.max_new_tokens = 3072;
    } else if (name == "smc") {
        p.method = method::smc; p.n_particles = 32; p.ess_threshold = 0.5; p.alpha_ramp_tokens = 8;
        p.max_new_tokens = 256;
    } else if (name == "sps-paper") {
        // L 16 and H 192 (one block) are our choice: the paper's text does not give them.
        p.method = method::sps; p.block_size = 192; p.sps_candidates = 16; p.sps_top_k = 8; p.sps_rollouts = 8;
        p.sps_lookahead = 192; p.max_new_tokens = 3072;
    } else if (name == "sps-small") {
        p.method = method::sps; p.block_size = 16; p.sps_candidates = 8; p.sps_top_k = 4; p.sps_rollouts = 4;
        p.sps_lookahead = 32; p.max_new_tokens = 256;
    } else {
        throw invalid_argument_error("preset", "preset = '" + name +
                                     "': unknown (valid: speed, quality, max-quality, paper, smc, sps-paper, sps-small)");
    }
    return p;
}

std::vector<std::string> preset_names() {
    return {"speed", "quality", "max-quality", "paper", "smc", "sps-paper", "sps-small"};
}

}  // namespace powersample
