#include "powersample/trace-svg.h"
#include "powersample/text.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <sstream>
#include <sys/stat.h>
#include <unistd.h>

namespace powersample {

namespace {

std::string num(double v, int decimals = 1) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
    return buf;
}

// Round tick step (1, 2 or 5 times a power of ten) giving about `target` ticks over `span`.
double tick_step(double span, int target) {
    const double raw = span / std::max(1, target);
    const double mag = std::pow(10.0, std::floor(std::log10(raw)));
    for (double f : { 1.0, 2.0, 5.0, 10.0 }) {
        if (f * mag >= raw) return f * mag;
    }
    return 10.0 * mag;
}

std::string directory_of(const std::string & path) {
    const size_t slash = path.find_last_of('/');
    if (slash == std::string::npos) return ".";
    return slash == 0 ? "/" : path.substr(0, slash);
}

}  // namespace

std::string trace_to_svg(const sample_result & chain, const trace_svg_options & options) {
    const double      W = std::max(200, options.width), H = std::max(150, options.height);
    const double      left = 78, right = 20, top = 72, bottom = 58;
    const double      plot_w = W - left - right, plot_h = H - top - bottom;
    const std::string title =
        options.title.empty() ? std::string("Power sampling: log p per MCMC step") : options.title;
    const auto & steps = chain.trace;
    const size_t n     = steps.size();

    std::ostringstream o;
    o << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << W << "\" height=\"" << H << "\" viewBox=\"0 0 " << W
      << " " << H << "\" font-family=\"sans-serif\" font-size=\"12\">\n";
    o << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
    o << "<text x=\"" << W / 2 << "\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">" << markup_escape(title)
      << "</text>\n";

    if (n == 0) {
        o << "<text x=\"" << W / 2 << "\" y=\"" << H / 2 << "\" text-anchor=\"middle\">"
          << "no MCMC steps (not power sampling, or 0 steps per block)</text>\n</svg>\n";
        return o.str();
    }

    // log p of the state after each step, and of each step's proposal: for an accepted step they
    // are equal; a rejected one left the state alone, so its proposal is state - old + new suffix.
    std::vector<double> state(n), proposal(n);
    for (size_t i = 0; i < n; ++i) {
        const auto & s = steps[i];
        state[i]       = s.log_p_after;
        proposal[i]    = s.accepted ? s.log_p_after : s.log_p_after - s.log_p_suffix_current + s.log_p_suffix_proposal;
    }
    double y_min = state[0], y_max = state[0];
    for (size_t i = 0; i < n; ++i) {
        for (double v : { state[i], proposal[i] }) {
            if (std::isfinite(v)) {
                y_min = std::min(y_min, v);
                y_max = std::max(y_max, v);
            }
        }
    }
    if (!(y_max - y_min > 1e-9)) {
        y_min -= 1.0;
        y_max += 1.0;
    }
    const double dy = tick_step(y_max - y_min, 6);
    y_min           = std::floor(y_min / dy) * dy;
    y_max           = std::ceil(y_max / dy) * dy;

    const auto x_of = [&](size_t i) { return left + plot_w * (double(i) + 0.5) / double(n); };
    const auto y_of = [&](double v) {
        if (!std::isfinite(v)) v = y_min;
        return top + plot_h * (y_max - v) / (y_max - y_min);
    };

    // Axes, grid and tick labels.
    o << "<g class=\"axes\" stroke=\"#444\" stroke-width=\"1\">\n";
    o << "<line x1=\"" << left << "\" y1=\"" << top << "\" x2=\"" << left << "\" y2=\"" << top + plot_h << "\"/>\n";
    o << "<line x1=\"" << left << "\" y1=\"" << top + plot_h << "\" x2=\"" << left + plot_w << "\" y2=\""
      << top + plot_h << "\"/>\n</g>\n";
    const int y_decimals = dy < 1.0 ? 1 : 0;
    for (double v = y_min; v <= y_max + dy / 2; v += dy) {
        const double y = y_of(v);
        o << "<line x1=\"" << left << "\" y1=\"" << num(y) << "\" x2=\"" << left + plot_w << "\" y2=\"" << num(y)
          << "\" stroke=\"#e6e6e6\"/>\n";
        o << "<text x=\"" << left - 6 << "\" y=\"" << num(y + 4) << "\" text-anchor=\"end\">"
          << num(std::fabs(v) < dy * 1e-6 ? 0.0 : v, y_decimals) << "</text>\n";
    }
    const double dx = std::max(1.0, tick_step(double(n), 10));
    for (double k = dx; k <= double(n) + 1e-9; k += dx) {
        const double x = x_of(size_t(k) - 1);
        o << "<line x1=\"" << num(x) << "\" y1=\"" << top + plot_h << "\" x2=\"" << num(x) << "\" y2=\""
          << top + plot_h + 5 << "\" stroke=\"#444\"/>\n";
        o << "<text x=\"" << num(x) << "\" y=\"" << top + plot_h + 18 << "\" text-anchor=\"middle\">" << size_t(k)
          << "</text>\n";
    }
    o << "<text x=\"" << left + plot_w / 2 << "\" y=\"" << H - 14
      << "\" text-anchor=\"middle\">MCMC step (after each block is extended, N steps resample a suffix)</text>\n";
    o << "<text transform=\"translate(18," << top + plot_h / 2
      << ") rotate(-90)\" text-anchor=\"middle\">log p(x | prompt) of the state</text>\n";

    // Block boundaries: a dashed line where the block index changes, a label over each block.
    size_t block_start = 0;
    for (size_t i = 0; i <= n; ++i) {
        if (i < n && steps[i].block == steps[block_start].block) continue;
        const double x0 = left + plot_w * double(block_start) / double(n);
        const double x1 = left + plot_w * double(i) / double(n);
        o << "<text class=\"block-label\" x=\"" << num((x0 + x1) / 2) << "\" y=\"" << top - 8
          << "\" text-anchor=\"middle\" fill=\"#555\">block " << steps[block_start].block << "</text>\n";
        if (i < n) {
            o << "<line class=\"block-boundary\" x1=\"" << num(x1) << "\" y1=\"" << top << "\" x2=\"" << num(x1)
              << "\" y2=\"" << top + plot_h << "\" stroke=\"#888\" stroke-dasharray=\"5,4\"/>\n";
        }
        block_start = i;
    }

    // The state's log p: a line, broken at block boundaries (extending the state changes its log p).
    o << "<g class=\"state\" fill=\"none\" stroke=\"#3b4cc0\" stroke-width=\"1.8\">\n";
    for (size_t i = 0; i < n;) {
        size_t j = i;
        o << "<polyline points=\"";
        while (j < n && steps[j].block == steps[i].block) {
            o << num(x_of(j)) << "," << num(y_of(state[j])) << " ";
            ++j;
        }
        o << "\"/>\n";
        i = j;
    }
    o << "</g>\n";

    // One marker per step, at the proposal's log p; a rejected one is tied to the state it lost to.
    const int r = n > 120 ? 3 : 5;
    for (size_t i = 0; i < n; ++i) {
        const auto & s = steps[i];
        const double x = x_of(i);
        if (!s.accepted) {
            o << "<line x1=\"" << num(x) << "\" y1=\"" << num(y_of(state[i])) << "\" x2=\"" << num(x) << "\" y2=\""
              << num(y_of(proposal[i])) << "\" stroke=\"#d73027\" stroke-dasharray=\"2,2\"/>\n";
        }
        o << "<circle class=\"step " << (s.accepted ? "accepted" : "rejected") << "\" data-step=\"" << i + 1
          << "\" cx=\"" << num(x) << "\" cy=\"" << num(y_of(proposal[i])) << "\" r=\"" << r << "\" fill=\""
          << (s.accepted ? "#1a9850" : "#d73027") << "\" stroke=\"white\" stroke-width=\"1\">"
          << "<title>step " << i + 1 << ", block " << s.block << ": resample from position " << s.position << ", len "
          << s.len_current << " -> " << s.len_proposal << ", log A = " << num(s.log_accept_ratio, 2) << ", "
          << (s.accepted ? "accepted" : "rejected") << "; log p proposal " << num(proposal[i], 2) << ", state "
          << num(state[i], 2) << "</title></circle>\n";
    }

    // Legend, between the title and the plot.
    const double lx = W - right - 324, ly = 42;
    o << "<g class=\"legend\">\n";
    o << "<rect x=\"" << lx - 6 << "\" y=\"" << ly - 12
      << "\" width=\"330\" height=\"22\" fill=\"white\" "
         "fill-opacity=\"0.85\" stroke=\"#ccc\"/>\n";
    o << "<line x1=\"" << lx << "\" y1=\"" << ly << "\" x2=\"" << lx + 18 << "\" y2=\"" << ly
      << "\" stroke=\"#3b4cc0\" stroke-width=\"1.8\"/>\n";
    o << "<text x=\"" << lx + 22 << "\" y=\"" << ly + 4 << "\">state</text>\n";
    o << "<circle cx=\"" << lx + 80 << "\" cy=\"" << ly << "\" r=\"5\" fill=\"#1a9850\"/>\n";
    o << "<text x=\"" << lx + 88 << "\" y=\"" << ly + 4 << "\">accepted proposal</text>\n";
    o << "<circle cx=\"" << lx + 205 << "\" cy=\"" << ly << "\" r=\"5\" fill=\"#d73027\"/>\n";
    o << "<text x=\"" << lx + 213 << "\" y=\"" << ly + 4 << "\">rejected proposal</text>\n";
    o << "</g>\n</svg>\n";
    return o.str();
}

