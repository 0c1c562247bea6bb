// HumanEval: the program a response holds, and running it against the task's tests in a sandbox.
#include "graders/humaneval.h"
#include "graders/scan.h"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <stdexcept>
#include <system_error>
#include <vector>

namespace powersample::eval {

using namespace scan;

namespace {

std::vector<std::string_view> split_lines(std::string_view s) {
    std::vector<std::string_view> lines;
    std::size_t                   start = 0;
    while (start <= s.size()) {
        const auto nl = s.find('\n', start);
        if (nl == std::string_view::npos) {
            lines.push_back(s.substr(start));
            break;
        }
        lines.push_back(s.substr(start, nl - start));
        start = nl + 1;
    }
    return lines;
}

bool defines_function(std::string_view line, std::string_view entry_point) {
    auto t = line;
    if (starts_with(t, "async ")) {
        t = trim(t.substr(6));
    }
    if (!starts_with(t, "def ")) {
        return false;
    }
    t = trim(t.substr(4));
    if (!starts_with(t, entry_point)) {
        return false;
    }
    t = trim(t.substr(entry_point.size()));
    return starts_with(t, "(");
}

// Column-0 lines that can legitimately follow or sit between function definitions.
bool continues_module(std::string_view line) {
    for (std::string_view p : { "def ", "async def ", "class ", "@", "import ", "from ", "#", ")", "]", "}" }) {
        if (starts_with(line, p)) {
            return true;
        }
    }
    return false;
}

bool is_indented(std::string_view line) { return !line.empty() && (line[0] == ' ' || line[0] == '\t'); }

// The code of the fenced block that defines entry_point, else of the first python (or
// untagged) block, else of the first block; the whole response when there is no fence.
std::string_view select_code(std::string_view response, std::string_view entry_point) {
    struct block {
        std::string_view lang;
        std::string_view code;
    };
    std::vector<block> blocks;
    std::size_t        pos = 0;
    while ((pos = response.find("```", pos)) != std::string_view::npos) {
        const auto lang_start = pos + 3;
        auto       nl         = response.find('\n', lang_start);
        if (nl == std::string_view::npos) {
            break;
        }
        const auto lang       = trim(response.substr(lang_start, nl - lang_start));
        const auto code_start = nl + 1;
        const auto close      = response.find("```", code_start);
        const auto code_end   = close == std::string_view::npos ? response.size() : close;
        blocks.push_back({ lang, response.substr(code_start, code_end - code_start) });
        if (close == std::string_view::npos) {
            break;  // an unterminated fence runs to the end of the response
        }
        pos = close + 3;
    }
    if (blocks.empty()) {
        return response;
    }
    for (const auto & b : blocks) {
        for (auto line : split_lines(b.code)) {
            if (defines_function(trim(line), entry_point)) {
                return b.code;
            }
        }
    }
    for (const auto & b : blocks) {
        const auto lang = to_lower(b.lang);
        if (lang.empty() || lang == "python" || lang == "py" || lang == "python3") {
            return b.code;
        }
    }
    return blocks.front().code;
}

}  // namespace

std::string extract_python_function(std::string_view response, std::string_view prompt, std::string_view entry_point) {
    const auto code  = select_code(response, entry_point);
    const auto lines = split_lines(code);

    std::size_t def_line = lines.size();
    for (std::size_t i = 0; i < lines.size(); ++i) {
        if (!is_indented(lines[i]) && defines_function(lines[i], entry_point)) {
            def_line = i;
            break;
        }
    }
    const bool full_function = def_line < lines.size();

    std::size_t first_code = 0;
    while (first_code < lines.size() && trim(lines[first_code]).empty()) {
        ++first_code;
    }
    // A body that the model wrote without indentation has no column-0 boundary to stop at,
    // so it is re-indented and cut only at explicit markers.
    const bool unindented_body = !full_function && first_code < lines.size() && !is_indented(lines[first_code]);

    std::string kept;
    for (std::size_t i = 0; i < lines.size(); ++i) {
        const auto        line      = lines[i];
        const bool        blank     = trim(line).empty();
        const std::size_t scan_from = full_function ? def_line + 1 : 0;
        if (i >= scan_from && !blank && !is_indented(line)) {
            if (unindented_body) {
                bool stop = false;
                for (std::string_view marker :
                     { "```", "if __name__", "print(", "assert ", "assert(", "check(", "def ", "class ", ">>>" }) {
                    stop = stop || starts_with(line, marker);
                }
                if (stop) {
                    break;
                }
            } else if (!continues_module(line)) {
                break;
            }
        }
        if (unindented_body && !blank) {
            kept += "    ";
        }
        kept.append(line);
        kept += '\n';
    }

    std::string program;
    const auto  trimmed_prompt = trim(prompt);
    if (full_function) {
        // The prompt carries imports and helpers the model may have omitted; redefining the
        // entry point afterwards is harmless, so it is prepended unless already echoed.
        if (trimmed_prompt.empty() || kept.find(std::string(trimmed_prompt)) == std::string::npos) {
            program.append(prompt);
            if (!program.empty() && program.back() != '\n') {
                program += '\n';
            }
            program += '\n';
        }
        program += kept;
    } else {
        program.append(prompt);
        if (!program.empty() && program.back() != '\n') {
            program += '\n';
        }
        program += kept;
    }
    return program;
}

namespace {

bool is_python_identifier(std::string_view s) {
    if (s.empty() || is_digit(s[0])) {
        return false;
    }
    return std::all_of(s.begin(), s.end(), [](char c) { return is_alnum(c) || c == '_'; });
}

// Minimal PATH for the child; also where a bare interpreter name is resolved, so the
// harness's own PATH (which may point into /root) does not leak into the sandbox.
constexpr const char * k_sandbox_path = "/usr/local/bin:/usr/bin:/bin";

std::string resolve_executable(const std::string & name) {
    if (name.find('/') != std::string::npos) {
        return name;
    }
    std::string_view dirs = k_sandbox_path;
    while (!dirs.empty()) {
        const auto        colon     = dirs.find(':');
        const auto        dir       = dirs.substr(0, colon);
        const std::string candidate = std::string(dir) + "/" + name;
        if (::access(candidate.c_str(), X_OK) == 0) {
            return candidate;
        }
        dirs = colon == std::string_view::npos ? std::string_view{} : dirs.substr(colon + 1);
    }
    return {};
}

struct scratch_dir {
    std::string path;
    ~scratch_dir() {
        if (!path.empty()) {
            std::error_code ec;
            std::filesystem::remove_all(path, ec);
        }
    }
};

struct fd_guard {
    int fd = -1;
    ~fd_guard() { reset(); }
    void reset() {
        if (fd >= 0) {
            ::close(fd);
            fd = -1;
        }
    }
};

// Stages reported by the child through the status pipe when set-up fails before exec.
enum child_stage : int {
    stage_stdio = 1,
    stage_chdir,
    stage_rlimit,
    stage_privileges,
    stage_prctl,
    stage_exec,
};

const char * stage_name(int stage) {
    switch (stage) {
        case stage_stdio: return "redirecting stdio";
        case stage_chdir: return "entering the scratch directory";
        case stage_rlimit: return "setting resource limits";
        case stage_privileges: return "dropping privileges";
        case stage_prctl: return "prctl";
        case stage_exec: return "executing the interpreter";
        default: return "unknown stage";
    }
}

[[noreturn]] void child_fail(int status_fd, int stage) {
    const int                   report[2] = { stage, errno };
    [[maybe_unused]] const auto n         = ::write(status_fd, report, sizeof report);
    ::_exit(127);
}

struct child_plan {
    const char *         scratch;
    const char * const * argv;
    const char * const * envp;
    int                  devnull;
    int                  out_write;
    int                  status_write;
    rlimit               as, fsize, cpu, nproc, core, nofile;
    bool                 drop;
    uid_t                uid;
    gid_t                gid;
};

// The uid a sandbox runs as after the privilege drop: one of its own, unused by any account, not
// nobody's. RLIMIT_NPROC counts every process of a user on the machine, so under one shared uid a
// fork bomb filling its 64 processes made every sandbox running beside it (the next problem,
// another eval, another test) fail to fork and its program count as wrong. The ids come from
// [2^30, 2^31): above login, system and subordinate (/etc/subuid) ranges, by pid and a
// per-process counter, so that concurrent sandboxes do not share one.
uid_t sandbox_uid() {
    static std::atomic<std::uint32_t> counter{ 0 };
    const std::uint32_t               pid = std::uint32_t(::getpid()) & 0x3fffffu;  // pid_max is at most 2^22
    return uid_t((1u << 30) | (pid << 8) | (counter.fetch_add(1) & 0xffu));
}

// Runs in the child between fork/clone and exec: only async-signal-safe calls.
[[noreturn]] void child_main(const child_plan & p) {
    ::setpgid(0, 0);
    if (::dup2(p.devnull, 0) < 0 || ::dup2(p.out_write, 1) < 0 || ::dup2(p.out_write, 2) < 0) {
        child_fail(p.status_write, stage_stdio);
    }
    if (::chdir(p.scratch) != 0) {
        child_fail(p.status_write, stage_chdir);
    }
    if (::setrlimit(RLIMIT_AS, &p.as) != 0 || ::setrlimit(RLIMIT_FSIZE, &p.fsize) != 0 ||
        ::setrlimit(RLIMIT_CPU, &p.cpu) != 0 || ::setrlimit(RLIMIT_NPROC, &p.nproc) != 0 ||
        ::setrlimit(RLIMIT_CORE, &p.core) != 0 || ::setrlimit(RLIMIT_NOFILE, &p.nofile) != 0) {
        child_fail(p.status_write, stage_rlimit);
    }
    if (p.drop) {
        if (::setgroups(0, nullptr) != 0 || ::setgid(p.gid) != 0 || ::setuid(p.uid) != 0) {
            child_fail(p.status_write, stage_privileges);
        }
        if (::setuid(0) == 0) {
            errno = EPERM;
            child_fail(p.status_write, stage_privileges);
        }
    }
    // After the credential change, because that clears the parent-death signal. no_new_privs
    // keeps set-uid binaries such as su from regaining root.
    if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
        child_fail(p.status_write, stage_prctl);
    }
    ::execve(p.argv[0], const_cast<char * const *>(p.argv), const_cast<char * const *>(p.envp));
    child_fail(p.status_write, stage_exec);
}

void append_capped(std::string & out, const char * data, std::size_t n) {
    constexpr std::size_t k_cap = 64 * 1024;
    out.append(data, n);
    if (out.size() > 2 * k_cap) {
        out.erase(0, out.size() - k_cap);
    }
}

void drain(int fd, std::string & out) {
    char buf[4096];
    for (;;) {
        const auto n = ::read(fd, buf, sizeof buf);
        if (n > 0) {
            append_capped(out, buf, static_cast<std::size_t>(n));
            continue;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        return;
    }
}

// bwrap reports a child killed by a signal as exit status 128 + signal; 0 when not that case.
int bwrap_signal(const std::string & bwrap, int status) {
    if (bwrap.empty() || !WIFEXITED(status)) {
        return 0;
    }
    const int code = WEXITSTATUS(status);
    return code > 128 && code < 128 + NSIG ? code - 128 : 0;
}

// Arguments that run `python_argv` under bubblewrap with a view of the system in which the
// scratch directory is the only writable place: /usr (and the merged-/usr links), /etc and the
// interpreter's prefix read-only, empty read-only / /tmp /dev/shm, a minimal /dev, the /proc of
// its own PID namespace, and new user, IPC, UTS, cgroup and network namespaces (only a
// loopback device of its own).
std::vector<std::string> bwrap_argv(const std::string & bwrap, const std::string & scratch,
                                    const std::vector<std::string> & python_argv) {
    namespace fs               = std::filesystem;
    std::vector<std::string> a = { bwrap,  "--unshare-all", "--die-with-parent", "--new-session", "--ro-bind",
                                   "/usr", "/usr" };
    for (const char * dir : { "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32" }) {
        std::error_code ec;
        const auto      st = fs::symlink_status(dir, ec);
        if (ec) {
            continue;
        }
        if (fs::is_symlink(st)) {
            const auto target = fs::read_symlink(dir, ec);
            if (!ec) {
                a.insert(a.end(), { "--symlink", target.string(), dir });
            }
        } else if (fs::is_directory(st)) {
            a.insert(a.end(), { "--ro-bind", dir, dir });
        }
    }
    // An interpreter outside /usr (a virtual environment, /opt/python) needs its prefix.
    std::error_code ec;
    const auto      real = fs::canonical(python_argv[0], ec);
    if (!ec && !starts_with(real.string(), "/usr/")) {
        const auto prefix = real.parent_path().parent_path().string();
        a.insert(a.end(), { "--ro-bind", prefix, prefix });
    }
    a.insert(a.end(), { "--ro-bind",    "/etc", "/etc",         "--dev", "/dev",    "--proc",       "/proc",
                        "--tmpfs",      "/tmp", "--bind",       scratch, scratch,   "--remount-ro", "/tmp",
                        "--remount-ro", "/dev", "--remount-ro", "/",     "--chdir", scratch });
    a.insert(a.end(), python_argv.begin(), python_argv.end());
    return a;
}

// Runs `source` as program.py in a fresh scratch directory, under bwrap when `bwrap` is not
// empty, else in PID + network namespaces when allowed, else after a plain fork.
test_outcome run_python_source(const std::string & source, const std::string & python, const std::string & bwrap,
                               const sandbox_limits & limits) {
    test_outcome out;
    scratch_dir  scratch;
    {
        std::error_code ec;
        auto            base = std::filesystem::temp_directory_path(ec);
        if (ec) {
            base = "/tmp";
        }
        std::string templ = (base / "powersample-humaneval-XXXXXX").string();
        if (!::mkdtemp(templ.data())) {
            out.error_text = std::string("mkdtemp failed: ") + std::strerror(errno);
            return out;
        }
        scratch.path = templ;
    }
    const std::string program_path = scratch.path + "/program.py";
    {
        std::FILE * f  = std::fopen(program_path.c_str(), "wb");
        const bool  ok = f && std::fwrite(source.data(), 1, source.size(), f) == source.size();
        if (f) {
            std::fclose(f);
        }
        if (!ok) {
            out.error_text = "cannot write " + program_path;
            return out;
        }
    }

    const bool drop = limits.drop_privileges && ::geteuid() == 0;
    uid_t      uid  = sandbox_uid();
    gid_t      gid  = 65534;
    if (drop) {
        // Looked up here because getpwnam is not safe to call after fork.
        if (const passwd * pw = ::getpwnam("nobody")) gid = pw->pw_gid;
        if (::chown(scratch.path.c_str(), uid, gid) != 0) {
            out.error_text = std::string("chown of scratch directory failed: ") + std::strerror(errno);
            return out;
        }
    }

    const std::string home     = "HOME=" + scratch.path;
    const std::string tmpdir   = "TMPDIR=" + scratch.path;
    const std::string path_env = std::string("PATH=") + k_sandbox_path;
    // Only matters when no network namespace could be created: proxy-aware clients are
    // pointed at a closed port. Direct sockets are not blocked in that case.
    const char * const             envp[]      = { path_env.c_str(),
                                                   home.c_str(),
                                                   tmpdir.c_str(),
                                                   "LANG=C.UTF-8",
                                                   "PYTHONDONTWRITEBYTECODE=1",
                                                   "PYTHONHASHSEED=0",
                                                   "http_proxy=http://127.0.0.1:9",
                                                   "https_proxy=http://127.0.0.1:9",
                                                   "HTTP_PROXY=http://127.0.0.1:9",
                                                   "HTTPS_PROXY=http://127.0.0.1:9",
                                                   "ALL_PROXY=http://127.0.0.1:9",
                                                   "no_proxy=",
                                                   nullptr };
    const std::vector<std::string> python_argv = { python, "-I", "-B", "program.py" };
    const std::vector<std::string> args = bwrap.empty() ? python_argv : bwrap_argv(bwrap, scratch.path, python_argv);
    std::vector<const char *>      argv;
    for (const auto & arg : args) {
        argv.push_back(arg.c_str());
    }
    argv.push_back(nullptr);

    const auto   wall_ms = std::max<std::int64_t>(1, limits.wall_time.count());
    const rlim_t cpu     = limits.cpu_seconds ? limits.cpu_seconds : static_cast<rlim_t>((wall_ms + 999) / 1000 + 1);

    fd_guard devnull{ ::open("/dev/null", O_RDONLY | O_CLOEXEC) };
    int      out_pipe[2];
    int      status_pipe[2];
    if (devnull.fd < 0 || ::pipe2(out_pipe, O_CLOEXEC) != 0) {
        out.error_text = std::string("cannot create pipes: ") + std::strerror(errno);
        return out;
    }
    fd_guard out_read{ out_pipe[0] };
    fd_guard out_write{ out_pipe[1] };
    if (::pipe2(status_pipe, O_CLOEXEC) != 0) {
        out.error_text = std::string("cannot create pipes: ") + std::strerror(errno);
        return out;
    }
    fd_guard status_read{ status_pipe[0] };
    fd_guard status_write{ status_pipe[1] };

    child_plan plan{};
    plan.scratch      = scratch.path.c_str();
    plan.argv         = argv.data();
    plan.envp         = envp;
    plan.devnull      = devnull.fd;
    plan.out_write    = out_write.fd;
    plan.status_write = status_write.fd;
    plan.as           = { limits.address_space_bytes, limits.address_space_bytes };
    plan.fsize        = { limits.file_size_bytes, limits.file_size_bytes };
    plan.cpu          = { cpu, cpu + 1 };
    plan.nproc        = { limits.max_processes, limits.max_processes };
    plan.core         = { 0, 0 };
    plan.nofile       = { 256, 256 };
    plan.drop         = drop;
    plan.uid          = uid;
    plan.gid          = gid;

    pid_t pid = -1;
    if (!bwrap.empty()) {
        // bwrap makes the namespaces itself, as whichever user runs it (the sandbox's uid after the drop).
        pid = ::fork();
        if (pid == 0) {
            child_main(plan);
        }
        out.network_isolated = pid > 0;
        out.sandbox          = "bwrap";
    } else {
        // A new PID namespace makes the child its init: when it exits or is killed, the kernel
        // kills every process it left behind, which a process-group kill cannot guarantee
        // (a child may setsid()). The new network namespace has only a down loopback device.
        if (limits.isolate_namespaces) {
            pid = static_cast<pid_t>(
                ::syscall(SYS_clone, CLONE_NEWPID | CLONE_NEWNET | SIGCHLD, nullptr, nullptr, nullptr, nullptr));
            if (pid == 0) {
                child_main(plan);
            }
            out.network_isolated = pid > 0;
            out.sandbox          = "namespaces";
        }
        if (pid < 0) {
            pid = ::fork();
            if (pid == 0) {
                child_main(plan);
            }
            out.sandbox = "fork";
        }
    }
    if (pid < 0) {
        out.error_text = std::string("fork failed: ") + std::strerror(errno);
        return out;
    }
    out.privileges_dropped = drop;
    ::setpgid(pid, pid);  // also done by the child; whichever runs first wins the race
    out_write.reset();
    status_write.reset();

    const auto  deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(wall_ms);
    std::string output;
    int         status = 0;

    int     report[2] = { 0, 0 };
    ssize_t got       = 0;
    do {
        got = ::read(status_read.fd, report, sizeof report);
    } while (got < 0 && errno == EINTR);
    if (got == static_cast<ssize_t>(sizeof report)) {
        ::kill(-pid, SIGKILL);
        ::waitpid(pid, &status, 0);
        out.error_text =
            std::string("sandbox set-up failed while ") + stage_name(report[0]) + ": " + std::strerror(report[1]);
        return out;
    }

    ::fcntl(out_read.fd, F_SETFL, ::fcntl(out_read.fd, F_GETFL) | O_NONBLOCK);
    bool output_open = true;
    for (;;) {
        siginfo_t info{};
        if (::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid == pid) {
            break;
        }
        const auto now = std::chrono::steady_clock::now();
        if (now >= deadline) {
            out.timed_out = true;
            break;
        }
        const auto remaining = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now).count();
        const int  wait_ms   = static_cast<int>(std::min<std::int64_t>(remaining + 1, 10));
        if (output_open) {
            pollfd pfd{ out_read.fd, POLLIN, 0 };
            if (::poll(&pfd, 1, wait_ms) > 0) {
                char       buf[4096];
                const auto n = ::read(out_read.fd, buf, sizeof buf);
                if (n > 0) {
                    append_capped(output, buf, static_cast<std::size_t>(n));
                } else if (n == 0) {
                    output_open = false;
                }
            }
        } else {
            ::poll(nullptr, 0, wait_ms);
        }
    }
    // Killing the group before reaping the leader keeps its id from being reused meanwhile.
    ::kill(-pid, SIGKILL);
    ::kill(pid, SIGKILL);
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    drain(out_read.fd, output);

    if (out.timed_out) {
        out.error_text = "timed out after " + std::to_string(wall_ms) + " ms";
    } else if (WIFEXITED(status) && bwrap_signal(bwrap, status) == 0) {
        const int code = WEXITSTATUS(status);
        out.passed     = code == 0;
        if (!out.passed) {
            out.error_text = "exit status " + std::to_string(code);
        }
    } else if (WIFSIGNALED(status) || bwrap_signal(bwrap, status) > 0) {
        const int sig = WIFSIGNALED(status) ? WTERMSIG(status) : bwrap_signal(bwrap, status);
        // SIGXCPU, or SIGKILL at the hard CPU limit, means the CPU budget ran out.
        if (sig == SIGXCPU) {
            out.timed_out  = true;
            out.error_text = "CPU time limit exceeded";
        } else if (sig == SIGXFSZ) {
            out.error_text = "file size limit exceeded";
        } else {
            out.error_text = std::string("killed by signal ") + std::to_string(sig) + " (" + ::strsignal(sig) + ")";
        }
    }
    if (!out.passed && !output.empty()) {
        constexpr std::size_t k_tail = 4096;
        if (output.size() > k_tail) {
            output.erase(0, output.size() - k_tail);
        }
        out.error_text += "\n" + output;
    }
    return out;
}

// Whether bwrap can build its sandbox here (user namespaces may be off, or a container may
// forbid them), tried once per process and set-up with a trivial program: a failure of the
// program under test must never be what moves grading to a weaker sandbox.
bool bwrap_works(const std::string & bwrap, const std::string & python, const sandbox_limits & limits) {
    static std::mutex                  mutex;
    static std::map<std::string, bool> works;
    const std::string                  key = bwrap + '\n' + python + '\n' + (limits.drop_privileges ? "drop" : "keep");
    std::lock_guard<std::mutex>        lock(mutex);
    if (const auto it = works.find(key); it != works.end()) {
        return it->second;
    }
    sandbox_limits probe = limits;
    probe.wall_time      = std::max(probe.wall_time, std::chrono::milliseconds(10000));
    return works[key]    = run_python_source("import sys\n", python, bwrap, probe).passed;
}

}  // namespace

test_outcome run_humaneval_test(std::string_view program, std::string_view test_code, std::string_view entry_point,
                                const sandbox_limits & limits) {
    test_outcome out;
    if (!is_python_identifier(entry_point)) {
        out.error_text = "invalid entry_point '" + std::string(entry_point) + "': not a Python identifier";
        return out;
    }
    const std::string python = resolve_executable(limits.python);
    if (python.empty()) {
        out.error_text = "interpreter '" + limits.python + "' not found in " + k_sandbox_path;
        return out;
    }
    std::string source;
    source.reserve(program.size() + test_code.size() + entry_point.size() + 16);
    source.append(program).append("\n\n").append(test_code).append("\n\ncheck(").append(entry_point).append(")\n");
    std::string bwrap = limits.use_bwrap ? resolve_executable("bwrap") : std::string();
    if (!bwrap.empty() && !bwrap_works(bwrap, python, limits)) {
        bwrap.clear();
    }
    return run_python_source(source, python, bwrap, limits);
}

}  // namespace powersample::eval
