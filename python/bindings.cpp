// _powersample: the nanobind extension behind the `powersample` Python package.
//
// A thin, literal mirror of include/powersample/*.h; the Pythonic API (keyword arguments, random
// seeds, progress bars, result objects) lives in powersample/__init__.py.
//
// Threads: every call that runs the model releases the GIL. A Sampler is guarded by a mutex, so
// two Python threads sharing one queue up instead of corrupting its llama.cpp context (the C++
// power_sampler is single-threaded by contract). Progress and result callbacks re-acquire the GIL.
// Ctrl-C: a hook checks for pending Python signals after every decode round and, when one is
// pending, cancels the run and re-raises (KeyboardInterrupt) once sampling stopped.
// Errors: invalid_argument_error -> ValueError (with .field), other powersample::error -> RuntimeError.
#include "powersample/powersample.h"

#include <nanobind/nanobind.h>
#include <nanobind/stl/function.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/shared_ptr.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <type_traits>

namespace nb = nanobind;
namespace ps = powersample;
using namespace nb::literals;

namespace {

struct sampler {
    sampler(std::shared_ptr<ps::model> m, ps::context_params params) : impl(std::move(m), params) {}
    ps::power_sampler impl;
    std::mutex        mutex;
};

// One sampling call's link back to Python: the cancel flag the engine polls and the Python
// exception (signal or callback error) that caused a cancel, re-raised after the run.
struct python_hooks {
    std::atomic<bool>               cancel{ false };
    std::optional<nb::python_error> pending;
    std::optional<nb::callable>     on_progress;

    // Called with the GIL held.
    void fail() {
        pending.emplace();  // takes the current Python error
        cancel = true;
    }

    ps::run_options options() {
        ps::run_options o;
        o.cancel   = &cancel;
        o.on_round = [this]() {
            if (cancel) return;
            nb::gil_scoped_acquire gil;
            if (PyErr_CheckSignals() != 0) fail();
        };
        o.on_progress = [this](const ps::progress & p) {
            if (cancel || !on_progress) return;
            nb::gil_scoped_acquire gil;
            try {
                (*on_progress)(p);
            } catch (nb::python_error & e) {
                e.restore();
                fail();
            }
        };
        return o;
    }

    // After the run, with the GIL held again.
    void rethrow() {
        if (pending) {
            nb::python_error e = std::move(*pending);
            pending.reset();
            throw e;
        }
    }
};

// prompt: a string (tokenized with BOS) or token ids (used as they are).
template <typename Prompt> ps::generation_result generate(sampler & s, const Prompt & prompt,
                                                          const ps::sampling_params & params,
                                                          std::optional<nb::callable> on_progress) {
    python_hooks hooks;
    hooks.on_progress = std::move(on_progress);
    ps::generation_result out;
    {
        nb::gil_scoped_release      release;
        std::lock_guard<std::mutex> lock(s.mutex);
        if constexpr (std::is_same_v<Prompt, std::string>) {
            out = s.impl.generate(prompt, params, hooks.options());
        } else {
            out = s.impl.generate_tokens(prompt, params, hooks.options());
        }
    }
    hooks.rethrow();
    return out;
}

// requests' prompts: strings (tokenized with BOS) or token ids (used as they are).
template <typename Prompt>
std::vector<ps::generation_result> generate_batch(sampler &                                                   s,
                                                  const std::vector<std::pair<Prompt, ps::sampling_params>> & requests,
                                                  std::optional<nb::callable> on_progress,
                                                  std::optional<nb::callable> on_result) {
    python_hooks hooks;
    hooks.on_progress = std::move(on_progress);
    std::function<void(size_t, const ps::generation_result &)> result_hook;
    if (on_result) {
        result_hook = [&hooks, &on_result](size_t index, const ps::generation_result & r) {
            if (hooks.cancel) return;
            nb::gil_scoped_acquire gil;
            try {
                (*on_result)(index, r);
            } catch (nb::python_error & e) {
                e.restore();
                hooks.fail();
            }
        };
    }
    std::vector<ps::generation_result> out;
    {
        nb::gil_scoped_release      release;
        std::lock_guard<std::mutex> lock(s.mutex);
        if constexpr (std::is_same_v<Prompt, std::string>) {
            out = s.impl.generate_batch(requests, hooks.options(), result_hook);
        } else {
            out = s.impl.generate_batch_tokens(requests, hooks.options(), result_hook);
        }
    }
    hooks.rethrow();
    return out;
}

}  // namespace

