"""Power sampling for language models on llama.cpp.

Draws whole completions x from pi(x) ∝ p(x | prompt)^alpha with a Metropolis-Hastings chain over
blocks of tokens (ref: arXiv 2510.14901, Alg. 1), on a GGUF model through llama.cpp.

    >>> import powersample
    >>> model, tokenizer = powersample.load_model_and_tokenizer()      # the default, qwen2.5-coder-0.5b
    >>> r = powersample.power_sample(model, tokenizer, "What is 7 * 8?", max_len=32, seed=1)
    >>> r.text, r.log_likelihood, r.acceptance_rate

- load_model_and_tokenizer(name_or_path): a catalogue name (see models()) or a .gguf path.
- power_sample(model, tokenizer, prompt, ...): the seed's one-call API; one chain.
- PowerSampler(model, tokenizer): keeps one llama.cpp context for many calls; .power_sample(),
  .generate(method=...), .batch(prompts) (continuous batching of many prompts), .score().
- Results are SampleResult objects: text, tokens, log_likelihood, acceptance_rate, trace, seed.

Threads: sampling releases the GIL; one PowerSampler runs one call at a time (concurrent calls
on the same sampler wait for each other); use one sampler per thread to run in parallel.
Errors: bad arguments raise ValueError naming the parameter (in the message and as `.field`);
other failures RuntimeError.
Ctrl-C during sampling stops the run and raises KeyboardInterrupt.
"""

from __future__ import annotations

import os
import secrets
import sys
from dataclasses import dataclass, field
from typing import Callable, List, Optional, Sequence, Tuple, Union

from . import _powersample as _ext
from ._powersample import Model, Progress, set_log_level, LogLevel

__all__ = [
    "Model",
    "Tokenizer",
    "PowerSampler",
    "SampleResult",
    "Step",
    "CatalogEntry",
    "Progress",
    "load_model_and_tokenizer",
    "power_sample",
    "models",
    "models_directory",
    "default_model_name",
    "set_log_level",
    "LogLevel",
]

default_model_name: str = _ext.default_model_name

METHODS = ("power", "sample", "greedy", "low-temp", "power-entropy", "smc", "sps", "best-of-n")
# Per-method settings accepted through method_options=, by method: the knobs of its group in the
# knob table (include/powersample/knobs.h), by their JSON names ({"particles": 16} for smc).
_GROUP_OF_METHOD = {m: _ext.knob_group(m) for m in METHODS if _ext.knob_group(m)}
METHOD_OPTIONS = {method: tuple(key for group_, key, *_ in _ext.knobs() if group_ == group)
                  for method, group in _GROUP_OF_METHOD.items()}

# The C++ library names some parameters after its own fields; its messages are translated so
# that a ValueError names the keyword the Python caller actually passed.
_CPP_TO_PY_NAMES = {"max_tokens": "max_len", "chains": "n_chains"}


def _bad(field: str, message: str) -> ValueError:
    """A ValueError naming `field` in its message and as `.field`, as the library's are."""
    e = ValueError(message)
    e.field = field
    return e


def _translate_value_error(e: ValueError) -> ValueError:
    # The library's ValueError carries the field at fault (`e.field`); name the keyword instead.
    cpp_name = getattr(e, "field", "")
    py_name = _CPP_TO_PY_NAMES.get(cpp_name)
    if py_name is None:
        return e
    message = str(e)
    return _bad(py_name, py_name + message[len(cpp_name):] if message.startswith(cpp_name + " ")
                else py_name + ": " + message)


@dataclass(frozen=True)
class CatalogEntry:
    """A model the project knows by name; `cached` says whether its file is downloaded."""

    name: str
    file: str
    description: str
    source: str
    chat: bool
    path: str
    cached: bool


def models_directory() -> str:
    """$POWERSAMPLE_CACHE/models, else $XDG_CACHE_HOME/powersample/models, else ~/.cache/powersample/models."""
    return _ext.models_directory()


def models() -> List[CatalogEntry]:
    """The model catalogue, each entry with its expected path and whether it is cached."""
    directory = _ext.models_directory()
    out = []
    for e in _ext.model_catalog():
        path = os.path.join(directory, e.file)
        out.append(CatalogEntry(e.name, e.file, e.description, e.source, e.chat, path, os.path.isfile(path)))
    return out


