#include "model-fetch.h"

#include "powersample/powersample.h"

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

namespace {

bool is_file(const std::string & p) {
    struct stat st {};
    return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

// The script holds the pinned wheels and their sha256s (one list, also used by setup.sh and
// test.sh): from the source tree this binary was built in, else from the install prefix, else
// beside the binary's ../share.
std::string find_fetch_script() {
    std::vector<std::string> candidates = { POWERSAMPLE_SOURCE_DIR "/scripts/fetch-model.sh",
                                            POWERSAMPLE_INSTALL_PREFIX "/share/powersample/fetch-model.sh" };
    char                     self[4096];
    const ssize_t            n = ::readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n > 0) {
        std::string dir(self, size_t(n));
        dir = dir.substr(0, dir.rfind('/'));
        candidates.push_back(dir + "/../share/powersample/fetch-model.sh");
    }
    for (const auto & c : candidates) {
        if (is_file(c)) return c;
    }
    return {};
}

}  // namespace

int fetch_model(const std::string & name) {
    bool        known = false;
    std::string names;
    for (const auto & e : powersample::model_catalog()) {
        known = known || e.name == name;
        names += (names.empty() ? "" : ", ") + e.name;
    }
    if (!known) {
        std::fprintf(stderr, "power-sampling: --fetch = '%s': not a catalogue model (%s)\n", name.c_str(),
                     names.c_str());
        return 1;
    }
    const std::string script = find_fetch_script();
    if (script.empty()) {
        std::fprintf(stderr,
                     "power-sampling: --fetch: fetch-model.sh is neither in the source tree (%s) nor installed (%s)\n",
                     POWERSAMPLE_SOURCE_DIR, POWERSAMPLE_INSTALL_PREFIX "/share/powersample");
        return 1;
    }
    std::fflush(nullptr);
    const pid_t pid = ::fork();
    if (pid < 0) {
        std::perror("power-sampling: --fetch: fork");
        return 2;
    }
    if (pid == 0) {
        // The script's output is progress: all of it to stderr, stdout stays for results.
        ::dup2(STDERR_FILENO, STDOUT_FILENO);
        ::execl("/bin/bash", "bash", script.c_str(), name.c_str(), static_cast<char *>(nullptr));
        std::perror("power-sampling: --fetch: cannot run bash");
        ::_exit(2);
    }
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0) {}
    if (WIFEXITED(status)) return WEXITSTATUS(status) == 0 ? 0 : (WEXITSTATUS(status) == 1 ? 1 : 2);
    return 2;
}
