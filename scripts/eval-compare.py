#!/usr/bin/env python3
"""Compares two power-sampling-eval runs problem by problem.

    scripts/eval-compare.py runs/gsm8k-qwen05-er-solo-on runs/gsm8k-qwen05-er-solo-off [--method power]
    scripts/eval-compare.py runs/gsm8k-qwen05-sps-base runs/gsm8k-qwen05 --method sps --method-b power

For every problem finished in both: whether the sample texts are identical, whether the grades
agree, and the tokens each decoded; then the paired accuracy: how many problems only A solved and
only B solved, with the exact two-sided sign test (the eval summary's), and tokens per problem.
Written for early rejection's identity check (the same seeds must give the same answers at fewer
tokens) and for method A/Bs across runs. With one method, exit 0 when every compared problem has
identical texts and 1 when some differ; with two (--method-b), exit 0; 2 on bad input.
"""
import argparse
import glob
import json
import math
import os
import sys


def sign_test_p_value(wins, losses):
    """Exact two-sided sign test: 2 * P(X <= min(wins, losses)), X ~ Binomial(wins + losses, 1/2)."""
    n, k = wins + losses, min(wins, losses)
    if n == 0:
        return 1.0
    return min(1.0, 2.0 * sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n)


def load(run_dir, method):
    folder = os.path.join(run_dir, method)
    if not os.path.isdir(folder):
        print(f"eval-compare.py: {folder}: no such results folder (run dir and --method?)", file=sys.stderr)
        sys.exit(2)
    results = {}
    for path in glob.glob(os.path.join(folder, "*.json")):
        with open(path, encoding="utf-8") as f:
            r = json.load(f)
        results[r["problem_id"]] = r
    return results


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_a")
    ap.add_argument("run_b")
    ap.add_argument("--method", default="power", help="A's method (and B's, without --method-b)")
    ap.add_argument("--method-b", help="B's method, when it is another")
    ap.add_argument("--json", action="store_true", help="one JSON object instead of the table")
    args = ap.parse_args()
    method_b = args.method_b or args.method
    a, b = load(args.run_a, args.method), load(args.run_b, method_b)
    common = sorted(set(a) & set(b), key=lambda p: (len(str(p)), str(p)))
    rows = []
    for pid in common:
        ra, rb = a[pid], b[pid]
        texts_a = [s["text"] for s in ra["samples"]]
        texts_b = [s["text"] for s in rb["samples"]]
        rows.append({
            "problem_id": pid,
            "same_text": texts_a == texts_b,
            "same_grade": ra["grade"].get("correct") == rb["grade"].get("correct"),
            "correct_a": ra["grade"].get("correct"),
            "correct_b": rb["grade"].get("correct"),
            "tokens_a": sum(s["n_tokens_decoded"] for s in ra["samples"]),
            "tokens_b": sum(s["n_tokens_decoded"] for s in rb["samples"]),
            "saved_a": sum(s.get("n_tokens_saved", 0) for s in ra["samples"]),
        })
    n_same = sum(r["same_text"] for r in rows)
    tokens_a = sum(r["tokens_a"] for r in rows)
    tokens_b = sum(r["tokens_b"] for r in rows)
    correct_a = sum(bool(r["correct_a"]) for r in rows)
    correct_b = sum(bool(r["correct_b"]) for r in rows)
    wins_a = sum(bool(r["correct_a"]) and not r["correct_b"] for r in rows)
    wins_b = sum(bool(r["correct_b"]) and not r["correct_a"] for r in rows)
    summary = {"compared": len(rows), "identical_text": n_same,
               "same_grade": sum(r["same_grade"] for r in rows),
               "tokens_a": tokens_a, "tokens_b": tokens_b,
               "only_in_a": len(set(a) - set(b)), "only_in_b": len(set(b) - set(a)),
               "correct_a": correct_a, "correct_b": correct_b,
               "solved_only_by_a": wins_a, "solved_only_by_b": wins_b,
               "sign_test_p": sign_test_p_value(wins_a, wins_b)}
    if args.json:
        print(json.dumps({"summary": summary, "problems": rows}, indent=1))
    else:
        print("| problem | same text | same grade | correct A/B | tokens A | tokens B | saved (A) |")
        print("| --- | --- | --- | --- | ---: | ---: | ---: |")
        for r in rows:
            print(f"| {r['problem_id']} | {'yes' if r['same_text'] else 'NO'} | {'yes' if r['same_grade'] else 'NO'} "
                  f"| {r['correct_a']}/{r['correct_b']} | {r['tokens_a']} | {r['tokens_b']} | {r['saved_a']} |")
        if not tokens_b or tokens_a == tokens_b:
            frac = ""
        elif tokens_a < tokens_b:
            frac = f" ({1 - tokens_a / tokens_b:.1%} fewer in A)"
        else:
            frac = f" (A used {tokens_a / tokens_b:.2f}x B's)"
        print(f"{summary['compared']} compared: {n_same} identical texts, {summary['same_grade']} same grades; "
              f"tokens {tokens_a} vs {tokens_b}{frac}")
        n = len(rows)
        if n:
            print(f"accuracy A {correct_a}/{n} ({correct_a / n:.1%}), B {correct_b}/{n} ({correct_b / n:.1%}); "
                  f"only A solved {wins_a}, only B {wins_b}: sign test p = {summary['sign_test_p']:.3f}; "
                  f"tokens per problem A {tokens_a / n:.0f}, B {tokens_b / n:.0f}")
    if args.method_b and args.method_b != args.method:
        return 0
    return 0 if n_same == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
