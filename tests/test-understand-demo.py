"""The understand-power-sampling demo and power-sampling --trace-svg, driven as a user would.

Non-interactive (--auto, --check-models), interactive through a pseudo-terminal (answers typed at
its prompts, a wrong menu choice, end of input, q), bad input, and the SVG read back against the
JSON trace. Standard library only; run by CTest (tests/CMakeLists.txt) as
    python3 test-understand-demo.py ClassName
with DEMO_BIN, CLI_BIN and MODEL_PATH in the environment.
"""
import os
import pty
import re
import select
import signal
import subprocess
import tempfile
import time
import unittest
import xml.etree.ElementTree as ET

DEMO = os.environ.get("DEMO_BIN", "build/bin/understand-power-sampling")
CLI = os.environ.get("CLI_BIN", "build/bin/power-sampling")
MODEL = os.environ.get(
    "MODEL_PATH", os.path.expanduser("~/.cache/powersample/models/SmolLM2-135M-Instruct.Q4_1.gguf"))
SVG_NS = "{http://www.w3.org/2000/svg}"


def run(args, timeout=300):
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout)


def svg_steps(path):
    """(decision, fill) of each step marker, in step order, and the number of block boundaries."""
    root = ET.parse(path).getroot()  # also proves the file is well-formed XML
    self_contained = not any(e.tag.endswith(("script", "image", "style")) for e in root.iter())
    markers = [e for e in root.iter(SVG_NS + "circle") if e.get("class", "").startswith("step ")]
    steps = [int(m.get("data-step")) for m in markers]
    assert steps == list(range(1, len(steps) + 1)), steps
    boundaries = [e for e in root.iter(SVG_NS + "line") if e.get("class") == "block-boundary"]
    return [(m.get("class").split()[1], m.get("fill")) for m in markers], len(boundaries), self_contained


class Auto(unittest.TestCase):
    """--auto on the default model: every section prints real numbers."""

    def test_auto_prints_both_samplers_the_alpha_table_and_the_chain(self):
        with tempfile.TemporaryDirectory() as tmp:
            svg = os.path.join(tmp, "chain.svg")
            r = run([DEMO, "--auto", "-m", MODEL, "-t", "1", "--trace-svg", svg])
            self.assertEqual(r.returncode, 0, r.stderr)
            out = r.stdout
            self.assertIn("model check: ok", out)

            standard = re.findall(r"^  standard  log p +(-?\d+\.\d+)", out, re.M)
            power = re.findall(r"^  power     log p +(-?\d+\.\d+) .*acceptance (\d+)/(\d+) = (\d\.\d+)", out, re.M)
            self.assertEqual(len(standard), 3)
            self.assertEqual(len(power), 3)
            for lp, acc, props, rate in power:
                self.assertLess(float(lp), 0.0)
                self.assertLessEqual(int(acc), int(props))
                self.assertTrue(0.0 <= float(rate) <= 1.0)

            rows = re.findall(r"^\| +(\d+) \| +(-?\d+\.\d+) \| +(-?\d+\.\d+) \| +(\d\.\d+) \| +(\d+) \|", out, re.M)
            self.assertEqual([a for a, *_ in rows], ["1", "2", "4", "6"])
            for _, lp, per_token, acc, generated in rows:
                self.assertLess(float(lp), 0.0)
                self.assertTrue(0.0 <= float(acc) <= 1.0)
                self.assertGreater(int(generated), 0)
            # alpha = 1: the proposal is the target, so only a length change can reject.
            self.assertGreaterEqual(float(rows[0][3]), 0.5)

            steps = re.findall(r"^step (\d+) \(block (\d+)\): resample from position m = (\d+) of (\d+) tokens", out, re.M)
            decisions = re.findall(r"A = (\d\.\d+) -> (accepted|rejected)$", out, re.M)
            self.assertGreater(len(steps), 0)
            self.assertEqual(len(steps), len(decisions))
            self.assertEqual(len(re.findall(r"^  old suffix  log p", out, re.M)), len(steps))
            self.assertEqual(len(re.findall(r"^  new suffix  log p", out, re.M)), len(steps))
            for (_, _, m, length), (a, _) in zip(steps, decisions):
                self.assertLess(int(m), int(length))
                self.assertTrue(0.0 <= float(a) <= 1.0)

            markers, boundaries, self_contained = svg_steps(svg)
            self.assertEqual([d for d, _ in markers], [d for _, d in decisions])
            self.assertEqual(boundaries, len({b for _, b, _, _ in steps}) - 1)
            self.assertTrue(self_contained)


