// Unit tests of the harness's model-free logic: answer selection (majority vote, best-of-n),
// record grading, summary aggregation (pass@k, intervals, compute), rendering, atomic files.
#include "report.h"
#include "results.h"

#include <gtest/gtest.h>

#include <tuple>

#include <filesystem>
#include <fstream>

namespace ev = powersample::eval;
namespace fs = std::filesystem;

namespace {

ev::sample_grade g(std::optional<std::string> answer, bool correct) {
    ev::sample_grade s;
    s.answer  = std::move(answer);
    s.correct = correct;
    return s;
}

nlohmann::json numeric_record(const std::string & method, const std::vector<std::string> & texts,
                              const std::vector<double> & log_p, const std::string & reference,
                              const std::string & id = "p/0") {
    nlohmann::json samples = nlohmann::json::array();
    for (size_t i = 0; i < texts.size(); ++i) {
        samples.push_back({ { "text", texts[i] },
                            { "log_p", log_p[i] },
                            { "finish", "eog" },
                            { "n_tokens_generated", 10 * (i + 1) },
                            { "n_proposals", 0 },
                            { "n_accepted", 0 } });
    }
    return { { "problem_id", id },       { "task", "numeric" },  { "method", method },   { "engine", "sample" },
             { "reference", reference }, { "samples", samples }, { "wall_seconds", 2.0 } };
}

}  // namespace

TEST(EvalSelection, MajorityCountsAnswersByValue) {
    // "5" and "5.0" are one vote bucket: 5 has three votes, 3 has two.
    std::vector<ev::sample_grade> grades{ g("3", false), g("5", true),           g("5.0", true),
                                          g("3", false), g(std::nullopt, false), g("5", true) };
    const auto                    s = ev::select_majority("numeric", grades);
    EXPECT_EQ(s.index, 1);
    EXPECT_EQ(s.answer, "5");
    EXPECT_TRUE(s.correct);
}

TEST(EvalSelection, MajorityTieGoesToFirstAnswerInChainOrder) {
    std::vector<ev::sample_grade> grades{ g("7", false), g("4", true), g("4", true), g("7", false) };
    const auto                    s = ev::select_majority("numeric", grades);
    EXPECT_EQ(s.index, 0);
    EXPECT_EQ(s.answer, "7");
    EXPECT_FALSE(s.correct);
    // The same tie in the other order picks the other answer: order, not value, decides.
    std::vector<ev::sample_grade> swapped{ g("4", true), g("7", false), g("7", false), g("4", true) };
    EXPECT_EQ(ev::select_majority("numeric", swapped).answer, "4");
}

TEST(EvalSelection, MajorityWithoutAnswersIsWrong) {
    std::vector<ev::sample_grade> grades{ g(std::nullopt, false), g(std::nullopt, false) };
    const auto                    s = ev::select_majority("numeric", grades);
    EXPECT_EQ(s.index, -1);
    EXPECT_EQ(s.answer, "");
    EXPECT_FALSE(s.correct);
}

TEST(EvalSelection, MajorityNormalisesMathAnswers) {
    std::vector<ev::sample_grade> grades{ g("\\frac{1}{2}", true), g("x", false), g("\\dfrac{1}{2}", true) };
    EXPECT_EQ(ev::select_majority("math", grades).index, 0);
}

TEST(EvalSelection, BestOfNPicksMaxLogP) {
    std::vector<ev::sample_grade> grades{ g("1", false), g("2", true), g("3", false) };
    const auto                    s = ev::select_best_log_p({ -12.5, -3.25, -7.0 }, grades);
    EXPECT_EQ(s.index, 1);
    EXPECT_EQ(s.answer, "2");
    EXPECT_TRUE(s.correct);
    // Ties: the first.
    EXPECT_EQ(ev::select_best_log_p({ -1.0, -1.0, -2.0 }, grades).index, 0);
    // The most likely sample may have no answer; then the method is wrong for this problem.
    std::vector<ev::sample_grade> none{ g(std::nullopt, false), g("2", true) };
    const auto                    n = ev::select_best_log_p({ -1.0, -5.0 }, none);
    EXPECT_EQ(n.index, 0);
    EXPECT_EQ(n.answer, "");
    EXPECT_FALSE(n.correct);
}

