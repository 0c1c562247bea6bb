// Runs a program through the shell for the end-to-end tests of the command-line tools: stdin
// from a string, stdout and stderr captured separately, the exit code (128 + signal when killed).
#pragma once

#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>

struct run_result {
    int         exit_code;
    std::string out;  // stdout
    std::string err;  // stderr
};

inline std::string slurp(const std::string & path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
}

// A scratch file name unique to this test process.
inline std::string temp_path(const std::string & name) {
    return ::testing::TempDir() + "powersample-test-" + std::to_string(getpid()) + "-" + name;
}

inline run_result run_command(const std::string & command, const std::string & stdin_text = "") {
    const std::string out = temp_path("stdout"), err = temp_path("stderr"), in = temp_path("stdin");
    std::ofstream(in, std::ios::binary) << stdin_text;
    const std::string cmd = command + " <" + in + " >" + out + " 2>" + err;
    const int status = std::system(cmd.c_str());
    return {WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), slurp(out), slurp(err)};
}
