// The sampling knobs as JSON, in the one vocabulary of the knob table (powersample/knobs.h):
// common knobs at the top ("alpha", "max_tokens", "chains"), a method's own nested under its
// group ("smc": {"particles": 32}). Written by the CLI's and the eval's --json, the eval's result
// records and the server's statistics; read by the server's request parser.
#pragma once

#include "powersample/knobs.h"
#include "powersample/sampling.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

namespace powersample_tools {

// The parameters as they ran (powersample::resolved): every common knob, and the knobs of
// p.method's group only, nested under it.
inline nlohmann::json knobs_to_json(const powersample::sampling_params & params) {
    const powersample::sampling_params p   = powersample::resolved(params);
    const std::string                  own = powersample::knob_group(p.method);
    nlohmann::json                     out = nlohmann::json::object();
    powersample::for_each_knob([&](const powersample::knob_info & k, auto member) {
        if (*k.group && own != k.group) return;
        nlohmann::json & slot = *k.group ? out[k.group][k.key] : out[k.key];
        using T               = std::remove_reference_t<decltype(p.*member)>;
        if constexpr (std::is_enum_v<T>) {
            slot = powersample::choice_name(p.*member);
        } else {
            slot = p.*member;
        }
    });
    return out;
}

// Why a JSON value cannot be a knob's (a one-line reason), or "" when it can; `value` is the
// parsed result. Integers must be integral and fit the member's type; choices must name a value.
template <class T> std::string knob_from_json(const nlohmann::json & j, T & value) {
    if constexpr (std::is_same_v<T, bool>) {
        if (!j.is_boolean()) return std::string("must be a boolean, got ") + j.type_name();
        value = j.get<bool>();
    } else if constexpr (std::is_enum_v<T>) {
        if (!j.is_string()) return std::string("must be a string, got ") + j.type_name();
        try {
            powersample::parse_choice(j.get<std::string>(), value);
        } catch (const powersample::invalid_argument_error & e) {
            const std::string what = e.what();
            const size_t      at   = what.find(": ");
            return at == std::string::npos ? what : what.substr(at + 2);  // "unknown (valid: ...)"
        }
    } else if constexpr (std::is_floating_point_v<T>) {
        if (!j.is_number()) return std::string("must be a number, got ") + j.type_name();
        if (!std::isfinite(j.get<double>())) return "must be finite";
        value = j.get<double>();
    } else if constexpr (std::is_integral_v<T>) {
        if (!j.is_number_integer()) return std::string("must be an integer, got ") + j.type_name();
        constexpr auto lo = std::numeric_limits<T>::min();
        constexpr auto hi = std::numeric_limits<T>::max();
        if (j.is_number_unsigned()) {
            if (j.get<uint64_t>() > uint64_t(hi)) return "beyond " + std::to_string(hi);
            value = T(j.get<uint64_t>());
        } else {
            const int64_t v = j.get<int64_t>();
            if (v < 0 && !std::is_signed_v<T>) return "must be >= 0";
            if (std::is_signed_v<T> && (v < int64_t(lo) || v > int64_t(hi))) {
                return "beyond the range " + std::to_string(lo) + " .. " + std::to_string(hi);
            }
            value = T(v);
        }
    } else {
        static_assert(std::is_same_v<T, std::vector<std::string>>);
        if (!j.is_array()) return "must be an array of strings";
        std::vector<std::string> v;
        for (const auto & e : j) {
            if (!e.is_string()) return "must be an array of strings";
            v.push_back(e.get<std::string>());
        }
        value = v;
    }
    return "";
}

// Where the object holds the knob's value (its group's object for a method's knob), or nullptr.
inline const nlohmann::json * knob_value_in(const nlohmann::json & doc, const powersample::knob_info & k) {
    if (!*k.group) return doc.contains(k.key) ? &doc[k.key] : nullptr;
    if (!doc.contains(k.group) || !doc[k.group].is_object() || !doc[k.group].contains(k.key)) return nullptr;
    return &doc[k.group][k.key];
}

// The top-level keys a JSON object of knobs may hold: the common knobs `takes` accepts, then the
// method groups. For a caller's unknown-field check (it adds its own fields).
template <class Takes> std::vector<std::string> knob_keys(const Takes & takes) {
    std::vector<std::string> keys;
    powersample::for_each_knob([&](const powersample::knob_info & k, auto) {
        if (!*k.group && takes(k)) keys.push_back(k.key);
    });
    for (const char * g : powersample::knob_groups) keys.push_back(g);
    return keys;
}

// Sets every knob the object gives (and `takes` accepts) by the knob table's names: a common
// knob at the top, a method's own in its group's object ("smc": {"particles": 8}), which must
// belong to the method (the object's "method", else p's). Unknown keys inside a group are
// errors; unknown top-level keys are the caller's to judge. Throws invalid_argument_error
// naming the knob ("sps.top_k: must be an integer, got string"); ranges are validate()'s.
template <class Takes>
void read_knobs(const nlohmann::json & doc, powersample::sampling_params & p, const Takes & takes) {
    namespace ps    = powersample;
    const auto fail = [](const std::string & field, const std::string & why) {
        throw ps::invalid_argument_error(field, field + ": " + why);
    };
    // The method first: it decides which group may appear.
    ps::for_each_knob([&](const ps::knob_info & k, auto member) {
        if constexpr (std::is_same_v<decltype(member), ps::method ps::sampling_params::*>) {
            if (takes(k) && doc.contains(k.key) && !doc[k.key].is_null()) {
                const std::string why = knob_from_json(doc[k.key], p.*member);
                if (!why.empty()) fail(k.name(), why);
            }
        }
    });
    for (const char * g : ps::knob_groups) {
        if (!doc.contains(g) || doc[g].is_null()) continue;
        const nlohmann::json & group = doc[g];
        if (!group.is_object()) fail(g, std::string("must be an object, got ") + group.type_name());
        if (ps::knob_group(p.method) != std::string(g)) {
            fail(g, std::string("holds another method's knobs than ") + ps::method_name(p.method) +
                        "'s (set method to the one they belong to)");
        }
        for (auto it = group.begin(); it != group.end(); ++it) {
            bool        known = false;
            std::string valid;
            ps::for_each_knob([&](const ps::knob_info & k, auto) {
                if (std::string(k.group) != g || !takes(k)) return;
                known |= it.key() == k.key;
                valid += (valid.empty() ? "" : ", ") + std::string(k.key);
            });
            if (!known) fail(std::string(g) + "." + it.key(), "unknown field (supported: " + valid + ")");
        }
    }
    ps::for_each_knob([&](const ps::knob_info & k, auto member) {
        if (!takes(k) || std::is_same_v<decltype(member), ps::method ps::sampling_params::*>) return;
        const nlohmann::json * at = knob_value_in(doc, k);
        if (!at || at->is_null()) return;
        const std::string why = knob_from_json(*at, p.*member);
        if (!why.empty()) fail(k.name(), why);
    });
}

}  // namespace powersample_tools
