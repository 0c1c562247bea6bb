"""scripts/eval-compare.py: the identity check of one method and the paired test of two."""
import json
import os
import subprocess
import sys
import tempfile
import unittest

SCRIPT = os.path.join(os.path.dirname(__file__), "..", "..", "scripts", "eval-compare.py")


def run(*args):
    return subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True)


class EvalCompare(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.root = self.dir.name

    def tearDown(self):
        self.dir.cleanup()

    def write_run(self, run, method, outcomes, text="x", tokens=100):
        folder = os.path.join(self.root, run, method)
        os.makedirs(folder, exist_ok=True)
        for i, correct in enumerate(outcomes):
            record = {"problem_id": f"p{i}", "grade": {"correct": correct},
                      "samples": [{"text": f"{text}{i}", "n_tokens_decoded": tokens, "n_tokens_saved": 0}]}
            with open(os.path.join(folder, f"p{i}.json"), "w") as f:
                json.dump(record, f)
        return os.path.join(self.root, run)

    def test_two_methods_give_the_exact_sign_test(self):
        # 12 problems: A alone solves 7, B alone 2, both 1, neither 2.
        a = [True] * 7 + [False] * 2 + [True] + [False] * 2
        b = [False] * 7 + [True] * 2 + [True] + [False] * 2
        run_a = self.write_run("a", "sps", a, text="a", tokens=150)
        run_b = self.write_run("b", "power", b, text="b", tokens=100)
        r = run(run_a, run_b, "--method", "sps", "--method-b", "power", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        s = json.loads(r.stdout)["summary"]
        self.assertEqual((s["compared"], s["correct_a"], s["correct_b"]), (12, 8, 3))
        self.assertEqual((s["solved_only_by_a"], s["solved_only_by_b"]), (7, 2))
        # 2 * (C(9,0) + C(9,1) + C(9,2)) / 2^9 = 92 / 512
        self.assertAlmostEqual(s["sign_test_p"], 92 / 512, places=12)
        self.assertEqual((s["tokens_a"], s["tokens_b"]), (1800, 1200))
        table = run(run_a, run_b, "--method", "sps", "--method-b", "power")
        self.assertIn("only A solved 7, only B 2: sign test p = 0.180", table.stdout)

    def test_one_method_is_an_identity_check(self):
        same = [True, False, True]
        run_a = self.write_run("a", "power", same)
        run_b = self.write_run("b", "power", same)
        self.assertEqual(run(run_a, run_b).returncode, 0)
        run_c = self.write_run("c", "power", same, text="other")
        r = run(run_a, run_c, "--json")
        self.assertEqual(r.returncode, 1)
        self.assertEqual(json.loads(r.stdout)["summary"]["sign_test_p"], 1.0)  # no discordant problem

    def test_a_missing_method_folder_is_exit_2_naming_it(self):
        run_a = self.write_run("a", "power", [True])
        r = run(run_a, run_a, "--method-b", "smc")
        self.assertEqual(r.returncode, 2)
        self.assertIn(os.path.join(run_a, "smc"), r.stderr)


if __name__ == "__main__":
    unittest.main()
