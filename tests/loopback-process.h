// Starting a server binary on a free loopback port for a test, and stopping it.
#pragma once

#include <httplib.h>

#include <arpa/inet.h>
#include <chrono>
#include <csignal>
#include <netinet/in.h>
#include <spawn.h>
#include <stdexcept>
#include <string>
#include <sys/socket.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

extern char ** environ;

namespace powersample::testing {

// A port nobody listens on right now (bound and released; a race is possible but unlikely).
inline int free_loopback_port() {
    const int   fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family      = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port        = 0;
    bind(fd, reinterpret_cast<sockaddr *>(&a), sizeof(a));
    socklen_t len = sizeof(a);
    getsockname(fd, reinterpret_cast<sockaddr *>(&a), &len);
    close(fd);
    return ntohs(a.sin_port);
}

// A child process serving HTTP on 127.0.0.1:port; killed (SIGTERM, then SIGKILL) on destruction.
class loopback_process {
public:
    loopback_process(const std::string & binary, std::vector<std::string> args, int port, const std::string & log_file)
        : port_(port) {
        std::vector<std::string> argv_s = { binary };
        argv_s.insert(argv_s.end(), args.begin(), args.end());
        std::vector<char *> argv;
        for (auto & s : argv_s) argv.push_back(s.data());
        argv.push_back(nullptr);
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_addopen(&fa, 1, log_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        posix_spawn_file_actions_adddup2(&fa, 1, 2);
        if (posix_spawn(&pid_, binary.c_str(), &fa, nullptr, argv.data(), environ) != 0) {
            throw std::runtime_error("cannot start " + binary);
        }
        posix_spawn_file_actions_destroy(&fa);
    }
    ~loopback_process() { stop(); }

    // Polls GET /health until it answers 200; false after timeout_s or when the process died.
    bool wait_healthy(double timeout_s) {
        httplib::Client c("127.0.0.1", port_);
        c.set_connection_timeout(1, 0);
        const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
        while (std::chrono::steady_clock::now() < end) {
            if (auto r = c.Get("/health"); r && r->status == 200) return true;
            int status = 0;
            if (pid_ > 0 && waitpid(pid_, &status, WNOHANG) == pid_) {
                pid_ = -1;
                return false;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
        return false;
    }

    void stop() {
        if (pid_ <= 0) return;
        kill(pid_, SIGTERM);
        for (int i = 0; i < 50; ++i) {
            int status = 0;
            if (waitpid(pid_, &status, WNOHANG) == pid_) {
                pid_ = -1;
                return;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
        kill(pid_, SIGKILL);
        waitpid(pid_, nullptr, 0);
        pid_ = -1;
    }

    int         port() const { return port_; }
    std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

private:
    pid_t pid_ = -1;
    int   port_;
};

}  // namespace powersample::testing
