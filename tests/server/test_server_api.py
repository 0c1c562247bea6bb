"""power-sampling-server's API against an OpenAI-style client (urllib): completions, chat,
streaming, token-id prompts, the 4xx/413/401/503 answers, and client disconnects freeing their
chains. Run by CTest (label model) with POWERSAMPLE_SERVER set."""
import http.client
import json
import time
import unittest

from server_fixture import Server

LIMITS = ["--parallel", "2", "--max-tokens", "64", "--max-chains", "2", "--max-prompt-tokens", "128",
          "--max-body", "4096", "--max-queue", "8", "--max-request-tokens", "20000"]
# About a minute of work on one thread (it runs to the 64-token cap with seed 0).
LONG = {"prompt": "Here is a long list of numbers: 1, 2, 3, 4,", "max_tokens": 64, "block_size": 8, "steps": 32,
        "seed": 0}


class ServerAPI(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Server(*LIMITS)

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def test_health_and_models(self):
        status, body = self.server.get("/health")
        self.assertEqual(status, 200)
        self.assertEqual(body["status"], "ok")
        status, body = self.server.get("/v1/models")
        self.assertEqual(status, 200)
        self.assertEqual(body["object"], "list")
        self.assertIn("SmolLM2", body["data"][0]["id"])

    def test_completion_with_power_sampling_statistics(self):
        status, _, body = self.server.post_json("/v1/completions", {
            "prompt": "The capital of France is", "max_tokens": 12, "block_size": 4, "steps": 2, "seed": 7,
            "alpha": 4.0, "temperature": 0.25})
        self.assertEqual(status, 200, body)
        self.assertEqual(body["object"], "text_completion")
        choice = body["choices"][0]
        self.assertIsInstance(choice["text"], str)
        self.assertIn(choice["finish_reason"], ("stop", "length"))
        ps = body["power_sampling"]
        self.assertEqual(ps["method"], "power")
        self.assertEqual(ps["n_proposals"], 2 * 3 if choice["finish_reason"] == "length" else ps["n_proposals"])
        self.assertGreaterEqual(ps["n_tokens_generated"], body["usage"]["completion_tokens"])
        self.assertTrue(0.0 <= ps["acceptance_rate"] <= 1.0)
        self.assertEqual(body["usage"]["total_tokens"],
                         body["usage"]["prompt_tokens"] + body["usage"]["completion_tokens"])

    def test_same_seed_same_completion(self):
        req = {"prompt": "One, two, three,", "max_tokens": 8, "block_size": 4, "steps": 1, "seed": 11}
        a = self.server.post_json("/v1/completions", req)[2]
        b = self.server.post_json("/v1/completions", req)[2]
        self.assertEqual(a["choices"][0]["text"], b["choices"][0]["text"])
        # Without a seed every request draws its own, and says which.
        del req["seed"]
        seeds = {self.server.post_json("/v1/completions", req)[2]["power_sampling"]["seed"] for _ in range(2)}
        self.assertEqual(len(seeds), 2)

    def test_token_id_prompt_and_chains(self):
        status, _, body = self.server.post_json("/v1/completions", {
            "prompt": [504, 3575, 282, 4649, 314], "max_tokens": 6, "chains": 2, "steps": 1, "block_size": 3})
        self.assertEqual(status, 200, body)
        self.assertEqual(body["usage"]["prompt_tokens"], 5)
        self.assertEqual(len(body["choices"]), 2)
        self.assertEqual(body["power_sampling"]["chains"], 2)

    def test_chat_completion(self):
        status, _, body = self.server.post_json("/v1/chat/completions", {
            "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 2+2?"}],
            "max_tokens": 10, "steps": 1, "block_size": 5, "method": "power"})
        self.assertEqual(status, 200, body)
        self.assertEqual(body["object"], "chat.completion")
        self.assertEqual(body["choices"][0]["message"]["role"], "assistant")
        self.assertIsInstance(body["choices"][0]["message"]["content"], str)

    def test_other_methods(self):
        for method in ("sample", "greedy", "low-temp"):
            status, _, body = self.server.post_json("/v1/completions", {
                "prompt": "Hello", "max_tokens": 4, "method": method})
            self.assertEqual(status, 200, body)
            self.assertEqual(body["power_sampling"]["method"], method)

    def test_faster_methods_with_their_knobs(self):
        # The test server holds 2 x (1 + 2 x 2) + 3 = 13 KV sequences (3 kept for light requests):
        # smc with 4 particles needs 9.
        # A method's own knobs nest under its group, in the request as in the statistics.
        cases = [
            ({"method": "smc", "smc": {"particles": 4, "ess_threshold": 0.5, "alpha_ramp_tokens": 2}},
             {"smc": {"particles": 4, "ess_threshold": 0.5, "resample_interval": 1, "alpha_ramp_tokens": 2}}),
            ({"method": "sps", "block_size": 3, "sps": {"candidates": 2, "top_k": 1, "rollouts": 2, "lookahead": 3}},
             {"block_size": 3}),
            ({"method": "sps", "sps": {"top_k": 1, "candidates": 2, "rollouts": 2, "lookahead": 2,
                                       "proposal": "low-temp", "level": "token"}}, {}),
            ({"method": "power-entropy", "block_size": 3, "steps": 1, "power_entropy": {"beta": 2.0}},
             {"power_entropy": {"beta": 2.0, "floor": 0.1}}),
            ({"method": "best-of-n", "best_of_n": {"best_of": 3}}, {"best_of_n": {"best_of": 3}}),
        ]
        for fields, expect in cases:
            status, _, body = self.server.post_json("/v1/completions", {
                "prompt": "The capital of France is", "max_tokens": 6, "seed": 5, **fields})
            self.assertEqual(status, 200, body)
            ps = body["power_sampling"]
            self.assertEqual(ps["method"], fields["method"])
            for k, v in expect.items():
                self.assertEqual(ps[k], v, (fields, ps))
            if fields["method"] == "sps":
                for k, v in fields["sps"].items():
                    self.assertEqual(ps["sps"][k], v, (fields, ps))
            # Every particle, rollout and discarded sample counts: more than the answer's tokens.
            self.assertGreater(ps["n_tokens_generated"], body["usage"]["completion_tokens"], ps)
        # 7 particles need 15 sequences: refused up front, naming the knob.
        err = self.expect_400("/v1/completions", {"prompt": "x", "method": "smc", "smc": {"particles": 7}},
                              "smc.particles")
        self.assertIn("needs 15 KV sequences, the server holds 13", err["message"])
        self.expect_400("/v1/completions", {"prompt": "x", "method": "sps", "sps": {"rollouts": 1}}, "sps.rollouts")
        self.expect_400("/v1/completions", {"prompt": "x", "method": "sps", "sps": {"proposal": "q"}}, "sps.proposal")
        self.expect_400("/v1/completions", {"prompt": "x", "method": "smc", "smc": {"ess_threshold": 0}},
                        "smc.ess_threshold")

    def test_streaming_sends_progress_then_the_text(self):
        status, headers, data = self.server.post("/v1/completions", {
            "prompt": "Count: 1, 2, 3,", "max_tokens": 8, "block_size": 4, "steps": 2, "stream": True, "seed": 3})
        self.assertEqual(status, 200)
        self.assertTrue(headers["Content-Type"].startswith("text/event-stream"))
        events = [e[len("data: "):] for e in data.decode().split("\n\n") if e.startswith("data: ")]
        self.assertEqual(events[-1], "[DONE]")
        parsed = [json.loads(e) for e in events[:-1]]
        progress = [e for e in parsed if e["object"] == "power_sampling.progress"]
        self.assertGreaterEqual(len(progress), 4)
        self.assertEqual({p["block"] for p in progress}, {1, 2})
        self.assertTrue(any(p["step"] == 2 for p in progress))
        final = parsed[-1]
        self.assertEqual(final["object"], "text_completion")
        self.assertIn("text", final["choices"][0])
        # The streamed result is the one a plain request with the same seed returns.
        plain = self.server.post_json("/v1/completions", {
            "prompt": "Count: 1, 2, 3,", "max_tokens": 8, "block_size": 4, "steps": 2, "seed": 3})[2]
        self.assertEqual(plain["choices"][0]["text"], final["choices"][0]["text"])

    def test_text_cut_inside_a_character_is_valid_utf8(self):
        # SmolLM2's greedy first token here is the first byte of a Chinese character: one token
        # ends inside it, two complete it. Plain and streamed answers are 200 with valid UTF-8
        # (strict decoding below) and U+FFFD for the cut character.
        chinese = "小明有5个苹果，又买了3个。他现在有多少个苹果？请用中文回答。"
        for stream in (False, True):
            texts = []
            for n in (1, 2):
                status, _, data = self.server.post("/v1/chat/completions", {
                    "messages": [{"role": "user", "content": chinese}], "max_tokens": n, "method": "greedy",
                    "stream": stream})
                self.assertEqual(status, 200, data)
                decoded = data.decode("utf-8")  # strict: raises on invalid UTF-8
                if stream:
                    events = [e[len("data: "):] for e in decoded.split("\n\n") if e.startswith("data: ")]
                    texts.append(json.loads(events[-2])["choices"][0]["delta"]["content"])
                else:
                    texts.append(json.loads(decoded)["choices"][0]["message"]["content"])
            self.assertEqual(texts, ["\ufffd", "你"], stream)
        # The server is still up after the streamed one (it used to terminate on it).
        self.assertEqual(self.server.get("/health")[0], 200)

    def test_chat_streaming(self):
        status, _, data = self.server.post("/v1/chat/completions", {
            "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4, "stream": True, "steps": 1})
        self.assertEqual(status, 200)
        events = [e[len("data: "):] for e in data.decode().split("\n\n") if e.startswith("data: ")]
        final = json.loads(events[-2])
        self.assertEqual(final["object"], "chat.completion.chunk")
        self.assertEqual(final["choices"][0]["delta"]["role"], "assistant")

    def expect_400(self, path, body, field, raw=False):
        status, _, data = self.server.post(path, body, raw=raw)
        self.assertEqual(status, 400, data)
        err = json.loads(data)["error"]
        self.assertIn(field, err["message"])
        return err

    def test_bad_requests_name_the_field(self):
        c = "/v1/completions"
        self.expect_400(c, b'{"prompt": "x",', "body", raw=True)
        self.expect_400(c, b'[1, 2]', "body", raw=True)
        self.expect_400(c, {"max_tokens": 4}, "prompt")
        self.expect_400(c, {"prompt": 5}, "prompt")
        self.expect_400(c, {"prompt": ""}, "prompt")
        self.expect_400(c, {"prompt": "x", "max_tokens": "5"}, "max_tokens")
        self.expect_400(c, {"prompt": "x", "max_tokens": -1}, "max_tokens")
        self.expect_400(c, {"prompt": "x", "max_tokens": 0}, "max_tokens")
        self.expect_400(c, {"prompt": "x", "max_tokens": 10 ** 12}, "max_tokens")
        self.expect_400(c, {"prompt": "x", "max_tokens": 65}, "max_tokens")
        self.expect_400(c, {"prompt": "x", "alpha": -2}, "alpha")
        self.expect_400(c, {"prompt": "x", "alpha": "high"}, "alpha")
        self.expect_400(c, {"prompt": "x", "steps": -3}, "steps")
        self.expect_400(c, {"prompt": "x", "chains": 3}, "chains")
        self.expect_400(c, {"prompt": "x", "block_size": 0}, "block_size")
        self.expect_400(c, {"prompt": "x", "temperature": -1}, "temperature")
        self.expect_400(c, {"prompt": "x", "top_p": 0}, "top_p")
        self.expect_400(c, {"prompt": "x", "seed": -1}, "seed")
        self.expect_400(c, {"prompt": "x", "stream": "yes"}, "stream")
        self.expect_400(c, {"prompt": "x", "method": "beam"}, "method")
        self.expect_400(c, {"prompt": "x", "logit_bias": {"5": 2}}, "logit_bias")  # {} is accepted (neutral)
        self.expect_400(c, {"prompt": [1, -2]}, "prompt[1]")
        self.expect_400(c, {"prompt": [10 ** 9]}, "prompt[0]")
        self.expect_400(c, {"prompt": list(range(1, 200))}, "prompt")
        self.expect_400(c, {"prompt": "word " * 400}, "prompt")
        m = "/v1/chat/completions"
        self.expect_400(m, {"messages": []}, "messages")
        self.expect_400(m, {"messages": [{"role": "robot", "content": "x"}]}, "messages[0].role")
        self.expect_400(m, {"messages": [{"role": "user"}]}, "messages[0].content")
        self.expect_400(m, {"messages": [{"role": "user", "content": 3}]}, "messages[0].content")
        self.expect_400(m, {"prompt": "x", "messages": [{"role": "user", "content": "x"}]}, "prompt")

    def test_oversized_body_is_413(self):
        status, _, data = self.server.post("/v1/completions", {"prompt": "a" * 10000})
        self.assertEqual(status, 413)

    def test_unknown_endpoint_is_404(self):
        self.assertEqual(self.server.post("/v1/embeddings", {"input": "x"})[0], 404)

    def wait_until_idle(self, timeout):
        deadline = time.time() + timeout
        while time.time() < deadline:
            h = self.server.health()
            if h["requests_in_flight"] == 0:
                return h
            time.sleep(0.05)
        self.fail(f"still busy after {timeout} s: {self.server.health()}")

    def disconnect_after(self, body, seconds):
        conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=30)
        conn.request("POST", "/v1/completions", json.dumps(body), {"Content-Type": "application/json"})
        time.sleep(seconds)
        # On a loaded machine admission can take longer than `seconds`: wait for the chain to run.
        deadline = time.time() + 20
        while self.server.health()["requests_live"] != 1 and time.time() < deadline:
            time.sleep(0.05)
        self.assertEqual(self.server.health()["requests_live"], 1)
        conn.sock.close()
        conn.close()

    def test_client_disconnect_cancels_and_frees_the_chains(self):
        self.wait_until_idle(60)
        before = self.server.health()["requests_cancelled"]
        # 64 tokens with 32 steps per block takes far longer than the wait below. The wait is
        # generous (a loaded machine is slow to reach the next block boundary); what shows the
        # cancel is requests_cancelled, which a chain that ran to its end would not raise.
        start = time.time()
        self.disconnect_after(LONG, 0.5)
        after = self.wait_until_idle(10.0)
        self.assertEqual(after["requests_cancelled"], before + 1)
        self.assertEqual(after["requests_live"], 0)
        print(f"disconnect: chains freed {time.time() - start - 0.5:.2f} s after the client left")
        # The sequences are free again: a new request runs.
        self.assertEqual(self.server.post_json("/v1/completions", {"prompt": "Hi", "max_tokens": 2})[0], 200)

    def test_streaming_client_disconnect_cancels(self):
        self.wait_until_idle(60)
        before = self.server.health()["requests_cancelled"]
        self.disconnect_after(dict(LONG, stream=True), 0.5)
        after = self.wait_until_idle(10.0)
        self.assertEqual(after["requests_cancelled"], before + 1)


class ServerLimits(unittest.TestCase):
    def test_full_queue_is_503_with_retry_after(self):
        server = Server("--parallel", "1", "--max-tokens", "64", "--max-chains", "1", "--max-prompt-tokens", "64",
                        "--max-queue", "1", "--max-request-tokens", "20000")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
            conn.request("POST", "/v1/completions", json.dumps(LONG), {"Content-Type": "application/json"})
            deadline = time.time() + 10
            while server.health()["requests_in_flight"] < 1 and time.time() < deadline:
                time.sleep(0.02)
            status, headers, data = server.post("/v1/completions", {"prompt": "x", "max_tokens": 2})
            self.assertEqual(status, 503, data)
            self.assertEqual(headers.get("Retry-After"), "1")
            self.assertIn("busy", json.loads(data)["error"]["message"])
            conn.sock.close()
            conn.close()
            while server.health()["requests_in_flight"] > 0 and time.time() < deadline:
                time.sleep(0.02)
            self.assertEqual(server.post("/v1/completions", {"prompt": "x", "max_tokens": 2})[0], 200)
        finally:
            server.stop()

    def test_api_key(self):
        server = Server("--parallel", "1", "--max-tokens", "8", "--max-chains", "1", "--max-prompt-tokens", "32",
                        api_key="sekrit")
        try:
            self.assertEqual(server.post("/v1/completions", {"prompt": "x", "max_tokens": 2})[0], 200)
            status, _, _ = server.post("/v1/completions", {"prompt": "x"}, headers={"Authorization": "Bearer nope"})
            self.assertEqual(status, 401)
            server.api_key = None
            self.assertEqual(server.post("/v1/completions", {"prompt": "x"})[0], 401)
            self.assertEqual(server.get("/health")[0], 200)
        finally:
            server.stop()


if __name__ == "__main__":
    unittest.main(verbosity=2)
