// HumanEval: building the program from a response, and running it against the tests in a
// sandbox (the one grader that is not a pure function).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

namespace powersample::eval {

// Builds a complete program from a model response: the code of a ```python fence when
// present, else the raw text; the prompt is prepended (it carries imports and helper
// functions); trailing non-function text (a second fence, `if __name__`, `print(`, prose
// at column 0) is cut.
std::string extract_python_function(std::string_view response, std::string_view prompt, std::string_view entry_point);

struct sandbox_limits {
    std::chrono::milliseconds wall_time{ 10000 };
    std::uint64_t             address_space_bytes = std::uint64_t{ 1 } << 30;
    std::uint64_t             file_size_bytes     = std::uint64_t{ 16 } << 20;
    // Only enforced for unprivileged users, i.e. after dropping to the sandbox's own uid; containment
    // as root relies on the PID namespace or the process group kill instead.
    std::uint64_t max_processes = 64;
    // RLIMIT_CPU in seconds; 0 derives it from wall_time.
    std::uint64_t cpu_seconds = 0;
    // Interpreter, looked up in the minimal PATH when it has no slash.
    std::string python = "python3";
    // Run under bubblewrap (`bwrap`, found in the minimal PATH) when it is installed and works
    // here: the code then sees its own filesystem (the scratch directory is the only writable
    // place; /usr and /etc read-only; empty read-only /tmp and /dev/shm; a /proc of its own PID
    // namespace) and has no network. Checked once per process with a trivial program.
    bool use_bwrap = true;
    // Otherwise (or with use_bwrap off) run in fresh network and PID namespaces when the kernel
    // permits it, else plain fork.
    bool isolate_namespaces = true;
    // When running as root, run the child as an unprivileged uid of its own, group nogroup.
    bool drop_privileges = true;
};

struct test_outcome {
    bool passed    = false;
    bool timed_out = false;
    // Diagnostics: the reason for failure and the tail of the program's output.
    std::string error_text;
    // What the sandbox actually achieved, so reports can state it honestly.
    bool network_isolated   = false;
    bool privileges_dropped = false;
    // The isolation that ran: "bwrap", "namespaces" (PID + network) or "fork" (neither);
    // empty when nothing ran (a set-up error before the child started).
    std::string sandbox;
};

// Runs `program + "\n\n" + test_code + "\n\ncheck(" + entry_point + ")\n"` with
// `python3 -I` in a child process inside a fresh scratch directory (removed afterwards),
// under the given limits. Exit status 0 means passed. Sandbox set-up failures are reported
// in error_text with passed == false rather than thrown.
test_outcome run_humaneval_test(std::string_view program, std::string_view test_code, std::string_view entry_point,
                                const sandbox_limits & limits = {});

}  // namespace powersample::eval
