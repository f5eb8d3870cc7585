"""Prompts as A1111 users write them: a character prompt builder, attention weights, long prompts.

``(text:1.3)``, ``((text))`` and ``[text]`` change how strongly the words condition the image, not
the literal text: the brackets are parsed away, each token gets a multiplier, and the CLIP output
is scaled per token and re-normalised to its original mean (A1111's method). Prompts longer than
75 tokens are split into 75-token chunks (breaking at a recent comma, or at ``BREAK``), each
encoded with its own start/end tokens and concatenated, so nothing past token 77 is dropped.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from bump_contracts.bump_job import DEFAULT_NEGATIVE_PROMPT

DEFAULT_NEGATIVE = DEFAULT_NEGATIVE_PROMPT  # the job contract's
CHUNK_LENGTH = 75
COMMA_BACKTRACK = 20  # A1111's default "comma padding backtrack"

_RE_ATTENTION = re.compile(
    r"""
\\\(|\\\)|\\\[|\\]|\\\\|\\|\(|\[|:\s*([+-]?[.\d]+)\s*\)|\)|]|[^\\()\[\]:]+|:
""",
    re.X,
)
_RE_BREAK = re.compile(r"\s*\bBREAK\b\s*", re.S)


def parse_prompt_attention(text: str) -> list[tuple[str, float]]:
    """Split A1111 prompt text into (text, weight) runs; ``("BREAK", -1)`` marks a forced chunk break.

    >>> parse_prompt_attention("a (house:1.5) [in] ((woods))")
    [('a ', 1.0), ('house', 1.5), (' ', 1.0), ('in', 0.9090909090909091), (' ', 1.0), ('woods', 1.2100000000000002)]
    """
    res: list[list[Any]] = []
    round_brackets: list[int] = []
    square_brackets: list[int] = []

    def multiply_range(start: int, multiplier: float) -> None:
        for p in range(start, len(res)):
            res[p][1] *= multiplier

    for m in _RE_ATTENTION.finditer(text):
        piece, weight = m.group(0), m.group(1)
        if piece.startswith("\\"):
            res.append([piece[1:], 1.0])
        elif piece == "(":
            round_brackets.append(len(res))
        elif piece == "[":
            square_brackets.append(len(res))
        elif weight is not None and round_brackets:
            multiply_range(round_brackets.pop(), float(weight))
        elif piece == ")" and round_brackets:
            multiply_range(round_brackets.pop(), 1.1)
        elif piece == "]" and square_brackets:
            multiply_range(square_brackets.pop(), 1 / 1.1)
        else:
            for i, part in enumerate(_RE_BREAK.split(piece)):
                if i > 0:
                    res.append(["BREAK", -1])
                res.append([part, 1.0])
    for pos in round_brackets:
        multiply_range(pos, 1.1)
    for pos in square_brackets:
        multiply_range(pos, 1 / 1.1)
    if not res:
        res = [["", 1.0]]
    i = 0
    while i + 1 < len(res):  # merge runs with equal weights
        if res[i][1] == res[i + 1][1]:
            res[i][0] += res[i + 1][0]
            res.pop(i + 1)
        else:
            i += 1
    return [(str(t), float(w)) for t, w in res]


@dataclass
class PromptChunk:
    tokens: list[int] = field(default_factory=list)
    multipliers: list[float] = field(default_factory=list)


def tokenize_weighted(tokenizer, text: str) -> list[PromptChunk]:
    """A1111's chunking: 75 tokens + start/end per chunk, multipliers per token."""
    parsed = parse_prompt_attention(text)
    start, end = tokenizer.bos_token_id, tokenizer.eos_token_id
    comma = tokenizer.get_vocab().get(",</w>")
    chunks: list[PromptChunk] = []
    chunk = PromptChunk()
    last_comma = -1

    def next_chunk() -> None:
        nonlocal chunk, last_comma
        to_add = CHUNK_LENGTH - len(chunk.tokens)
        if to_add > 0:
            chunk.tokens += [end] * to_add
            chunk.multipliers += [1.0] * to_add
        chunk.tokens = [start, *chunk.tokens, end]
        chunk.multipliers = [1.0, *chunk.multipliers, 1.0]
        last_comma = -1
        chunks.append(chunk)
        chunk = PromptChunk()

    for text_piece, weight in parsed:
        if text_piece == "BREAK" and weight == -1:
            next_chunk()
            continue
        tokens = tokenizer(text_piece, add_special_tokens=False, truncation=False)["input_ids"]
        for token in tokens:
            if token == comma:
                last_comma = len(chunk.tokens)
            elif len(chunk.tokens) == CHUNK_LENGTH and last_comma != -1 and len(chunk.tokens) - last_comma <= COMMA_BACKTRACK:
                cut = last_comma + 1
                moved_tokens, moved_mults = chunk.tokens[cut:], chunk.multipliers[cut:]
                chunk.tokens, chunk.multipliers = chunk.tokens[:cut], chunk.multipliers[:cut]
                next_chunk()
                chunk.tokens, chunk.multipliers = moved_tokens, moved_mults
            if len(chunk.tokens) == CHUNK_LENGTH:
                next_chunk()
            chunk.tokens.append(token)
            chunk.multipliers.append(weight)
    if chunk.tokens or not chunks:
        next_chunk()
    return chunks


