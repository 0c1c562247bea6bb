"""scripts/convert-results-v2.py: format-1 eval records become format 2 exactly, once."""
import json
import os
import subprocess
import sys
import tempfile
import unittest

SCRIPT = os.path.join(os.path.dirname(__file__), "..", "..", "scripts", "convert-results-v2.py")


def run(*args):
    return subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True)


class ConvertResults(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.root = self.dir.name

    def tearDown(self):
        self.dir.cleanup()

    def write(self, name, obj):
        path = os.path.join(self.root, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            json.dump(obj, f)
        return path

    def read(self, path):
        with open(path) as f:
            return json.load(f)

    def test_each_engine_converts_to_the_knob_table_names(self):
        common = {"alpha": 4.0, "block_size": 32, "steps": 2, "max_new_tokens": 512, "temperature": 0.25,
                  "n_chains": 1, "seed": 7}
        want_common = {"alpha": 4.0, "block_size": 32, "steps": 2, "max_tokens": 512, "temperature": 0.25,
                       "chains": 1, "seed": 7}
        cases = {
            "power": ({"early_rejection": True}, {"early_rejection": True}),
            "power-entropy": ({"entropy_beta": 1.0, "entropy_floor": 0.1, "early_rejection": False},
                              {"early_rejection": False, "power_entropy": {"beta": 1.0, "floor": 0.1}}),
            "smc": ({"particles": 4, "ess_threshold": 0.5, "resample_interval": 1, "alpha_ramp_tokens": 8},
                    {"smc": {"particles": 4, "ess_threshold": 0.5, "resample_interval": 1, "alpha_ramp_tokens": 8}}),
            "sps": ({"candidates": 8, "top_k": 4, "rollouts": 4, "lookahead": 32, "proposal": "base",
                     "level": "block", "last_candidates": 8, "last_top_k": 4},
                    {"sps": {"candidates": 8, "top_k": 4, "rollouts": 4, "lookahead": 32, "proposal": "base",
                             "level": "block", "last_candidates": 8, "last_top_k": 4}}),
            "greedy": ({}, {}),
        }
        paths = {}
        for engine, (method_params, _) in cases.items():
            paths[engine] = self.write(f"{engine}/p0.json", {"version": 1, "engine": engine, "params": common,
                                                             "method_params": method_params, "samples": [{"text": "x"}]})
        skipped = self.write("greedy/p1.json", {"version": 1, "engine": "greedy", "params": {"max_new_tokens": 512},
                                                "samples": [], "skipped": "too long"})
        r = run(self.root)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("6 converted", r.stderr)
        for engine, (_, extra) in cases.items():
            rec = self.read(paths[engine])
            self.assertEqual(rec["version"], 2)
            self.assertNotIn("method_params", rec)
            self.assertEqual(rec["params"], {**want_common, **extra}, engine)
            self.assertEqual(rec["samples"], [{"text": "x"}])
        self.assertEqual(self.read(skipped)["params"], {"max_tokens": 512})
        # A second run changes nothing.
        before = {p: open(p).read() for p in paths.values()}
        r = run(self.root)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("0 converted", r.stderr)
        self.assertEqual(before, {p: open(p).read() for p in paths.values()})

    def test_summary_lines_follow(self):
        path = self.write("summary.json", {"methods": [], "run": {"power-entropy": "entropy_beta 1.0, entropy_floor 0.1"}})
        self.assertEqual(run(self.root).returncode, 0)
        self.assertEqual(self.read(path)["run"]["power-entropy"], "beta 1.0, floor 0.1")

    def test_bad_input_exits_2_and_leaves_the_file(self):
        self.assertEqual(run().returncode, 2)
        self.assertEqual(run(os.path.join(self.root, "none")).returncode, 2)
        path = self.write("smc/p0.json", {"version": 1, "engine": "smc", "params": {}, "method_params": {"nope": 1}})
        before = open(path).read()
        r = run(self.root)
        self.assertEqual(r.returncode, 2)
        self.assertIn("method_params.nope", r.stderr)
        self.assertEqual(open(path).read(), before)
        broken = self.write("x/p.json", {})
        with open(broken, "w") as f:
            f.write("{")
        self.assertEqual(run(os.path.join(self.root, "x")).returncode, 2)


if __name__ == "__main__":
    unittest.main()