TEST(EvalGrading, MajorityRecord) {
    auto rec = numeric_record("maj-vote", { "so \\boxed{7}", "The answer is 8", "\\boxed{8}", "no idea" },
                              { -1, -2, -3, -4 }, "8");
    ev::grade_record(rec);
    const auto & gr = rec["grade"];
    EXPECT_EQ(gr["answers"], nlohmann::json({ "7", "8", "8", nullptr }));
    EXPECT_EQ(gr["sample_correct"], nlohmann::json({ false, true, true, false }));
    EXPECT_EQ(gr["n_correct"], 2);
    EXPECT_EQ(gr["selected"], 1);
    EXPECT_EQ(gr["answer"], "8");
    EXPECT_EQ(gr["correct"], true);
}

TEST(EvalGrading, BestOfNRecordFollowsLogP) {
    auto rec = numeric_record("best-of-n", { "\\boxed{7}", "\\boxed{8}", "\\boxed{8}" }, { -1.5, -2.0, -9.0 }, "8");
    ev::grade_record(rec);
    EXPECT_EQ(rec["grade"]["selected"], 0);
    EXPECT_EQ(rec["grade"]["correct"], false);
    EXPECT_EQ(rec["grade"]["n_correct"], 2);
}

TEST(EvalGrading, StopCutsBaseModelContinuation) {
    EXPECT_EQ(ev::graded_text("so 12.\nQuestion: what is 3+4?\nAnswer: 7", "\nQuestion:"), "so 12.");
    EXPECT_EQ(ev::graded_text("no stop here 5", "\nQuestion:"), "no stop here 5");
    EXPECT_EQ(ev::graded_text("anything 1\nQuestion: 2", ""), "anything 1\nQuestion: 2");
    auto rec    = numeric_record("greedy", { "It is 12.\nQuestion: Tom has 3 apples...\nAnswer: 3" }, { -1 }, "12");
    rec["stop"] = "\nQuestion:";
    ev::grade_record(rec);
    EXPECT_EQ(rec["grade"]["answer"], "12");
    EXPECT_EQ(rec["grade"]["correct"], true);
}

TEST(EvalGrading, ResponseWithoutAnswerIsWrong) {
    auto rec = numeric_record("greedy", { "I cannot solve this." }, { -1 }, "3");
    ev::grade_record(rec);
    EXPECT_EQ(rec["grade"]["answer"], "");
    EXPECT_EQ(rec["grade"]["correct"], false);
}

TEST(EvalSummary, PassAtKAccuracyAndCompute) {
    // Problem a: 1 of 4 samples correct, majority wrong. Problem b: 3 of 4 correct, majority right.
    auto a = numeric_record("maj-vote", { "\\boxed{1}", "\\boxed{2}", "\\boxed{2}", "\\boxed{3}" }, { 0, 0, 0, 0 }, "1",
                            "a");
    auto b = numeric_record("maj-vote", { "\\boxed{5}", "\\boxed{5}", "\\boxed{6}", "\\boxed{5}" }, { 0, 0, 0, 0 }, "5",
                            "b");
    auto c = numeric_record("greedy", { "\\boxed{5}" }, { 0 }, "5", "b");
    for (auto * r : { &a, &b, &c }) ev::grade_record(*r);
    const auto rows = ev::summarize({ a, b, c }, { "greedy", "maj-vote", "power" }, { { "maj-vote", { 30.0, 2 } } });
    ASSERT_EQ(rows.size(), 2u);  // power has no records: no row
    const auto & greedy = rows[0];
    EXPECT_EQ(greedy.method, "greedy");
    EXPECT_EQ(greedy.n_problems, 1u);
    EXPECT_EQ(greedy.n_correct, 1u);
    EXPECT_TRUE(greedy.pass_at.empty());
    EXPECT_DOUBLE_EQ(greedy.mean_tokens_generated, 10.0);
    EXPECT_FALSE(greedy.seconds_per_problem.has_value());
    const auto & maj = rows[1];
    EXPECT_EQ(maj.n_problems, 2u);
    EXPECT_EQ(maj.n_correct, 1u);
    EXPECT_DOUBLE_EQ(maj.accuracy(), 0.5);
    EXPECT_EQ(maj.n_samples, 4u);
    ASSERT_EQ(maj.pass_at.size(), 2u);
    EXPECT_EQ(maj.pass_at[0].first, 1u);
    EXPECT_DOUBLE_EQ(maj.pass_at[0].second, (0.25 + 0.75) / 2);
    EXPECT_EQ(maj.pass_at[1].first, 4u);
    EXPECT_DOUBLE_EQ(maj.pass_at[1].second, 1.0);
    // Tokens: 10 + 20 + 30 + 40 per problem, all chains counted.
    EXPECT_DOUBLE_EQ(maj.mean_tokens_generated, 100.0);
    EXPECT_DOUBLE_EQ(maj.mean_wall_seconds, 2.0);
    ASSERT_TRUE(maj.seconds_per_problem.has_value());
    EXPECT_DOUBLE_EQ(*maj.seconds_per_problem, 15.0);
    const auto ci = powersample::eval::wilson_interval(1, 2);
    EXPECT_DOUBLE_EQ(maj.accuracy_ci.lower, ci.lower);
    EXPECT_DOUBLE_EQ(maj.accuracy_ci.upper, ci.upper);
}

