#include "llama/log.h"

#include "llama.h"

#include <cstdio>
#include <mutex>

namespace powersample {

namespace {

std::function<void(log_level, const std::string &)> g_callback;
log_level                                           g_min_level = log_level::warn;

void llama_to_powersample(ggml_log_level level, const char * text, void *) {
    static std::string pending;  // llama.cpp may send one line in several pieces
    static log_level   pending_level = log_level::info;
    log_level          ours          = log_level::debug;
    switch (level) {
        case GGML_LOG_LEVEL_ERROR: ours = log_level::error; break;
        case GGML_LOG_LEVEL_WARN: ours = log_level::warn; break;
        case GGML_LOG_LEVEL_INFO: ours = log_level::info; break;
        case GGML_LOG_LEVEL_CONT: ours = pending_level; break;
        default: ours = log_level::debug; break;
    }
    pending_level = ours;
    pending += text ? text : "";
    size_t nl;
    while ((nl = pending.find('\n')) != std::string::npos) {
        log_message(ours, "llama.cpp: " + pending.substr(0, nl));
        pending.erase(0, nl + 1);
    }
}

}  // namespace

void set_log_callback(std::function<void(log_level, const std::string &)> callback) {
    g_callback = std::move(callback);
}

void set_log_level(log_level min_level) { g_min_level = min_level; }

void log_message(log_level level, const std::string & message) {
    if (g_callback) {
        g_callback(level, message);
        return;
    }
    if (level >= g_min_level) {
        static const char * names[] = { "debug", "info", "warning", "error" };
        std::fprintf(stderr, "powersample: %s: %s\n", names[int(level)], message.c_str());
    }
}

void install_llama_log_bridge() {
    static std::once_flag once;
    std::call_once(once, [] {
        llama_log_set(llama_to_powersample, nullptr);
        llama_backend_init();
    });
}

}  // namespace powersample
