// Runs a program through the shell for the end-to-end tests of the command-line tools: stdin
// from a string, stdout and stderr captured separately, the exit code (128 + signal when killed).
#pragma once

#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

struct run_result {
    int         exit_code;
    std::string out;  // stdout
    std::string err;  // stderr
};

inline std::string slurp(const std::string & path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
}

// Scratch paths handed out to this test process, removed when it exits (files, and directories
// once empty), so that runs leave nothing behind in the temporary directory.
struct scratch_paths {
    std::vector<std::string> paths;
    ~scratch_paths() {
        for (const auto & p : paths) std::remove(p.c_str());
    }
};

// A scratch file name unique to this test process.
inline std::string temp_path(const std::string & name) {
    static scratch_paths made;
    const std::string    path = ::testing::TempDir() + "powersample-test-" + std::to_string(getpid()) + "-" + name;
    if (std::find(made.paths.begin(), made.paths.end(), path) == made.paths.end()) made.paths.push_back(path);
    return path;
}

inline run_result run_command(const std::string & command, const std::string & stdin_text = "") {
    const std::string out = temp_path("stdout"), err = temp_path("stderr"), in = temp_path("stdin");
    std::ofstream(in, std::ios::binary) << stdin_text;
    const std::string cmd    = command + " <" + in + " >" + out + " 2>" + err;
    const int         status = std::system(cmd.c_str());
    return { WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), slurp(out), slurp(err) };
}