class Tokenizer:
    """The tokenizer and chat template of a loaded Model (the same C++ object underneath)."""

    def __init__(self, model: Model):
        self.model = model

    def encode(self, text: str, add_special: bool = True) -> List[int]:
        """Text -> token ids; add_special prepends BOS where the model wants one."""
        return self.model.tokenize(text, add_special)

    def decode(self, ids: Sequence[int]) -> str:
        """Token ids -> text; end-of-generation and other special tokens are not rendered."""
        return self.model.detokenize(list(ids))

    def apply_chat_template(self, message: str, system: Optional[str] = None) -> str:
        """Wraps one user message in the model's chat template with the assistant turn opened.

        Raises RuntimeError when the model has no chat template."""
        return self.model.format_chat(message, system or "")

    @property
    def has_chat_template(self) -> bool:
        return self.model.has_chat_template()

    @property
    def vocab_size(self) -> int:
        return self.model.n_vocab

    def __repr__(self) -> str:
        return f"Tokenizer({self.model.path!r})"


def load_model_and_tokenizer(name_or_path: Optional[str] = None, n_gpu_layers: int = 0) -> Tuple[Model, Tokenizer]:
    """Loads a GGUF model by catalogue name (default: qwen2.5-coder-0.5b) or path.

    Returns (model, tokenizer); both wrap the same llama.cpp model. n_gpu_layers: layers to
    offload to a GPU (-1 = all) when llama.cpp was built with one. Raises ValueError when the
    model is neither a file nor a downloaded catalogue model."""
    model = Model.load(name_or_path or default_model_name, n_gpu_layers)
    return model, Tokenizer(model)


@dataclass(frozen=True)
class Step:
    """One Metropolis-Hastings step of a chain (see sampling.h's step_record)."""

    block: int               # 1-based block index
    position: int            # first completion position that was resampled
    len_current: int         # completion length before the step
    len_proposal: int        # length of the proposed completion
    log_accept_ratio: float  # log A
    accepted: bool
    log_p_after: float       # log p(x | prompt) of the state after the step
    log_p_suffix_current: float = 0.0   # sum of log p over the old suffix (positions >= position)
    log_p_suffix_proposal: float = 0.0  # the same over the proposed suffix


@dataclass(frozen=True)
class SampleResult:
    """One completion and how it was sampled."""

    text: str                    # completion text (end-of-generation token not rendered)
    tokens: List[int]            # completion tokens, EOG included if drawn
    token_log_p: List[float] = field(repr=False)  # log p(x_i | prompt, x_<i) under the base model
    log_likelihood: float        # log p(x | prompt) = sum(token_log_p)
    n_proposals: int
    n_accepted: int
    n_tokens_generated: int      # every token drawn, rejected proposals included
    n_tokens_decoded: int        # tokens through the model for this chain
    finish_reason: str           # "eog", "stop" (a stop string), "length" or "cancelled"
    trace: List[Step] = field(repr=False)
    seed: int                    # pass it back to reproduce this result
    method: str
    n_prompt_tokens: int
    wall_seconds: float          # the whole request (all its chains)
    prompt: str = field(repr=False, default="")  # the prompt as sampled from (chat-formatted or not)
    n_early_rejections: int = 0  # MH proposals stopped early, once they could no longer be accepted
    n_tokens_saved: int = 0      # proposal tokens those stops did not decode (an upper bound)

    @property
    def acceptance_rate(self) -> float:
        """n_accepted / n_proposals (0 when there were no proposals)."""
        return self.n_accepted / self.n_proposals if self.n_proposals else 0.0

    def __str__(self) -> str:
        # The completion, so that the original demo's print(power_sample(...)) prints its text;
        # repr() still shows the whole record.
        return self.text


def _to_result(g, chain: int, seed: int, method: str, prompt: str) -> SampleResult:
    c = g.chains[chain]
    trace = [Step(s.block, s.position, s.len_current, s.len_proposal, s.log_accept_ratio, s.accepted, s.log_p_after,
                  s.log_p_suffix_current, s.log_p_suffix_proposal)
             for s in c.trace]
    return SampleResult(c.text, list(c.tokens), list(c.token_log_p), c.log_p, c.n_proposals, c.n_accepted,
                        c.n_tokens_generated, c.n_tokens_decoded, c.finish, trace, seed, method,
                        g.n_prompt_tokens, g.wall_seconds, prompt, c.n_early_rejections, c.n_tokens_saved)


def _random_seed() -> int:
    # 32 bits: short enough to copy into a command line (power-sampling -s SEED).
    return secrets.randbits(32)