class AutoAllModels(unittest.TestCase):
    """--auto without -m: the tour on every cached catalogue model (the seed's multi-model test)."""

    def test_every_cached_model_gets_the_whole_tour(self):
        r = run([DEMO, "--auto", "-t", "1"], timeout=900)
        self.assertEqual(r.returncode, 0, r.stdout[-3000:] + r.stderr)
        n = int(re.search(r"models checked: (\d+), failed: 0", r.stdout).group(1))
        self.assertGreaterEqual(n, 1)
        sections = r.stdout.split("Model: ")[1:]
        self.assertEqual(len(sections), n)
        for section in sections:
            self.assertIn("model check: ok", section)
            self.assertEqual(len(re.findall(r"^\| +[1246] \| +-?\d+\.\d+ \|", section, re.M)), 4, section[:200])
            self.assertRegex(section, r"(?m)^  standard  log p +-?\d+\.\d+")
            self.assertRegex(section, r"(?m)^  power     log p +-?\d+\.\d+")
            self.assertRegex(section, r"-> (accepted|rejected)")


class ModelCheck(unittest.TestCase):
    """--check-models: every cached catalogue model loads and passes."""

    def test_every_cached_model_passes(self):
        r = run([DEMO, "--check-models"])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        n = int(re.search(r"models checked: (\d+), failed: 0", r.stdout).group(1))
        self.assertGreaterEqual(n, 1)
        self.assertEqual(r.stdout.count("model check: ok"), n)
        self.assertIn("smollm2-135m", r.stdout)


class Session:
    """The demo on a pseudo-terminal: type answers, wait for text, read the exit status."""

    def __init__(self, args, env=None):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            os.execve(DEMO, [DEMO] + args, {**os.environ, **(env or {})})
        self.out = ""

    def expect(self, text, timeout=120):
        deadline = time.time() + timeout
        while text not in self.out:
            left = deadline - time.time()
            if left <= 0:
                raise AssertionError(f"timed out waiting for {text!r}; output so far:\n{self.out[-3000:]}")
            ready, _, _ = select.select([self.fd], [], [], left)
            if ready:
                try:
                    chunk = os.read(self.fd, 4096)
                except OSError:  # EIO: the child closed the terminal
                    chunk = b""
                if not chunk:
                    raise AssertionError(f"ended before {text!r}; output:\n{self.out[-3000:]}")
                self.out += chunk.decode("utf-8", "replace")
        # Consume through the match so that the next expect waits for new text.
        i = self.out.index(text) + len(text)
        seen, self.out = self.out[:i], self.out[i:]
        return seen

    def type(self, line):
        os.write(self.fd, line.encode() + b"\n")

    def end_input(self):
        os.write(self.fd, b"\x04")  # Ctrl-D at the start of a line: end of input

    def wait(self, timeout=120):
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:  # drain, so the child never blocks on a full terminal
                if select.select([self.fd], [], [], 0.1)[0]:
                    self.out += os.read(self.fd, 4096).decode("utf-8", "replace")
            except OSError:
                pass
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                os.close(self.fd)
                return os.waitstatus_to_exitcode(status)
        os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)
        raise AssertionError("the demo did not exit")


class Interactive(unittest.TestCase):
    """Answers typed at the demo's prompts through a pseudo-terminal."""

    def test_wrong_choice_asks_again_then_a_whole_tour(self):
        s = Session(["-t", "1", "-n", "16"])
        s.expect("Your choice [1]: ")
        s.type("7")
        s.expect("'7' is not a choice: type a number from 1 to")
        s.expect("Your choice [1]: ")  # asked again
        s.type("banana")
        s.expect("'banana' is not a choice")
        s.expect("Your choice [1]: ")
        s.type("1")
        s.expect("model check: ok")
        s.expect("Your own prompt (Enter for the examples): ")
        s.type("Name a colour.")
        s.expect("[Enter] continue, [q] quit: ")  # after the introduction
        s.type("")
        seen = s.expect("[Enter] continue, [q] quit: ")
        self.assertIn('prompt: "Name a colour."', seen)
        self.assertRegex(seen, r"power     log p +-?\d+\.\d+")
        s.type("")
        seen = s.expect("[Enter] continue, [q] quit: ")
        self.assertEqual(len(re.findall(r"^\| +\d+ \| ", seen, re.M)), 4)
        s.type("")
        s.expect("Done")
        self.assertEqual(s.wait(), 0)

    def test_end_of_input_at_the_menu_exits_cleanly(self):
        s = Session(["-t", "1"])
        s.expect("Your choice [1]: ")
        s.end_input()
        s.expect("end of input")
        self.assertEqual(s.wait(), 0)

    def test_end_of_input_mid_tour_and_q_exit_cleanly(self):
        s = Session(["-t", "1", "-m", MODEL])
        s.expect("Your own prompt (Enter for the examples): ")
        s.end_input()
        s.expect("end of input")
        self.assertEqual(s.wait(), 0)

        s = Session(["-t", "1", "-m", MODEL])
        s.expect("Your own prompt (Enter for the examples): ")
        s.type("")
        s.expect("[Enter] continue, [q] quit: ")
        s.type("q")
        self.assertEqual(s.wait(), 0)
        self.assertNotIn("Standard sampling vs power sampling", s.out)

    def test_a_file_that_fails_to_load_is_named_and_the_menu_returns(self):
        with tempfile.TemporaryDirectory() as tmp:
            bogus = os.path.join(tmp, "not-a-model.gguf")
            with open(bogus, "w") as f:
                f.write("this is not GGUF\n")
            s = Session(["-t", "1"])
            s.expect("Your choice [1]: ")
            s.type("c")
            s.expect("Path to a .gguf file: ")
            s.type(bogus)
            s.expect(f"cannot load '{bogus}'")
            s.expect("Your choice [1]: ")
            s.type("q")
            self.assertEqual(s.wait(), 0)


    def test_a_model_not_downloaded_is_refused_offline(self):
        with tempfile.TemporaryDirectory() as cache:  # an empty cache: nothing is downloaded
            s = Session(["-t", "1"], env={"POWERSAMPLE_CACHE": cache})
            seen = s.expect("Your choice [1]: ")
            self.assertIn("not downloaded", seen)
            s.type("1")
            s.expect("qwen2.5-coder-0.5b is not downloaded (this demo stays offline); fetch it with:")
            s.expect("Your choice [1]: ")
            s.end_input()
            self.assertEqual(s.wait(), 0)
            r = subprocess.run(
                [DEMO, "--check-models"], capture_output=True, text=True, timeout=60,
                env={**os.environ, "POWERSAMPLE_CACHE": cache})
            self.assertEqual(r.returncode, 2)
            self.assertIn("no catalogue model is cached", r.stdout)