void check_svg_path(const std::string & path) {
    if (path.empty()) throw invalid_argument_error("path", "SVG path: empty");
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
        throw invalid_argument_error("path", "SVG path '" + path + "': is a directory");
    }
    const std::string dir = directory_of(path);
    if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
        throw invalid_argument_error("path", "SVG path '" + path + "': no such directory '" + dir + "'");
    }
    if (::access(dir.c_str(), W_OK) != 0) {
        throw invalid_argument_error("path", "SVG path '" + path + "': directory '" + dir + "' is not writable");
    }
}

void write_trace_svg(const std::string & path, const sample_result & chain, const trace_svg_options & options) {
    check_svg_path(path);
    const std::string svg = trace_to_svg(chain, options);
    const std::string tmp = path + ".tmp-" + std::to_string(::getpid());
    std::FILE *       f   = std::fopen(tmp.c_str(), "wb");
    if (!f) {
        throw invalid_argument_error("path", "SVG path '" + path + "': cannot write (" + std::strerror(errno) + ")");
    }
    const bool written = std::fwrite(svg.data(), 1, svg.size(), f) == svg.size();
    const bool closed  = std::fclose(f) == 0;
    if (!written || !closed || std::rename(tmp.c_str(), path.c_str()) != 0) {
        const std::string why = std::strerror(errno);
        std::remove(tmp.c_str());
        throw invalid_argument_error("path", "SVG path '" + path + "': cannot write (" + why + ")");
    }
}

}  // namespace powersample