class _ProgressBar:
    """Progress of one request: tqdm when installed, else one rewritten stderr line."""

    def __init__(self, description: str):
        self.description = description
        self.bar = None
        self.units_done = 0
        try:
            import tqdm  # noqa: F401
            self.tqdm = tqdm.tqdm
        except ImportError:
            self.tqdm = None

    def __call__(self, p: Progress) -> None:
        # One unit per block extension and per MH step: the schedule's whole work is known
        # up front, though an end-of-generation token may finish it early.
        per_block = p.n_steps + 1
        total = max(1, p.n_blocks * per_block)
        done = total if p.done else min(total, (p.block - 1) * per_block + 1 + p.step)
        status = f"len {p.length} accepted {p.n_accepted}/{p.n_proposals}"
        if self.tqdm is not None:
            if self.bar is None:
                self.bar = self.tqdm(total=total, desc=self.description, unit="step", leave=True)
            self.bar.set_postfix_str(status, refresh=False)
            self.bar.update(done - self.units_done)
        else:
            sys.stderr.write(f"\r{self.description}: block {p.block}/{p.n_blocks} step {p.step}/{p.n_steps} {status}")
            if p.done:
                sys.stderr.write("\n")
            sys.stderr.flush()
        self.units_done = done

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class PowerSampler:
    """Samples from a model with one llama.cpp context, reused across calls.

    threads: CPU threads for llama.cpp (None = all cores). On a busy machine fewer threads can be
    much faster: llama.cpp's workers spin while they wait for each other. n_ctx: KV-cache cells
    (0 = sized for each call). n_batch: tokens per llama_decode call. recompute_prefix: re-decode
    the prompt and prefix for every proposal instead of sharing them in the KV cache (slower,
    equivalent; the paper's reference behaviour and a baseline)."""

    def __init__(self, model: Model, tokenizer: Optional[Tokenizer] = None, threads: Optional[int] = None,
                 n_ctx: int = 0, n_batch: int = 512, recompute_prefix: bool = False):
        if threads is not None and threads < 1:
            raise _bad("threads", f"threads = {threads}: must be >= 1 (None = all cores)")
        self.model = model
        self.tokenizer = tokenizer or Tokenizer(model)
        self._sampler = _ext.Sampler(model, n_threads=threads or 0, n_ctx=n_ctx, n_batch=n_batch,
                                     recompute_prefix=recompute_prefix)

    def _format(self, prompt: str, chat: Optional[bool]) -> str:
        if not isinstance(prompt, str):
            raise TypeError(f"prompt: expected str, got {type(prompt).__name__}")
        if not prompt:
            raise _bad("prompt", "prompt: empty")
        if chat is None:
            chat = self.model.has_chat_template()
        return self.model.format_chat(prompt) if chat else prompt

    def _prompt(self, prompt: Union[str, Sequence[int]], chat: Optional[bool]):
        """(what to sample from, the prompt as text). Token ids are used exactly as given (no chat
        template, no BOS). A chat prompt is tokenized with only the template's own markers parsed as
        special tokens (Model.tokenize_chat), so text such as '<|im_end|>' in it stays text and cannot
        forge a turn; a raw prompt string is tokenized by the library, with BOS."""
        if not isinstance(prompt, str):
            return list(prompt), self.model.detokenize(list(prompt))
        text = self._format(prompt, chat)
        if chat is None:
            chat = self.model.has_chat_template()
        return (self.model.tokenize_chat(prompt) if chat else text), text

    @staticmethod
    def _params(method: str, alpha: float, block_size: int, steps: int, max_len: int, temperature: Optional[float],
                top_k: int, top_p: float, min_p: float, seed: Optional[int], n_chains: int, trace: bool,
                method_options: Optional[dict] = None):
        if method not in METHODS:
            raise _bad("method", f"method = {method!r}: unknown (valid: {', '.join(METHODS)})")
        if temperature is not None and not temperature > 0:
            raise _bad("temperature", f"temperature = {temperature}: must be > 0 (None = the method's default)")
        if seed is None:
            seed = _random_seed()
        elif not 0 <= seed < 2**64:
            raise _bad("seed", f"seed = {seed}: must be in [0, 2**64)")
        p = _ext.SamplingParams()
        p.method = _ext.method_from_name(method)
        for name, value in (("alpha", alpha), ("block_size", block_size), ("steps", steps), ("max_len", max_len),
                            ("top_k", top_k), ("n_chains", n_chains)):
            # nanobind would raise a TypeError with no name in it for an out-of-range int.
            if isinstance(value, int) and not -2**31 <= value < 2**31:
                raise _bad(name, f"{name} = {value}: out of range")
        p.alpha = float(alpha)
        p.block_size = block_size
        p.n_steps_per_block = steps
        p.max_new_tokens = max_len
        p.temperature = 0.0 if temperature is None else float(temperature)
        p.top_k = top_k
        p.top_p = float(top_p)
        p.min_p = float(min_p)
        p.seed = seed
        p.n_chains = n_chains
        p.record_trace = trace
        for name, value in (method_options or {}).items():
            if name not in METHOD_OPTIONS.get(method, ()):
                valid = ", ".join(METHOD_OPTIONS.get(method, ())) or "none"
                raise _bad(name, f"method_options: {name!r} is not a setting of method {method!r} (valid: {valid})")
            _ext.set_knob(p, _GROUP_OF_METHOD[method] + "." + name, value)
        try:
            _ext.validate(p)
        except ValueError as e:
            raise _translate_value_error(e) from None
        return p

    def generate_chains(self, prompt: Union[str, Sequence[int]], method: str = "power", *, alpha: float = 4.0, block_size: int = 64,
                        steps: int = 5, max_len: int = 256, temperature: Optional[float] = None, top_k: int = 0,
                        top_p: float = 1.0, min_p: float = 0.0, seed: Optional[int] = None, n_chains: int = 1,
                        trace: bool = True, chat: Optional[bool] = None, show_progress: bool = False,
                        on_progress: Optional[Callable[[Progress], None]] = None,
                        method_options: Optional[dict] = None) -> List[SampleResult]:
        """Like generate(), with n_chains independent chains of the same prompt; one result each."""
        params = self._params(method, alpha, block_size, steps, max_len, temperature, top_k, top_p, min_p, seed,
                              n_chains, trace, method_options)
        source, shown = self._prompt(prompt, chat)
        bar = _ProgressBar(method) if show_progress else None
        callback = on_progress
        if bar is not None:
            callback = bar if on_progress is None else (lambda p: (bar(p), on_progress(p)))
        try:
            if isinstance(source, str):
                g = self._sampler.generate(source, params, callback)
            else:
                g = self._sampler.generate_tokens(source, params, callback)
        except ValueError as e:
            raise _translate_value_error(e) from None
        finally:
            if bar is not None:
                bar.close()
        return [_to_result(g, i, params.seed, method, shown) for i in range(len(g.chains))]

    def generate(self, prompt: Union[str, Sequence[int]], method: str = "power", *, alpha: float = 4.0, block_size: int = 64,
                 steps: int = 5, max_len: int = 256, temperature: Optional[float] = None, top_k: int = 0,
                 top_p: float = 1.0, min_p: float = 0.0, seed: Optional[int] = None, trace: bool = True,
                 chat: Optional[bool] = None, show_progress: bool = False,
                 on_progress: Optional[Callable[[Progress], None]] = None,
                 method_options: Optional[dict] = None) -> SampleResult:
        """Samples one completion of `prompt` (a string, or token ids used exactly as given).

        method: "power" (MH power sampling, the default), "sample" (plain sampling at
        `temperature`, default 1), "greedy" (argmax), "low-temp" (plain sampling at 1/alpha), or
        one of the faster samplers of docs/methods.md: "power-entropy" (MH with entropy-guided
        cuts), "smc" (Power-SMC), "sps" (Scalable Power Sampling, approximate), "best-of-n".
        method_options: their settings by name, e.g. {"n_particles": 16} for smc
        (METHOD_OPTIONS lists them).
        alpha: exponent of the target p^alpha (> 0). block_size: tokens per block (>= 1).
        steps: MH steps per block (>= 0). max_len: cap on new tokens (>= 1). temperature: the
        proposal's (None = 1/alpha for power and low-temp, 1 for sample). top_k/top_p/min_p truncate
        the proposal (off by default). seed: None draws one, recorded on the result. trace: keep
        the per-step trace. chat: wrap the prompt in the model's chat template (None = when it has
        one). show_progress: a tqdm bar on stderr. on_progress: called after every block and step."""
        return self.generate_chains(prompt, method, alpha=alpha, block_size=block_size, steps=steps,
                                    max_len=max_len, temperature=temperature, top_k=top_k, top_p=top_p,
                                    min_p=min_p, seed=seed, n_chains=1, trace=trace, chat=chat,
                                    show_progress=show_progress, on_progress=on_progress,
                                    method_options=method_options)[0]

    def power_sample(self, prompt: str, alpha: float = 4.0, block_size: int = 64, steps: int = 5,
                     max_len: int = 256, temperature: Optional[float] = None, show_progress: bool = False,
                     seed: Optional[int] = None, chat: Optional[bool] = None) -> SampleResult:
        """The seed's API: one power-sampling chain (see generate() for the parameters)."""
        return self.generate(prompt, "power", alpha=alpha, block_size=block_size, steps=steps, max_len=max_len,
                             temperature=temperature, seed=seed, chat=chat, show_progress=show_progress)

    def batch(self, prompts: Sequence[str], method: str = "power", *, alpha: float = 4.0, block_size: int = 64,
              steps: int = 5, max_len: int = 256, temperature: Optional[float] = None, top_k: int = 0,
              top_p: float = 1.0, min_p: float = 0.0, seed: Union[None, int, Sequence[int]] = None,
              trace: bool = True, chat: Optional[bool] = None, show_progress: bool = False,
              on_result: Optional[Callable[[int, SampleResult], None]] = None) -> List[SampleResult]:
        """Samples one completion per prompt, all through one context with continuous batching.

        Results come back in input order; on_result(index, result) is called as each one finishes
        (in finishing order). seed: None draws one per prompt; an int seeds prompt i with
        seed + i; or a sequence of seeds, one per prompt. The other parameters as in generate()."""
        if isinstance(prompts, str):
            raise TypeError("prompts: expected a sequence of strings, got one str")
        prompts = list(prompts)
        if seed is None:
            seeds = [None] * len(prompts)
        elif isinstance(seed, int):
            seeds = [seed + i for i in range(len(prompts))]
        else:
            seeds = list(seed)
            if len(seeds) != len(prompts):
                raise _bad("seed", f"seed: {len(seeds)} seeds for {len(prompts)} prompts")
        requests, shown = [], []
        for prompt, s in zip(prompts, seeds):
            params = self._params(method, alpha, block_size, steps, max_len, temperature, top_k, top_p, min_p, s, 1,
                                  trace)
            if not isinstance(prompt, str):
                raise TypeError(f"prompt: expected str, got {type(prompt).__name__}")
            source, text = self._prompt(prompt, chat)
            # One call takes one kind: token ids throughout (a raw string is tokenized here as the
            # library would, with BOS).
            requests.append((source if not isinstance(source, str) else self.model.tokenize(source, True), params))
            shown.append(text)

        bar = None
        if show_progress:
            try:
                import tqdm
                bar = tqdm.tqdm(total=len(requests), desc=method, unit="prompt")
            except ImportError:
                pass

        def finished(index, g):
            r = _to_result(g, 0, requests[index][1].seed, method, shown[index])
            if bar is not None:
                bar.update(1)
            elif show_progress:
                sys.stderr.write(f"{method}: prompt {index} done ({r.finish_reason}, {len(r.tokens)} tokens)\n")
            if on_result is not None:
                on_result(index, r)

        try:
            results = self._sampler.generate_batch_tokens(requests, None, finished)
        except ValueError as e:
            raise _translate_value_error(e) from None
        finally:
            if bar is not None:
                bar.close()
        return [_to_result(g, 0, req[1].seed, method, text) for g, req, text in zip(results, requests, shown)]

    def score(self, prompt: Union[str, Sequence[int]], completion: Union[str, Sequence[int]],
              chat: Optional[bool] = None) -> List[float]:
        """log p(x_i | prompt, x_<i) of each completion token, in a fresh pass.

        Strings are tokenized (the prompt chat-formatted as in generate(), with BOS; the
        completion without special tokens); token lists are used as they are."""
        if isinstance(prompt, str):
            source, _ = self._prompt(prompt, chat)
            prompt = source if not isinstance(source, str) else self.model.tokenize(source, True)
        if isinstance(completion, str):
            completion = self.model.tokenize(completion, False)
        return self._sampler.score(list(prompt), list(completion))


def power_sample(model: Model, tokenizer: Optional[Tokenizer], prompt: str, alpha: float = 4.0, block_size: int = 64,
                 steps: int = 5, max_len: int = 256, temperature: Optional[float] = None, show_progress: bool = False,
                 seed: Optional[int] = None, chat: Optional[bool] = None,
                 threads: Optional[int] = None) -> SampleResult:
    """Power-samples one completion of `prompt`: the seed's one-call API.

    The prompt is wrapped in the model's chat template when it has one (chat=None) or when
    chat=True. alpha: exponent of the target p^alpha; block_size: tokens per block; steps: MH steps
    per block; max_len: cap on new tokens; temperature: the proposal's (None = 1/alpha); seed:
    None draws one (recorded as result.seed). Creates a llama.cpp context per call: use
    PowerSampler for many calls."""
    return PowerSampler(model, tokenizer, threads=threads).power_sample(
        prompt, alpha=alpha, block_size=block_size, steps=steps, max_len=max_len, temperature=temperature,
        show_progress=show_progress, seed=seed, chat=chat)