TEST(EvalSummary, WallTimeIsReportedInPlainSamples) {
    auto g                         = numeric_record("greedy", { "\\boxed{5}" }, { 0 }, "5", "a");
    auto s1                        = numeric_record("sample", { "\\boxed{5}" }, { 0 }, "5", "a");
    auto p                         = numeric_record("power", { "\\boxed{5}" }, { 0 }, "5", "a");
    auto e                         = numeric_record("power-entropy", { "\\boxed{5}" }, { 0 }, "5", "a");
    e["engine"]                    = "power-entropy";
    e["samples"][0]["n_proposals"] = 4;
    e["samples"][0]["n_accepted"]  = 1;
    for (auto * r : { &g, &s1, &p, &e }) ev::grade_record(*r);
    // greedy 3 s, sample 4 s, power 10 s per problem: the reference is "sample", not greedy.
    const auto rows = ev::summarize({ g, s1, p, e }, { "greedy", "sample", "power", "power-entropy" },
                                    { { "greedy", { 3.0, 1 } }, { "sample", { 4.0, 1 } }, { "power", { 10.0, 1 } } });
    ASSERT_EQ(rows.size(), 4u);
    EXPECT_DOUBLE_EQ(*rows[0].time_vs_sample, 0.75);
    EXPECT_DOUBLE_EQ(*rows[1].time_vs_sample, 1.0);
    EXPECT_DOUBLE_EQ(*rows[2].time_vs_sample, 2.5);
    EXPECT_FALSE(rows[3].time_vs_sample.has_value());  // no timing
    // Entropy-cut MH is an MH chain: its acceptance is reported like power's.
    ASSERT_TRUE(rows[3].acceptance_rate.has_value());
    EXPECT_DOUBLE_EQ(*rows[3].acceptance_rate, 0.25);
    // Without a "sample" row, greedy (one sample's length) is the reference.
    const auto rows2 =
        ev::summarize({ g, p }, { "greedy", "power" }, { { "greedy", { 2.0, 1 } }, { "power", { 10.0, 1 } } });
    EXPECT_DOUBLE_EQ(*rows2[1].time_vs_sample, 5.0);
}

TEST(EvalSummary, SignTestPValues) {
    EXPECT_DOUBLE_EQ(ev::sign_test_p_value(0, 0), 1.0);
    EXPECT_DOUBLE_EQ(ev::sign_test_p_value(1, 0), 1.0);         // 2 * 1/2
    EXPECT_DOUBLE_EQ(ev::sign_test_p_value(5, 0), 2.0 / 32.0);  // 2 * (1/2)^5
    EXPECT_NEAR(ev::sign_test_p_value(8, 2), 2.0 * (1 + 10 + 45) / 1024.0, 1e-12);
    EXPECT_DOUBLE_EQ(ev::sign_test_p_value(2, 8), ev::sign_test_p_value(8, 2));
    EXPECT_DOUBLE_EQ(ev::sign_test_p_value(3, 3), 1.0);
    EXPECT_LT(ev::sign_test_p_value(1000, 900), 0.05);  // large counts stay finite
    EXPECT_GT(ev::sign_test_p_value(1000, 950), 0.05);
}