NB_MODULE(_powersample, m) {
    m.doc() = "Power sampling for language models on llama.cpp (low-level bindings; use `powersample`).";

    nb::register_exception_translator([](const std::exception_ptr & p, void *) {
        try {
            std::rethrow_exception(p);
        } catch (const ps::invalid_argument_error & e) {
            // A ValueError with the library's field at fault as `.field` (invalid_argument_error::field()).
            PyObject * exc = PyObject_CallFunction(PyExc_ValueError, "s", e.what());
            if (!exc) return;  // the call set its own error
            PyObject * field = PyUnicode_FromString(e.field().c_str());
            if (field) {
                PyObject_SetAttrString(exc, "field", field);
                Py_DECREF(field);
            }
            PyErr_SetObject(PyExc_ValueError, exc);
            Py_DECREF(exc);
        } catch (const ps::error & e) {
            PyErr_SetString(PyExc_RuntimeError, e.what());
        }
    });

    nb::enum_<ps::log_level>(m, "LogLevel")
        .value("debug", ps::log_level::debug)
        .value("info", ps::log_level::info)
        .value("warn", ps::log_level::warn)
        .value("error", ps::log_level::error);
    m.def("set_log_level", &ps::set_log_level, "min_level"_a,
          "Threshold of the default log output (stderr); default: warn.");

    nb::class_<ps::catalog_entry>(m, "CatalogEntry")
        .def_ro("name", &ps::catalog_entry::name)
        .def_ro("file", &ps::catalog_entry::file)
        .def_ro("description", &ps::catalog_entry::description)
        .def_ro("source", &ps::catalog_entry::source)
        .def_ro("chat", &ps::catalog_entry::chat);
    m.def("model_catalog", &ps::model_catalog, nb::rv_policy::copy);
    m.def("models_directory", &ps::models_directory);
    m.def("resolve_model_path", &ps::resolve_model_path, "name_or_path"_a);
    m.attr("default_model_name") = ps::default_model_name;

    nb::enum_<ps::method>(m, "Method")
        .value("power", ps::method::power)
        .value("sample", ps::method::sample)
        .value("greedy", ps::method::greedy)
        .value("low_temp", ps::method::low_temp)
        .value("power_entropy", ps::method::power_entropy)
        .value("smc", ps::method::smc)
        .value("sps", ps::method::sps)
        .value("best_of_n", ps::method::best_of_n);
    m.def("method_from_name", &ps::method_from_name, "name"_a);
    nb::enum_<ps::sps_proposal>(m, "SpsProposal")
        .value("base", ps::sps_proposal::base)
        .value("low_temp", ps::sps_proposal::low_temp);
    nb::enum_<ps::sps_level>(m, "SpsLevel").value("block", ps::sps_level::block).value("token", ps::sps_level::token);
    m.def("sps_proposal_from_name", &ps::sps_proposal_from_name, "name"_a);
    m.def("sps_level_from_name", &ps::sps_level_from_name, "name"_a);

    // SamplingParams: one attribute per knob of the knob table (powersample/knobs.h), by its
    // member's name, plus the two recording switches.
    auto params_class = nb::class_<ps::sampling_params>(m, "SamplingParams").def(nb::init<>());
    ps::for_each_knob([&](const ps::knob_info & k, auto member) {
        using T = std::remove_reference_t<decltype(std::declval<ps::sampling_params &>().*member)>;
        params_class.def_prop_rw(
            k.member, [member](const ps::sampling_params & p) -> T { return p.*member; },
            [member](ps::sampling_params & p, T v) { p.*member = v; });
    });
    params_class.def_rw("record_trace", &ps::sampling_params::record_trace)
        .def_rw("record_suffixes", &ps::sampling_params::record_suffixes);
    // The table itself: (group, key, member, flags, help) per knob, in order.
    m.def("knobs", [] {
        std::vector<std::tuple<std::string, std::string, std::string, std::string, std::string>> rows;
        ps::for_each_knob(
            [&](const ps::knob_info & k, auto) { rows.emplace_back(k.group, k.key, k.member, k.flags, k.help); });
        return rows;
    });
    m.def(
        "knob_group",
        [](const std::string & method) { return std::string(ps::knob_group(ps::method_from_name(method))); },
        "method"_a);
    // Sets the knob named `name` ("smc.particles", "alpha") from a Python value; a value of the
    // wrong type is a ValueError naming the knob (ranges are validate()'s).
    m.def(
        "set_knob",
        [](ps::sampling_params & p, const std::string & name, nb::handle value) {
            bool found = false;
            ps::for_each_knob([&](const ps::knob_info & k, auto member) {
                if (found || k.name() != name) return;
                found                   = true;
                using T                 = std::remove_reference_t<decltype(p.*member)>;
                const std::string shown = nb::repr(value).c_str();
                const auto        fail  = [&](const std::string & why) {
                    throw ps::invalid_argument_error(name, name + " = " + shown + ": " + why);
                };
                const bool is_bool = PyBool_Check(value.ptr());
                if constexpr (std::is_same_v<T, bool>) {
                    if (!is_bool) fail("must be True or False");
                    p.*member = value.ptr() == Py_True;
                } else if constexpr (std::is_enum_v<T>) {
                    if (!nb::isinstance<nb::str>(value)) fail("must be a string");
                    ps::parse_choice(nb::cast<std::string>(value), p.*member);
                } else if constexpr (std::is_floating_point_v<T>) {
                    if (is_bool || !(nb::isinstance<nb::int_>(value) || nb::isinstance<nb::float_>(value))) {
                        fail("must be a number");
                    }
                    p.*member = nb::cast<double>(value);
                } else if constexpr (std::is_integral_v<T>) {
                    if (is_bool || !nb::isinstance<nb::int_>(value)) fail("must be an integer");
                    T v{};
                    if (!nb::try_cast<T>(value, v)) fail("out of range");
                    p.*member = v;
                } else {
                    if (!nb::isinstance<nb::list>(value) && !nb::isinstance<nb::tuple>(value))
                        fail("must be a list of strings");
                    std::vector<std::string> v;
                    for (nb::handle e : value) {
                        if (!nb::isinstance<nb::str>(e)) fail("must be a list of strings");
                        v.push_back(nb::cast<std::string>(e));
                    }
                    p.*member = v;
                }
            });
            if (!found) throw ps::invalid_argument_error(name, name + ": no such knob");
        },
        "params"_a, "name"_a, "value"_a);
    m.def("validate", &ps::validate, "params"_a);
    m.def("effective_temperature", &ps::effective_temperature, "params"_a);
    m.def("preset", &ps::preset, "name"_a);
    m.def("preset_names", &ps::preset_names);

    nb::class_<ps::step_record>(m, "StepRecord")
        .def_ro("block", &ps::step_record::block)
        .def_ro("position", &ps::step_record::position)
        .def_ro("len_current", &ps::step_record::len_current)
        .def_ro("len_proposal", &ps::step_record::len_proposal)
        .def_ro("log_accept_ratio", &ps::step_record::log_accept_ratio)
        .def_ro("accepted", &ps::step_record::accepted)
        .def_ro("log_p_after", &ps::step_record::log_p_after)
        .def_ro("log_p_suffix_current", &ps::step_record::log_p_suffix_current)
        .def_ro("log_p_suffix_proposal", &ps::step_record::log_p_suffix_proposal)
        .def_ro("suffix_current", &ps::step_record::suffix_current)
        .def_ro("suffix_proposal", &ps::step_record::suffix_proposal);

    nb::class_<ps::sample_result>(m, "SampleResult")
        .def_ro("text", &ps::sample_result::text)
        .def_ro("tokens", &ps::sample_result::tokens)
        .def_ro("token_log_p", &ps::sample_result::token_log_p)
        .def_ro("log_p", &ps::sample_result::log_p)
        .def_ro("n_proposals", &ps::sample_result::n_proposals)
        .def_ro("n_accepted", &ps::sample_result::n_accepted)
        .def_ro("n_tokens_generated", &ps::sample_result::n_tokens_generated)
        .def_ro("n_tokens_decoded", &ps::sample_result::n_tokens_decoded)
        .def_ro("n_early_rejections", &ps::sample_result::n_early_rejections)
        .def_ro("n_tokens_saved", &ps::sample_result::n_tokens_saved)
        .def_prop_ro("finish", [](const ps::sample_result & r) { return ps::finish_reason_name(r.finish); })
        .def_ro("stop", &ps::sample_result::stop)
        .def_ro("trace", &ps::sample_result::trace)
        .def("acceptance_rate", &ps::sample_result::acceptance_rate);

    nb::class_<ps::generation_result>(m, "GenerationResult")
        .def_ro("chains", &ps::generation_result::chains)
        .def_ro("n_prompt_tokens", &ps::generation_result::n_prompt_tokens)
        .def_ro("n_tokens_decoded", &ps::generation_result::n_tokens_decoded)
        .def_ro("wall_seconds", &ps::generation_result::wall_seconds);

    nb::class_<ps::progress>(m, "Progress")
        .def_ro("request_id", &ps::progress::request_id)
        .def_ro("chain", &ps::progress::chain)
        .def_ro("block", &ps::progress::block)
        .def_ro("n_blocks", &ps::progress::n_blocks)
        .def_ro("step", &ps::progress::step)
        .def_ro("n_steps", &ps::progress::n_steps)
        .def_ro("length", &ps::progress::length)
        .def_ro("n_proposals", &ps::progress::n_proposals)
        .def_ro("n_accepted", &ps::progress::n_accepted)
        .def_ro("n_tokens_generated", &ps::progress::n_tokens_generated)
        .def_ro("done", &ps::progress::done);

    nb::class_<ps::model>(m, "Model")
        .def_static(
            "load",
            [](const std::string & path, int32_t n_gpu_layers) {
                nb::gil_scoped_release release;
                return ps::model::load({ path, n_gpu_layers });
            },
            "path"_a, "n_gpu_layers"_a = 0, "Loads a .gguf file or a catalogue model by name.")
        .def("tokenize", &ps::model::tokenize, "text"_a, "add_special"_a = true, "parse_special"_a = true)
        .def("detokenize", &ps::model::detokenize, "tokens"_a)
        .def("token_to_piece", &ps::model::token_to_piece, "token"_a)
        .def("has_chat_template", &ps::model::has_chat_template)
        .def("format_chat",
             nb::overload_cast<const std::string &, const std::string &>(&ps::model::format_chat, nb::const_),
             "user_message"_a, "system_message"_a = "")
        .def(
            "tokenize_chat",
            [](const ps::model & m, const std::string & user, const std::string & system) {
                std::vector<ps::chat_message> messages;
                if (!system.empty()) messages.push_back({ "system", system });
                messages.push_back({ "user", user });
                return m.tokenize_chat(messages);
            },
            "user_message"_a, "system_message"_a = "")
        .def("is_eog", &ps::model::is_eog, "token"_a)
        .def_prop_ro("n_vocab", &ps::model::n_vocab)
        .def_prop_ro("n_ctx_train", &ps::model::n_ctx_train)
        .def_prop_ro("path", &ps::model::path)
        .def_prop_ro("description", &ps::model::description)
        .def_prop_ro("n_params", &ps::model::n_params)
        .def_prop_ro("size_bytes", &ps::model::size_bytes);

    nb::class_<sampler>(m, "Sampler")
        .def(
            "__init__",
            [](sampler * self, std::shared_ptr<ps::model> model, int32_t n_threads, int32_t n_ctx, int32_t n_batch,
               bool recompute_prefix) {
                ps::context_params cp;
                cp.n_threads        = n_threads;
                cp.n_ctx            = n_ctx;
                cp.n_batch          = n_batch;
                cp.recompute_prefix = recompute_prefix;
                new (self) sampler(std::move(model), cp);
            },
            "model"_a, "n_threads"_a = 0, "n_ctx"_a = 0, "n_batch"_a = 512, "recompute_prefix"_a = false)
        .def("generate", &generate<std::string>, "prompt"_a, "params"_a, "on_progress"_a = nb::none())
        .def("generate_tokens", &generate<std::vector<ps::token_id>>, "prompt"_a, "params"_a,
             "on_progress"_a = nb::none())
        .def("generate_batch", &generate_batch<std::string>, "requests"_a, "on_progress"_a = nb::none(),
             "on_result"_a = nb::none())
        .def("generate_batch_tokens", &generate_batch<std::vector<ps::token_id>>, "requests"_a,
             "on_progress"_a = nb::none(), "on_result"_a = nb::none())
        .def(
            "score",
            [](sampler & s, const std::vector<ps::token_id> & prompt, const std::vector<ps::token_id> & completion) {
                nb::gil_scoped_release      release;
                std::lock_guard<std::mutex> lock(s.mutex);
                return s.impl.score(prompt, completion);
            },
            "prompt"_a, "completion"_a);
}
