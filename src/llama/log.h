// Internal logging: every line goes through the callback set by set_log_callback().
#pragma once

#include "powersample/powersample.h"

#include <string>

namespace powersample {

void log_message(log_level level, const std::string & message);
// Installs the bridge that routes llama.cpp's and ggml's log lines through log_message().
void install_llama_log_bridge();

}  // namespace powersample