TEST(EvalSummary, PairedAgainstTheFirstMethod) {
    // Problems a..d: greedy right on a, b; power right on b, c, d. Only common problems count.
    std::vector<nlohmann::json> recs;
    for (const auto & [id, g_ok, p_ok] : std::vector<std::tuple<std::string, bool, bool>>{
             { "a", true, false }, { "b", true, true }, { "c", false, true }, { "d", false, true } }) {
        recs.push_back(numeric_record("greedy", { g_ok ? "\\boxed{1}" : "\\boxed{2}" }, { 0 }, "1", id));
        recs.push_back(numeric_record("power", { p_ok ? "\\boxed{1}" : "\\boxed{2}" }, { 0 }, "1", id));
    }
    recs.push_back(numeric_record("power", { "\\boxed{1}" }, { 0 }, "1", "e"));  // no greedy result for e
    for (auto & r : recs) ev::grade_record(r);
    const auto rows = ev::summarize(recs, { "greedy", "power" });
    ASSERT_EQ(rows.size(), 2u);
    EXPECT_FALSE(rows[0].paired.has_value());
    ASSERT_TRUE(rows[1].paired.has_value());
    EXPECT_EQ(rows[1].paired->reference, "greedy");
    EXPECT_EQ(rows[1].paired->n_common, 4u);
    EXPECT_EQ(rows[1].paired->wins, 2u);
    EXPECT_EQ(rows[1].paired->losses, 1u);
    EXPECT_DOUBLE_EQ(rows[1].paired->p_value, 1.0);  // 2 * (1 + 3) / 8, capped
    const auto md = ev::summary_markdown(rows, {});
    EXPECT_NE(md.find("| vs greedy: +won/-lost (p) |"), std::string::npos) << md;
    EXPECT_NE(md.find("| +2/-1 (p 1.00) |"), std::string::npos) << md;
    EXPECT_EQ(ev::summary_json(rows, {})["methods"][1]["paired"]["wins"], 2);
}

TEST(EvalSummary, PassAtKUsesSmallestSampleCount) {
    auto a = numeric_record("maj-vote", { "\\boxed{1}", "\\boxed{2}", "\\boxed{3}" }, { 0, 0, 0 }, "3", "a");
    auto b = numeric_record("maj-vote", { "\\boxed{1}", "\\boxed{2}" }, { 0, 0 }, "2", "b");
    ev::grade_record(a);
    ev::grade_record(b);
    const auto rows = ev::summarize({ a, b }, { "maj-vote" });
    ASSERT_EQ(rows.size(), 1u);
    EXPECT_EQ(rows[0].n_samples, 2u);
    // pass@2: a: 1 - C(2,2)/C(3,2) = 2/3; b: 1.
    EXPECT_DOUBLE_EQ(rows[0].pass_at[1].second, (2.0 / 3.0 + 1.0) / 2);
}

TEST(EvalSummary, MarkdownJsonAndHtml) {
    auto c                    = numeric_record("greedy", { "\\boxed{5}" }, { 0 }, "5", "b");
    auto d                    = numeric_record("greedy", { "\\boxed{4}" }, { 0 }, "5", "c");
    d["samples"][0]["finish"] = "length";  // one of the two samples stopped at the cap
    ev::grade_record(c);
    ev::grade_record(d);
    const auto         rows = ev::summarize({ c, d }, { "greedy" });
    const ev::run_info info{ { "model", "m<1>" } };
    const auto         md = ev::summary_markdown(rows, info);
    EXPECT_NE(md.find("- model: m<1>\n"), std::string::npos);
    EXPECT_NE(md.find("| greedy | 2 | 50.0 | [9.5, 90.5] | - | - | 0 | 0 | 50.0 | 10.0 | 2.00 | - | - | - | - |"),
              std::string::npos)
        << md;
    EXPECT_EQ(ev::summary_json(rows, info)["methods"][0]["n_samples_at_cap"], 1);
    const auto j = ev::summary_json(rows, info);
    EXPECT_EQ(j["methods"][0]["n_correct"], 1);
    EXPECT_DOUBLE_EQ(j["methods"][0]["accuracy"].get<double>(), 0.5);
    EXPECT_TRUE(j["methods"][0]["seconds_per_problem"].is_null());
    const auto html = ev::report_html(rows, info);
    EXPECT_NE(html.find("<svg"), std::string::npos);
    EXPECT_NE(html.find("m&lt;1&gt;"), std::string::npos);
    EXPECT_EQ(html.find("<script"), std::string::npos);
    EXPECT_EQ(html.find("http://"), html.find("http://www.w3.org/2000/svg"));  // the SVG namespace only
    EXPECT_EQ(html.find("https://"), std::string::npos);
}

TEST(EvalFiles, SanitizedIdsAreFileNamesAndDistinct) {
    EXPECT_EQ(ev::sanitize_id("gsm8k-12"), "gsm8k-12");
    EXPECT_EQ(ev::sanitize_id("HumanEval/0"), "HumanEval_0-ac489b59");
    EXPECT_NE(ev::sanitize_id("a/b"), ev::sanitize_id("a_b"));
    EXPECT_EQ(ev::sanitize_id("..")[0], '_');
    EXPECT_EQ(ev::sanitize_id("../x").find('/'), std::string::npos);
}

