// The sampling knobs as command-line flags, for power-sampling and power-sampling-eval: every
// flag, its help and its default come from the knob table (powersample/knobs.h), so the two tools
// cannot drift from the library or from each other.
//
//   knob_flags flags;
//   flags.add_to(app, shown_defaults, "Sampling", "Other methods", include);  // before parsing
//   ...app.parse...
//   flags.apply(params);  // the flags given override params; throws naming the knob
//
// And errors: the library names its field ("block_size = 0: must be >= 1"); the user typed a
// flag, so name_the_flag() makes it "--block-size = 0: must be >= 1".
#pragma once

#include "powersample/knobs.h"
#include "powersample/sampling.h"

#include <CLI/CLI.hpp>

#include <functional>
#include <map>
#include <sstream>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace powersample_tools {

class knob_flags {
public:
    using include_fn = std::function<bool(const powersample::knob_info &)>;

    // Registers the flag of every knob that has one and that `include` accepts. Common knobs go
    // to group `common`, a method's own to group `methods`. The help shows the range, what
    // special values mean, and the value in `shown` (the tool's default). With short_names off,
    // one-letter names ("-n") are left to the tool.
    void add_to(CLI::App & app, const powersample::sampling_params & shown, const std::string & common,
                const std::string & methods, const include_fn & include, bool short_names = true) {
        values_ = shown;
        powersample::for_each_knob([&](const powersample::knob_info & k, auto member) {
            if (!*k.flags || !include(k)) return;
            using T                 = std::remove_reference_t<decltype(values_.*member)>;
            const std::string names = short_names ? std::string(k.flags) : long_names(k);
            std::string       help  = k.help;
            const std::string range = k.range_text();
            if (!range.empty()) help += "; " + range;
            if (*k.note) help += " (" + std::string(k.note) + ")";
            if constexpr (std::is_enum_v<T>) {
                std::string names_list;
                for (const auto & n : powersample::choice_names(T{}))
                    names_list += (names_list.empty() ? "" : " | ") + n;
                help += ": " + names_list;
            }
            if constexpr (std::is_same_v<T, bool>) {
                help += shown.*member ? " [on; this flag turns it off]" : " [off; this flag turns it on]";
            }
            CLI::Option * opt = nullptr;
            if constexpr (std::is_same_v<T, bool>) {
                // The flag turns the default around ("--no-early-rejection").
                opt = app.add_flag_callback(
                    names, [this, member, v = !(shown.*member)] { values_.*member = v; }, help);
            } else if constexpr (std::is_enum_v<T>) {
                std::string & text = choices_[k.name()];
                text               = powersample::choice_name(shown.*member);
                opt                = app.add_option(names, text, help)->capture_default_str();
            } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
                opt = app.add_option(names, values_.*member, help + " (repeat for more)")
                          ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
            } else {
                opt = app.add_option(names, values_.*member, help)->default_str(number_text(shown.*member));
            }
            opt->group(*k.group ? methods : common);
            given_[k.name()] = opt;
        });
    }

    // Whether the knob's flag was given on the command line.
    bool given(const powersample::knob_info & k) const {
        auto it = given_.find(k.name());
        return it != given_.end() && it->second->count() > 0;
    }

    // Copies every knob whose flag was given into p (a flag given is applied whatever its value,
    // so that validate() names a bad one). A bad choice name throws naming the knob. With `only`,
    // just that group's knobs ("" = the common ones).
    void apply(powersample::sampling_params & p, const char * only = nullptr) const {
        powersample::for_each_knob([&](const powersample::knob_info & k, auto member) {
            if (!given(k) || (only && std::string(only) != k.group)) return;
            using T = std::remove_reference_t<decltype(p.*member)>;
            if constexpr (std::is_enum_v<T>) {
                powersample::parse_choice(choices_.at(k.name()), p.*member);
            } else {
                p.*member = values_.*member;
            }
        });
    }

private:
    static std::string long_names(const powersample::knob_info & k) {
        std::string out;
        for (const std::string & one : k.flag_names()) {
            if (one.rfind("--", 0) == 0) out += (out.empty() ? "" : ",") + one;
        }
        return out;
    }
    template <class T> static std::string number_text(const T & v) {
        if constexpr (std::is_arithmetic_v<T>) {
            std::ostringstream os;
            os << v;
            return os.str();
        } else {
            return "";
        }
    }

    powersample::sampling_params         values_;
    std::map<std::string, std::string>   choices_;
    std::map<std::string, CLI::Option *> given_;
};

// The command-line flag for a field a library error names (invalid_argument_error::field()):
// a knob's own flag from the table, else the flags of the tools' other inputs.
inline std::string flag_for_field(const std::string & field) {
    std::string flag;
    powersample::for_each_knob([&](const powersample::knob_info & k, auto) {
        if (field == k.name()) flag = k.long_flag();
    });
    if (!flag.empty()) return flag;
    static const std::pair<const char *, const char *> others[] = { { "preset", "--preset" },
                                                                    { "n_threads", "--threads" },
                                                                    { "n_ctx", "--ctx-size" },
                                                                    { "model", "-m/--model" },
                                                                    { "url", "--remote" },
                                                                    { "top_logprobs", "--remote-top-logprobs" },
                                                                    { "max_retries", "--remote-retries" },
                                                                    { "timeout_seconds", "--remote-timeout" } };
    for (const auto & [name, f] : others) {
        if (field == name) return f;
    }
    return "";
}

// The same error, its message naming the flag instead of the field (unchanged when the field has
// no flag, or the message names the flag already).
inline powersample::invalid_argument_error name_the_flag(const powersample::invalid_argument_error & e) {
    const std::string & field = e.field();
    const std::string   flag  = flag_for_field(field);
    const std::string   what  = e.what();
    if (flag.empty() || what.rfind(flag, 0) == 0) return e;
    if (what.rfind(field, 0) == 0) return powersample::invalid_argument_error(field, flag + what.substr(field.size()));
    return powersample::invalid_argument_error(field, flag + ": " + what);
}

}  // namespace powersample_tools
