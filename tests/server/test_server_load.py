"""Bounded load test: 32 concurrent OpenAI-style clients against one power-sampling-server.
Every request must be answered with 200, and every answer must be the one for its own request
(each client sends a token-id prompt of a distinct length, which comes back as prompt_tokens, and a
distinct seed that comes back under power_sampling). Prints latency percentiles."""
import json
import statistics
import threading
import time
import unittest

from server_fixture import Server

N_CLIENTS = 32


class ServerLoad(unittest.TestCase):
    def test_32_concurrent_clients(self):
        server = Server("--parallel", "16", "--max-tokens", "8", "--max-chains", "1", "--max-prompt-tokens", "64",
                        "--max-queue", "64")
        try:
            results = [None] * N_CLIENTS
            barrier = threading.Barrier(N_CLIENTS)

            def client(i):
                # Token ids of ordinary English words, repeated to length i + 1.
                prompt = [(504 + 37 * k) % 20000 + 100 for k in range(i + 1)]
                body = {"prompt": prompt, "max_tokens": 8, "block_size": 4, "steps": 2, "seed": 1000 + i}
                barrier.wait()
                t0 = time.perf_counter()
                status, _, data = server.post("/v1/completions", body, timeout=600)
                results[i] = (status, data, time.perf_counter() - t0)

            threads = [threading.Thread(target=client, args=(i,)) for i in range(N_CLIENTS)]
            wall0 = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            wall = time.perf_counter() - wall0

            latencies = []
            for i, (status, data, seconds) in enumerate(results):
                self.assertEqual(status, 200, data)
                body = json.loads(data)
                self.assertEqual(body["usage"]["prompt_tokens"], i + 1, "answer for another request")
                self.assertEqual(body["power_sampling"]["seed"], 1000 + i, "answer for another request")
                self.assertEqual(len(body["choices"]), 1)
                c = body["choices"][0]
                self.assertIn(c["finish_reason"], ("stop", "length"))
                self.assertLessEqual(c["power_sampling"]["completion_tokens"], 8)
                self.assertIsInstance(c["text"], str)
                latencies.append(seconds)
            latencies.sort()

            def pct(p):
                return latencies[min(len(latencies) - 1, int(round(p / 100 * (len(latencies) - 1))))]

            print(f"\n{N_CLIENTS} concurrent clients, 8 tokens, B 4, N 2: all 200 in {wall:.2f} s wall; "
                  f"latency p50 {pct(50):.2f} s, p90 {pct(90):.2f} s, p99 {pct(99):.2f} s, "
                  f"max {latencies[-1]:.2f} s, mean {statistics.mean(latencies):.2f} s")
            h = server.health()
            self.assertEqual(h["requests_in_flight"], 0)
            self.assertEqual(h["requests_completed"], N_CLIENTS)
        finally:
            server.stop()


if __name__ == "__main__":
    unittest.main(verbosity=2)