class BadInput(unittest.TestCase):
    """One line on stderr naming the culprit, exit code 1, nothing on stdout."""

    def expect_error(self, args, needle, tool=None):
        r = run([tool or DEMO] + args, timeout=60)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn(needle, r.stderr)
        self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
        self.assertEqual(r.stdout, "")

    def test_bad_input_names_the_thing(self):
        with tempfile.TemporaryDirectory() as tmp:
            bogus = os.path.join(tmp, "bogus.gguf")
            with open(bogus, "w") as f:
                f.write("not a model\n")
            self.expect_error(["--auto", "-m", "no-such-model"], "no-such-model")
            self.expect_error(["--auto", "-m", os.path.join(tmp, "missing.gguf")], "missing.gguf")
            self.expect_error(["--auto", "-m", tmp], tmp)  # a directory
            self.expect_error(["--auto", "-m", bogus], "bogus.gguf")
            self.expect_error(["--auto", "--trace-svg", os.path.join(tmp, "no", "x.svg")], "--trace-svg")
            self.expect_error(["--auto", "--trace-svg", tmp], "--trace-svg")
            self.expect_error(["--threads", "-1"], "--threads")
            self.expect_error(["--no-such-flag"], "--no-such-flag")
            # The command line's --trace-svg fails before loading a model.
            self.expect_error(["-p", "hi", "--trace-svg", os.path.join(tmp, "no", "x.svg")], "--trace-svg", CLI)
            self.expect_error(["-p", "hi", "--method", "greedy", "--trace-svg", os.path.join(tmp, "x.svg")],
                              "--trace-svg", CLI)


class CliTraceSvg(unittest.TestCase):
    """power-sampling --trace-svg: the picture agrees with the --json trace of the same run."""

    def test_markers_match_the_json_trace(self):
        import json
        with tempfile.TemporaryDirectory() as tmp:
            svg = os.path.join(tmp, "trace.svg")
            r = run([CLI, "-m", MODEL, "-t", "1", "-s", "3", "-p", "Name three fruits.", "-n", "32",
                     "--block-size", "8", "--steps", "3", "--json", "-q", "--trace-svg", svg])
            self.assertEqual(r.returncode, 0, r.stderr)
            trace = json.loads(r.stdout)["runs"][0]["chains"][0]["trace"]
            self.assertGreater(len(trace), 0)
            markers, boundaries, self_contained = svg_steps(svg)
            self.assertEqual(len(markers), len(trace))
            for (decision, fill), step in zip(markers, trace):
                self.assertEqual(decision, "accepted" if step["accepted"] else "rejected")
                self.assertEqual(fill, "#1a9850" if step["accepted"] else "#d73027")
            # Each marker sits at its proposal's log p: the state's, or for a rejected step the
            # state with the old suffix's log p replaced by the new one's.
            titles = [c.find(SVG_NS + "title").text for c in ET.parse(svg).getroot().iter(SVG_NS + "circle")
                      if c.get("class", "").startswith("step ")]
            for title, step in zip(titles, trace):
                shown = float(re.search(r"log p proposal (-?\d+\.\d+)", title).group(1))
                expected = step["log_p_after"] + (0.0 if step["accepted"] else
                                                  step["log_p_suffix_proposal"] - step["log_p_suffix_current"])
                self.assertAlmostEqual(shown, expected, delta=0.006)
                self.assertIn(f"from position {step['position']},", title)
            self.assertEqual(boundaries, len({s["block"] for s in trace}) - 1)
            self.assertTrue(self_contained)
            self.assertEqual([f for f in os.listdir(tmp)], ["trace.svg"])  # no temporary file left


if __name__ == "__main__":
    unittest.main()
