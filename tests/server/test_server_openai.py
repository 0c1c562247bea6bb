"""power-sampling-server driven by the official OpenAI Python SDK (pinned in openai-requirements.txt):
chat and completions, streaming with include_usage, stop, logprobs, n, the power-sampling knobs
through extra_body, errors as the SDK's BadRequestError, and 32 concurrent SDK clients."""
import concurrent.futures
import math
import unittest

import openai
from openai import OpenAI

from server_fixture import Server

KNOBS = {"alpha": 4.0, "block_size": 4, "steps": 1, "seed": 3}


class OpenAIClientTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Server("--parallel", "8", "--max-queue", "64")
        cls.client = OpenAI(base_url=cls.server.url("/v1"), api_key="unused", max_retries=0, timeout=300)

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def chat(self, **kw):
        args = {"model": "m", "messages": [{"role": "user", "content": "Name a fruit."}], "max_tokens": 8}
        args.update(kw)
        return self.client.chat.completions.create(**args)

    def test_models(self):
        models = self.client.models.list()
        self.assertEqual(len(models.data), 1)

    def test_chat_with_power_knobs(self):
        r = self.chat(extra_body=KNOBS)
        self.assertEqual(r.object, "chat.completion")
        self.assertEqual(r.choices[0].message.role, "assistant")
        self.assertIsInstance(r.choices[0].message.content, str)
        ps = r.model_dump()["power_sampling"]
        self.assertEqual(ps["alpha"], 4.0)
        self.assertEqual(ps["block_size"], 4)
        self.assertEqual(ps["seed"], 3)
        # usage counts the completion; power_sampling counts every token the chain generated.
        self.assertGreaterEqual(ps["n_tokens_generated"], r.usage.completion_tokens)
        self.assertEqual(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens)
        self.assertEqual(self.chat(extra_body=KNOBS).choices[0].message.content, r.choices[0].message.content)

    def test_completions_and_n(self):
        r = self.client.completions.create(model="m", prompt="One, two, three,", max_tokens=6, n=2, extra_body=KNOBS)
        self.assertEqual(r.object, "text_completion")
        self.assertEqual([c.index for c in r.choices], [0, 1])
        for c in r.choices:
            self.assertIsInstance(c.text, str)

    def test_max_completion_tokens(self):
        r = self.chat(max_tokens=None, max_completion_tokens=3, extra_body={"method": "greedy"})
        self.assertEqual(r.usage.completion_tokens, 3)
        self.assertEqual(r.choices[0].finish_reason, "length")

    def test_streaming_with_include_usage(self):
        chunks = list(self.chat(stream=True, stream_options={"include_usage": True}, extra_body=KNOBS))
        self.assertGreaterEqual(len(chunks), 2)
        last, final = chunks[-1], chunks[-2]
        self.assertEqual(last.choices, [])
        self.assertIsNotNone(last.usage)
        self.assertGreater(last.usage.completion_tokens, 0)
        self.assertEqual(final.choices[0].delta.role, "assistant")
        plain = self.chat(extra_body=KNOBS)
        self.assertEqual(final.choices[0].delta.content, plain.choices[0].message.content)
        self.assertEqual(last.usage.completion_tokens, plain.usage.completion_tokens)

    def test_stop(self):
        base = self.client.completions.create(model="m", prompt="Count: 1, 2, 3,", max_tokens=16,
                                              extra_body={"method": "greedy"})
        self.assertIn(" 5", base.choices[0].text)
        for method in ("greedy", "power"):
            r = self.client.completions.create(model="m", prompt="Count: 1, 2, 3,", max_tokens=16, stop=[" 5", "zz"],
                                               extra_body={**KNOBS, "method": method})
            c = r.choices[0]
            self.assertNotIn(" 5", c.text, method)
            if method == "greedy":
                self.assertEqual(c.finish_reason, "stop")
                self.assertEqual(c.text, base.choices[0].text[:base.choices[0].text.index(" 5")])

    def test_logprobs(self):
        r = self.chat(logprobs=True, extra_body={"method": "greedy"})
        content = r.choices[0].logprobs.content
        self.assertEqual("".join(t.token for t in content), r.choices[0].message.content)
        total = sum(t.logprob for t in content)
        self.assertAlmostEqual(total, r.model_dump()["choices"][0]["power_sampling"]["log_p"], places=6)
        self.assertTrue(all(t.logprob <= 0 for t in content))
        c = self.client.completions.create(model="m", prompt="One, two,", max_tokens=4, logprobs=0,
                                           extra_body={"method": "greedy"})
        self.assertEqual("".join(c.choices[0].logprobs.tokens), c.choices[0].text)
        self.assertEqual(len(c.choices[0].logprobs.token_logprobs), 4)
        self.assertIsNone(c.choices[0].logprobs.top_logprobs)

    def test_top_logprobs(self):
        # Greedy draws the argmax, so each position's first alternative is the drawn token, with
        # (up to float rounding between the two passes) the same log p; the list is sorted.
        r = self.chat(logprobs=True, top_logprobs=3, extra_body={"method": "greedy"})
        content = r.choices[0].logprobs.content
        self.assertGreater(len(content), 0)
        for t in content:
            self.assertEqual(len(t.top_logprobs), 3)
            self.assertEqual(t.top_logprobs[0].token, t.token)
            self.assertAlmostEqual(t.top_logprobs[0].logprob, t.logprob, places=3)
            lps = [a.logprob for a in t.top_logprobs]
            self.assertEqual(lps, sorted(lps, reverse=True))
            self.assertLess(sum(math.exp(x) for x in lps), 1.0 + 1e-6)
        # Power sampling: the drawn token need not be the likeliest, but it is never more likely
        # than the first alternative; completions give a token -> logprob dict per position.
        c = self.client.completions.create(model="m", prompt="One, two,", max_tokens=6, logprobs=2,
                                           extra_body={**KNOBS, "method": "power"})
        lp = c.choices[0].logprobs
        self.assertEqual(len(lp.top_logprobs), len(lp.tokens))
        for tok, tok_lp, top in zip(lp.tokens, lp.token_logprobs, lp.top_logprobs):
            self.assertLessEqual(len(top), 2)
            self.assertGreaterEqual(max(top.values()), tok_lp - 1e-3)
            if len(top) == 2 and tok_lp > min(top.values()) + 1e-3:
                self.assertIn(tok, top)

    def test_neutral_fields_are_accepted(self):
        r = self.chat(presence_penalty=0, frequency_penalty=0, response_format={"type": "text"}, logit_bias={},
                      user="someone", extra_body={"method": "greedy"})
        self.assertEqual(r.object, "chat.completion")

    def test_errors_are_bad_request_naming_the_field(self):
        for kw, field in ((dict(extra_body={"alpha": -1}), "alpha"), (dict(presence_penalty=0.5), "presence_penalty"),
                          (dict(extra_body={"frobnicate": 1}), "frobnicate"), (dict(max_tokens=0), "max_tokens")):
            with self.assertRaises(openai.BadRequestError) as ctx:
                self.chat(**kw)
            self.assertIn(field, str(ctx.exception), kw)

    def test_32_concurrent_clients(self):
        prompts = ["Name a fruit.", "Say hi in Chinese.", "Write an emoji.", "Count to three."]

        def one(i):
            client = OpenAI(base_url=self.server.url("/v1"), api_key="unused", max_retries=0, timeout=600)
            raw = client.chat.completions.with_raw_response.create(
                model="m", messages=[{"role": "user", "content": prompts[i % 4]}], max_tokens=1 + i % 6,
                extra_body={"method": "sample", "seed": i})
            raw.http_response.content.decode("utf-8")  # strict: valid UTF-8 or it raises
            return raw.http_response.status_code, raw.parse().choices[0].message.content

        with concurrent.futures.ThreadPoolExecutor(32) as pool:
            results = list(pool.map(one, range(32)))
        self.assertEqual([s for s, _ in results], [200] * 32)
        self.assertTrue(all(isinstance(t, str) for _, t in results))


if __name__ == "__main__":
    unittest.main()
