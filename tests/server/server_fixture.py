"""Starts power-sampling-server on a free loopback port for the server tests (CTest label model)."""
import http.client
import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request

SERVER = os.environ["POWERSAMPLE_SERVER"]
MODEL = os.environ.get("POWERSAMPLE_TEST_MODEL", "smollm2-135m")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, *args, api_key=None):
        self.port = free_port()
        self.api_key = api_key
        cmd = [SERVER, "-m", MODEL, "--port", str(self.port), "-t", "1", *args]
        if api_key:
            cmd += ["--api-key", api_key]
        self.log = open(f"server-{self.port}.log", "w")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 120
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}; see {self.log.name}")
            try:
                if self.get("/health")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError("server did not come up")

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def _headers(self):
        h = {"Content-Type": "application/json"}
        if self.api_key:
            h["Authorization"] = f"Bearer {self.api_key}"
        return h

    def get(self, path):
        req = urllib.request.Request(self.url(path), headers=self._headers())
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def post(self, path, body, raw=False, headers=None, timeout=300):
        data = body if raw else json.dumps(body).encode()
        h = self._headers()
        h.update(headers or {})
        req = urllib.request.Request(self.url(path), data=data, headers=h, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    def post_json(self, path, body, **kw):
        status, headers, data = self.post(path, body, **kw)
        return status, headers, json.loads(data)

    def health(self):
        return self.get("/health")[1]