TEST(EvalFiles, AtomicWriteAndFinishedCheck) {
    const fs::path dir = fs::temp_directory_path() / ("ps-eval-test-" + std::to_string(::getpid()));
    fs::create_directories(dir);
    const fs::path file = dir / "p.json";
    EXPECT_FALSE(ev::is_finished_record(file));  // missing
    auto rec = numeric_record("greedy", { "\\boxed{1}" }, { 0 }, "1");
    ev::write_json_atomically(file, rec);
    EXPECT_TRUE(ev::is_finished_record(file));
    EXPECT_FALSE(fs::exists(dir / "p.json.tmp"));
    // A file cut short (as by a crash without the rename discipline) is not finished.
    std::string text;
    {
        std::ifstream in(file);
        text.assign(std::istreambuf_iterator<char>(in), {});
    }
    std::ofstream(dir / "cut.json") << text.substr(0, text.size() / 2);
    EXPECT_FALSE(ev::is_finished_record(dir / "cut.json"));
    // A cancelled chain is not a result.
    rec["samples"][0]["finish"] = "cancelled";
    ev::write_json_atomically(dir / "cancelled.json", rec);
    EXPECT_FALSE(ev::is_finished_record(dir / "cancelled.json"));
    rec["samples"] = nlohmann::json::array();
    ev::write_json_atomically(dir / "empty.json", rec);
    EXPECT_FALSE(ev::is_finished_record(dir / "empty.json"));
    fs::remove_all(dir);
}

TEST(EvalMethods, NamesAndLookup) {
    EXPECT_EQ(ev::eval_method_names(),
              "greedy, sample, low-temp, power, power-entropy, smc, sps, best-of-n, maj-vote, "
              "power-maj-vote, best-of-n@METHOD, maj-vote@METHOD (compute-matched to METHOD)");
    ASSERT_TRUE(ev::find_eval_method("power-maj-vote").has_value());
    EXPECT_EQ(ev::find_eval_method("power-maj-vote")->engine, "power");
    EXPECT_TRUE(ev::find_eval_method("power-maj-vote")->uses_n);
    EXPECT_EQ(ev::find_eval_method("best-of-n")->selection, ev::selection::best_log_p);
    EXPECT_FALSE(ev::find_eval_method("beam").has_value());
}

TEST(EvalMethods, ComputeMatchedBestOfN) {
    const auto m = ev::find_eval_method("best-of-n@smc");
    ASSERT_TRUE(m.has_value());
    EXPECT_EQ(m->name, "best-of-n@smc");
    EXPECT_EQ(m->matched_to, "smc");
    EXPECT_EQ(m->engine, "sample");
    EXPECT_TRUE(m->uses_n);
    EXPECT_EQ(m->selection, ev::selection::best_log_p);
    EXPECT_TRUE(ev::find_eval_method("best-of-n@power-entropy").has_value());
    // The matched majority vote: the same N, majority selection.
    const auto v = ev::find_eval_method("maj-vote@power");
    ASSERT_TRUE(v.has_value());
    EXPECT_EQ(v->matched_to, "power");
    EXPECT_EQ(v->engine, "sample");
    EXPECT_EQ(v->selection, ev::selection::majority);
    // Only single-answer methods with a varying budget can be matched, and only by best-of-n and
    // maj-vote.
    for (const char * bad :
         { "best-of-n@greedy", "best-of-n@maj-vote", "best-of-n@best-of-n", "best-of-n@", "best-of-n@best-of-n@smc",
           "maj-vote@greedy", "power-maj-vote@smc", "best-of-n@beam", "@smc" }) {
        EXPECT_FALSE(ev::find_eval_method(bad).has_value()) << bad;
    }
}

TEST(EvalPrompts, ChatAsksForBoxedRawIsCutAtNextQuestion) {
    ev::problem p;
    p.question      = "What is 2+2?";
    p.task          = "numeric";
    const auto chat = ev::build_prompt(p, true);
    EXPECT_NE(chat.text.find("\\boxed{}"), std::string::npos);
    EXPECT_NE(chat.text.find("What is 2+2?"), std::string::npos);
    EXPECT_EQ(chat.stop, "");
    const auto raw = ev::build_prompt(p, false);
    EXPECT_EQ(raw.text, "Question: What is 2+2?\nAnswer: Let's think step by step.");
    EXPECT_EQ(raw.stop, "\nQuestion:");
    p.task     = "humaneval";
    p.question = "def f():\n    \"\"\"doc\"\"\"\n";
    EXPECT_EQ(ev::build_prompt(p, false).text, p.question);
}

