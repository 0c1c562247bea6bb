// The trace picture: one marker per MCMC step, coloured by the decision, block boundaries, the
// atomic write and its errors.
#include "powersample/trace-svg.h"

#include <gtest/gtest.h>

#include <fstream>
#include <regex>
#include <sys/stat.h>
#include <unistd.h>

using namespace powersample;

namespace {

// 3 blocks of 2 steps; log p falls as blocks extend the state.
sample_result make_chain() {
    sample_result c;
    const bool    accepted[] = { true, false, false, true, true, false };
    double        log_p      = -5.0;
    for (int i = 0; i < 6; ++i) {
        step_record s;
        s.block = 1 + i / 2;
        if (i % 2 == 0) log_p -= 7.0;  // the block extension
        s.position              = i;
        s.len_current           = 8 * s.block;
        s.len_proposal          = 8 * s.block;
        s.log_accept_ratio      = accepted[i] ? 0.5 : -2.0;
        s.accepted              = accepted[i];
        s.log_p_suffix_current  = -4.0;
        s.log_p_suffix_proposal = accepted[i] ? -3.0 : -9.0;
        if (s.accepted) log_p += 1.0;
        s.log_p_after = log_p;
        c.trace.push_back(s);
    }
    c.n_proposals = 6;
    c.n_accepted  = 3;
    return c;
}

struct marker {
    std::string decision, fill;
    int         step;
    double      cy;
};

std::vector<marker> markers(const std::string & svg) {
    static const std::regex re(
        R"re(<circle class="step (accepted|rejected)" data-step="(\d+)" cx="[-0-9.]+" cy="([-0-9.]+)" r="\d+" fill="(#[0-9a-f]{6})")re");
    std::vector<marker> out;
    for (auto it = std::sregex_iterator(svg.begin(), svg.end(), re); it != std::sregex_iterator(); ++it) {
        out.push_back({ (*it)[1], (*it)[4], std::stoi((*it)[2]), std::stod((*it)[3]) });
    }
    return out;
}

size_t count(const std::string & s, const std::string & needle) {
    size_t n = 0;
    for (size_t p = s.find(needle); p != std::string::npos; p = s.find(needle, p + 1)) ++n;
    return n;
}

std::string temp_dir() {
    std::string d = ::testing::TempDir() + "powersample-svg-" + std::to_string(getpid());
    ::mkdir(d.c_str(), 0700);
    return d;
}

}  // namespace

TEST(trace_svg, one_marker_per_step_coloured_by_the_decision) {
    const sample_result c   = make_chain();
    const std::string   svg = trace_to_svg(c);
    const auto          ms  = markers(svg);
    ASSERT_EQ(ms.size(), c.trace.size());
    for (size_t i = 0; i < ms.size(); ++i) {
        EXPECT_EQ(ms[i].step, int(i) + 1);
        EXPECT_EQ(ms[i].decision, c.trace[i].accepted ? "accepted" : "rejected");
        EXPECT_EQ(ms[i].fill, c.trace[i].accepted ? "#1a9850" : "#d73027");
    }
    // A rejected proposal is drawn at its own log p (here below the state: larger y).
    EXPECT_GT(ms[1].cy, ms[0].cy);
    // Blocks: a dashed boundary between each pair, a label over each.
    EXPECT_EQ(count(svg, "class=\"block-boundary\""), 2u);
    EXPECT_EQ(count(svg, "class=\"block-label\""), 3u);
    EXPECT_NE(svg.find(">block 3<"), std::string::npos);
    // Labelled axes, self-contained document.
    EXPECT_NE(svg.find("MCMC step"), std::string::npos);
    EXPECT_NE(svg.find("log p(x | prompt)"), std::string::npos);
    EXPECT_EQ(svg.rfind("<svg xmlns=\"http://www.w3.org/2000/svg\"", 0), 0u);
    EXPECT_EQ(svg.find("<script"), std::string::npos);
    EXPECT_EQ(svg.find("href"), std::string::npos);
    EXPECT_EQ(count(svg, "<svg"), count(svg, "</svg>"));
    EXPECT_EQ(count(svg, "<circle class=\"step"), count(svg, "</title></circle>"));
}

TEST(trace_svg, title_is_escaped_and_an_empty_trace_says_so) {
    trace_svg_options o;
    o.title               = "a < b & \"c\"";
    const std::string svg = trace_to_svg(make_chain(), o);
    EXPECT_NE(svg.find("a &lt; b &amp; &quot;c&quot;"), std::string::npos);
    const std::string empty = trace_to_svg(sample_result{});
    EXPECT_TRUE(markers(empty).empty());
    EXPECT_NE(empty.find("no MCMC steps"), std::string::npos);
    EXPECT_NE(empty.find("</svg>"), std::string::npos);
}

TEST(trace_svg, written_atomically_and_bad_paths_are_named) {
    const std::string dir  = temp_dir();
    const std::string path = dir + "/trace.svg";
    write_trace_svg(path, make_chain());
    std::ifstream     in(path);
    const std::string text((std::istreambuf_iterator<char>(in)), {});
    EXPECT_EQ(text, trace_to_svg(make_chain()));
    EXPECT_NE(access((path + ".tmp-" + std::to_string(getpid())).c_str(), F_OK), 0);  // no temp file left

    for (const std::string & bad : { dir + "/no-such-dir/trace.svg", dir }) {
        try {
            write_trace_svg(bad, make_chain());
            FAIL() << "no error for " << bad;
        } catch (const invalid_argument_error & e) {
            EXPECT_NE(std::string(e.what()).find(bad), std::string::npos) << e.what();
        }
    }
    EXPECT_THROW(check_svg_path(""), invalid_argument_error);
    std::remove(path.c_str());
    ::rmdir(dir.c_str());
}
