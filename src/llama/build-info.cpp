#include "powersample/powersample.h"

namespace powersample {

const build_info & get_build_info() {
    static const build_info info{ POWERSAMPLE_VERSION, POWERSAMPLE_GIT_COMMIT,
                                  std::string(POWERSAMPLE_LLAMA_VERSION) + " (" + POWERSAMPLE_LLAMA_FROM + ")" };
    return info;
}

std::string version_line() {
    const auto & b = get_build_info();
    return "powersample " + b.version + " (commit " + b.commit + "), llama.cpp " + b.llama_cpp;
}

}  // namespace powersample