TEST(EvalGrading, CutResponseNeedsAnExplicitAnswer) {
    EXPECT_TRUE(ev::has_explicit_answer("so \\boxed{3}"));
    EXPECT_TRUE(ev::has_explicit_answer("#### 3"));
    EXPECT_TRUE(ev::has_explicit_answer("The Answer is 3"));
    EXPECT_FALSE(ev::has_explicit_answer("1. The cat's number is 13.\n8. The cat"));
    // Cut at the cap mid-list: "8." is a list marker, not an answer, even when 8 is the reference.
    auto rec                    = numeric_record("greedy", { "1. The cat's number is 13.\n8. The cat" }, { -1 }, "8");
    rec["samples"][0]["finish"] = "length";
    ev::grade_record(rec);
    EXPECT_EQ(rec["grade"]["answer"], "");
    EXPECT_EQ(rec["grade"]["correct"], false);
    // The same text ended by the model itself keeps the last-number rule.
    rec["samples"][0]["finish"] = "eog";
    ev::grade_record(rec);
    EXPECT_EQ(rec["grade"]["answer"], "8");
    EXPECT_EQ(rec["grade"]["correct"], true);
    // A cut response with an explicit answer counts.
    rec["samples"][0]["text"]   = "The answer is 8.\n1. Then";
    rec["samples"][0]["finish"] = "length";
    ev::grade_record(rec);
    EXPECT_EQ(rec["grade"]["correct"], true);
    // A raw-prompt response ended by the stop string was not cut by the cap.
    rec["stop"]               = "\nQuestion:";
    rec["samples"][0]["text"] = "She has 8 left.\nQuestion: 1. The";
    ev::grade_record(rec);
    EXPECT_EQ(rec["grade"]["answer"], "8");
}

// A HumanEval record says which isolation its programs ran under; numeric records do not.
TEST(EvalGrading, HumanEvalRecordNamesTheSandbox) {
    nlohmann::json rec{ { "problem_id", "HumanEval/0" },
                        { "task", "humaneval" },
                        { "method", "greedy" },
                        { "engine", "greedy" },
                        { "question", "def add(xs):\n" },
                        { "test", "def check(candidate):\n    assert candidate([1, 2]) == 3\n" },
                        { "entry_point", "add" },
                        { "samples",
                          { { { "text", "    return sum(xs)\n" }, { "log_p", -1.0 }, { "finish", "eog" } } } } };
    ev::grade_record(rec);
    EXPECT_EQ(rec["grade"]["correct"], true) << rec.dump(1);
    const auto sandbox = rec["grade"].value("sandbox", "");
    EXPECT_TRUE(sandbox == "bwrap" || sandbox == "namespaces" || sandbox == "fork") << rec.dump(1);
    auto num = numeric_record("greedy", { "\\boxed{8}" }, { -1 }, "8");
    ev::grade_record(num);
    EXPECT_FALSE(num["grade"].contains("sandbox"));
}

// A problem recorded as skipped (its prompt beyond the context) is counted apart: not a problem
// of the accuracy, and not graded.
TEST(EvalSummary, SkippedProblemsAreCountedApart) {
    std::vector<nlohmann::json> recs{ numeric_record("greedy", { "\\boxed{8}" }, { -1 }, "8", "p/0"),
                                      numeric_record("greedy", { "\\boxed{3}" }, { -1 }, "8", "p/1") };
    for (auto & r : recs) ev::grade_record(r);
    recs.push_back({ { "problem_id", "p/2" },
                     { "task", "numeric" },
                     { "method", "greedy" },
                     { "samples", nlohmann::json::array() },
                     { "skipped", "prompt: 20043 tokens, beyond the model's context of 8192 tokens" } });
    const auto rows = ev::summarize(recs, { "greedy" });
    ASSERT_EQ(rows.size(), 1u);
    EXPECT_EQ(rows[0].n_problems, 2u);
    EXPECT_EQ(rows[0].n_correct, 1u);
    EXPECT_EQ(rows[0].n_skipped, 1u);
    EXPECT_NE(ev::summary_markdown(rows, {}).find("| greedy | 2 | 50.0 | [9.5, 90.5] | - | - | 0 | 1 |"),
              std::string::npos)
        << ev::summary_markdown(rows, {});
    EXPECT_EQ(ev::summary_json(rows, {})["methods"][0]["n_skipped"], 1);
}
