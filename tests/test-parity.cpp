// The C++ half of the Python parity check: runs the cases in fixtures/parity.json through
// power_sampler and compares with the recorded tokens. python/tests/test_sampling.py runs the same
// cases through the bindings, so both front ends are held to one set of token ids.
// POWERSAMPLE_WRITE_FIXTURE=1 rewrites the expected tokens from this C++ run (after a deliberate
// change to the sampler or the pinned llama.cpp), and the test then checks them against a rerun.
#include "powersample/powersample.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <fstream>

namespace ps = powersample;
using json   = nlohmann::json;

namespace {

json read_fixture() {
    std::ifstream in(POWERSAMPLE_PARITY_FIXTURE);
    if (!in) throw std::runtime_error("cannot read " POWERSAMPLE_PARITY_FIXTURE);
    return json::parse(in);
}

ps::sampling_params params_of(const json & c) {
    ps::sampling_params p;
    p.method            = ps::method_from_name(c.at("method").get<std::string>());
    p.alpha             = c.at("alpha").get<double>();
    p.block_size        = c.at("block_size").get<int32_t>();
    p.n_steps_per_block = c.at("steps").get<int32_t>();
    p.max_new_tokens    = c.at("max_len").get<int32_t>();
    p.seed              = c.at("seed").get<uint64_t>();
    return p;
}

}  // namespace

TEST(parity, fixture_tokens_match_the_cpp_sampler) {
    json               fixture = read_fixture();
    const char *       env     = std::getenv("POWERSAMPLE_TEST_MODEL");
    auto               m       = ps::model::load({ env && *env ? env : fixture.at("model").get<std::string>() });
    ps::context_params cp;
    cp.n_threads = fixture.at("threads").get<int32_t>();
    ps::power_sampler sampler(m, cp);
    const std::string user   = fixture.at("prompt").get<std::string>();
    const std::string prompt = fixture.at("chat").get<bool>() ? m->format_chat(user) : user;

    const bool write = std::getenv("POWERSAMPLE_WRITE_FIXTURE") != nullptr;
    for (auto & c : fixture.at("cases")) {
        const ps::sample_result r = sampler.generate(prompt, params_of(c)).chains.at(0);
        if (write) {
            c["tokens"] = r.tokens;
            c["log_p"]  = r.log_p;
            c["text"]   = r.text;
            continue;
        }
        SCOPED_TRACE(c.at("method").get<std::string>() + " seed " + std::to_string(c.at("seed").get<uint64_t>()));
        EXPECT_EQ(r.tokens, c.at("tokens").get<std::vector<ps::token_id>>());
        EXPECT_NEAR(r.log_p, c.at("log_p").get<double>(), 1e-6);
        EXPECT_EQ(r.text, c.at("text").get<std::string>());
    }
    if (write) {
        std::ofstream(POWERSAMPLE_PARITY_FIXTURE) << fixture.dump(2) << "\n";
        GTEST_SKIP() << "rewrote " POWERSAMPLE_PARITY_FIXTURE;
    }
}