def _encode_chunks(
    text_encoder, tokenizer, chunks: list[PromptChunk], device, *, layer: str, clip_skip: int = 1
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Encode every chunk, apply its multipliers with A1111's mean restore; (embeds, pooled of chunk 0)."""
    outs = []
    pooled = None
    end = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else end
    for i, chunk in enumerate(chunks):
        tokens = list(chunk.tokens)
        if pad != end:  # OpenCLIP (SDXL's second encoder) pads after the first end token
            first_end = tokens.index(end)
            tokens[first_end + 1:] = [pad] * (len(tokens) - first_end - 1)
        ids = torch.tensor([tokens], device=device)
        output = text_encoder(ids, output_hidden_states=True)
        if layer == "penultimate":
            z = output.hidden_states[-2]
        elif clip_skip > 1:
            z = getattr(text_encoder, "text_model", text_encoder).final_layer_norm(output.hidden_states[-clip_skip])
        else:
            z = output[0]
        if i == 0 and hasattr(output, "text_embeds"):
            pooled = output.text_embeds
        mult = torch.tensor(chunk.multipliers, device=device, dtype=z.dtype)
        original_mean = z.mean()
        z = z * mult.reshape(1, -1, 1)
        new_mean = z.mean()
        if new_mean.abs() > 1e-12:  # a zero mean (only in degenerate encoders) has nothing to restore
            z = z * (original_mean / new_mean)
        outs.append(z)
    return torch.cat(outs, dim=1), pooled


@dataclass
class Conditioning:
    """Prompt embeddings for diffusers' ``prompt_embeds`` (and SDXL's pooled embeddings)."""

    prompt_embeds: torch.Tensor
    negative_prompt_embeds: torch.Tensor
    pooled_prompt_embeds: torch.Tensor | None = None
    negative_pooled_prompt_embeds: torch.Tensor | None = None
    empty: torch.Tensor | None = None  # the empty prompt's chunk, A1111's filler for shorter prompts

    def kwargs(self) -> dict[str, torch.Tensor]:
        out = {"prompt_embeds": self.prompt_embeds, "negative_prompt_embeds": self.negative_prompt_embeds}
        if self.pooled_prompt_embeds is not None:
            out["pooled_prompt_embeds"] = self.pooled_prompt_embeds
            out["negative_pooled_prompt_embeds"] = self.negative_pooled_prompt_embeds
        return out

    def padded(self, length: int) -> Conditioning:
        return Conditioning(
            _pad_to(self.prompt_embeds, length, self.empty),
            _pad_to(self.negative_prompt_embeds, length, self.empty),
            self.pooled_prompt_embeds,
            self.negative_pooled_prompt_embeds,
            self.empty,
        )

    @staticmethod
    def stack(items: list[Conditioning]) -> Conditioning:
        """One batch from several conditionings, padded to the longest."""
        length = max(max(c.prompt_embeds.shape[1], c.negative_prompt_embeds.shape[1]) for c in items)
        items = [c.padded(length) for c in items]
        pooled = items[0].pooled_prompt_embeds is not None
        return Conditioning(
            torch.cat([c.prompt_embeds for c in items]),
            torch.cat([c.negative_prompt_embeds for c in items]),
            torch.cat([c.pooled_prompt_embeds for c in items]) if pooled else None,
            torch.cat([c.negative_pooled_prompt_embeds for c in items]) if pooled else None,
            items[0].empty,
        )


def _pad_to(embeds: torch.Tensor, length: int, empty: torch.Tensor | None) -> torch.Tensor:
    """A1111 pads the shorter of cond/uncond with the empty prompt's chunk."""
    missing = (length - embeds.shape[1]) // (CHUNK_LENGTH + 2)
    if missing <= 0:
        return embeds
    filler = empty if empty is not None else embeds[:, -(CHUNK_LENGTH + 2):]
    return torch.cat([embeds, *([filler.expand(embeds.shape[0], -1, -1)] * missing)], dim=1)


def encode_prompts(pipe, prompt: str, negative_prompt: str, *, clip_skip: int = 1) -> Conditioning:
    """Weighted, chunked embeddings for one prompt pair on an SD 1.5 or SDXL pipeline."""
    device = pipe.text_encoder.device
    with torch.no_grad():
        if getattr(pipe, "text_encoder_2", None) is None:
            def enc(text: str) -> tuple[torch.Tensor, None]:
                chunks = tokenize_weighted(pipe.tokenizer, text)
                return _encode_chunks(pipe.text_encoder, pipe.tokenizer, chunks, device, layer="last",
                                      clip_skip=clip_skip)[0], None
        else:
            def enc(text: str) -> tuple[torch.Tensor, torch.Tensor | None]:
                a, _ = _encode_chunks(pipe.text_encoder, pipe.tokenizer, tokenize_weighted(pipe.tokenizer, text),
                                      device, layer="penultimate")
                b, pooled = _encode_chunks(pipe.text_encoder_2, pipe.tokenizer_2,
                                           tokenize_weighted(pipe.tokenizer_2, text), device, layer="penultimate")
                return torch.cat([a, b], dim=-1), pooled

        (cond, pooled), (uncond, neg_pooled), (empty, _) = enc(prompt), enc(negative_prompt), enc("")
    result = Conditioning(cond, uncond, pooled, neg_pooled, empty)
    return result.padded(max(cond.shape[1], uncond.shape[1]))


# --- character prompts -------------------------------------------------------------------------

def _field(character: Any, name: str) -> Any:
    if isinstance(character, Mapping):
        return character.get(name)
    return getattr(character, name, None)


def character_prompt(character: Any, free_text: str = "", *, style: str = "RAW photo") -> str:
    """"RAW photo of Marco, 20-year-old Spanish man, goatee, freckles, <free text>".

    ``character`` is a mapping or an object with any of: name, age, gender, ethnicity, features
    (list of strings), prompt (extra text). Missing fields are left out.
    """
    name = _field(character, "name")
    age = _field(character, "age")
    gender = _field(character, "gender")
    ethnicity = _field(character, "ethnicity")
    features = _field(character, "features") or ()
    if isinstance(features, str):
        features = [f.strip() for f in features.split(",")]
    who = " ".join(str(p) for p in (f"{age}-year-old" if age else None, ethnicity, gender) if p)
    head = style + (f" of {name}" if name else "")
    parts = [head, who, *(f for f in features if f), _field(character, "prompt") or "", free_text]
    return ", ".join(p.strip() for p in parts if p and str(p).strip())


def negative_prompt(extra: Iterable[str] | str = (), base: str = DEFAULT_NEGATIVE) -> str:
    """The default negative prompt extended with a character's own unwanted items (no duplicates)."""
    if isinstance(extra, str):
        extra = [e.strip() for e in extra.split(",")]
    present = {p.strip().lower() for p in base.split(",")}
    added = [e for e in extra if e and e.lower() not in present]
    return ", ".join([p for p in (base, *added) if p]) if added else base


@dataclass(frozen=True)
class CharacterPrompt:
    """One character's own text for its face in a multi-character shot (``BumpEngine.run(character_prompts=)``).

    It extends the job's face-pass text rather than replacing it, so job-level style ("RAW photo,
    film grain") applies to every face while each face also gets its own identity words.
    """

    prompt: str = ""
    negative_prompt: str = ""

    def applied_to(self, prompt: str, negative: str) -> tuple[str, str]:
        """(prompt, negative) for this character's face, given the job's face-pass pair.

        The prompt is the job's followed by ``", "`` and the character's (the job's trailing commas
        and spaces dropped so they do not double); the negative is the job's extended with the
        character's items by :func:`negative_prompt` (no duplicates). Empty fields change nothing.
        """
        if self.prompt.strip():
            base = prompt.rstrip(" ,\t\n")
            prompt = f"{base}, {self.prompt}" if base else self.prompt
        if self.negative_prompt.strip():
            negative = negative_prompt(self.negative_prompt, base=negative)
        return prompt, negative

    @classmethod
    def coerce(cls, value: CharacterPrompt | Mapping[str, Any] | str) -> CharacterPrompt:
        """From a ``CharacterPrompt``, a ``{"prompt", "negative_prompt"}`` mapping (records, requests) or a prompt."""
        if isinstance(value, cls):
            return value
        if isinstance(value, str):
            return cls(prompt=value)
        if isinstance(value, Mapping):
            unknown = set(value) - {"prompt", "negative_prompt"}
            if unknown:
                raise ValueError(f"character prompt: unknown field(s) {', '.join(sorted(unknown))}")
            return cls(prompt=value.get("prompt") or "", negative_prompt=value.get("negative_prompt") or "")
        raise TypeError(f"character prompt: expected a CharacterPrompt, a mapping or a string, got {value!r}")

    def to_dict(self) -> dict[str, str]:
        return {"prompt": self.prompt, "negative_prompt": self.negative_prompt}
