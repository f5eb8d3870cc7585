"""A1111 attention syntax and long prompts change the conditioning, not the literal text."""

from __future__ import annotations

import pytest
import torch

from bump_backend.generate import prompts
from bump_backend.testing.tiny_models import _tokenizer


def test_parse_attention_matches_a1111_examples():
    parse = prompts.parse_prompt_attention
    assert parse("normal text") == [("normal text", 1.0)]
    assert parse("an (important) word") == [("an ", 1.0), ("important", 1.1), (" word", 1.0)]
    assert parse("(unbalanced") == [("unbalanced", 1.1)]
    assert parse("\\(literal\\]") == [("(literal]", 1.0)]
    assert parse("(unnecessary)(parens)") == [("unnecessaryparens", 1.1)]
    got = parse("a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).")
    expected = [("a ", 1.0), ("house", 1.5730000000000004), (" ", 1.1), ("on", 1.0), (" a ", 1.1),
                ("hill", 0.55), (", sun, ", 1.1), ("sky", 1.4641000000000006), (".", 1.1)]
    assert [t for t, _ in got] == [t for t, _ in expected]
    for (_, w), (_, e) in zip(got, expected, strict=True):
        assert w == pytest.approx(e)
    assert parse("a BREAK b") == [("a", 1.0), ("BREAK", -1.0), ("b", 1.0)]
    assert parse("(worst quality, low quality:2)") == [("worst quality, low quality", 2.0)]


def test_chunks_keep_long_prompts_and_strip_brackets():
    tok = _tokenizer()
    plain = prompts.tokenize_weighted(tok, "cat")
    weighted = prompts.tokenize_weighted(tok, "(cat:1.4)")
    assert plain[0].tokens == weighted[0].tokens  # brackets and weight are not text
    assert weighted[0].multipliers[1:4] == [1.4, 1.4, 1.4]
    long_text = ", ".join(f"word{i}" for i in range(40))  # ~280 characters = tokens here
    chunks = prompts.tokenize_weighted(tok, long_text)
    assert len(chunks) >= 3
    assert all(len(c.tokens) == 77 and c.tokens[0] == tok.bos_token_id and c.tokens[-1] == tok.eos_token_id
               for c in chunks)
    body = [t for c in chunks for t in c.tokens[1:-1] if t != tok.eos_token_id]
    assert body == tok(long_text, add_special_tokens=False)["input_ids"]  # nothing dropped
    # A chunk that fills up breaks after a recent comma rather than mid-word.
    comma = tok.get_vocab()[",</w>"]
    first_body = [t for t in chunks[0].tokens[1:-1] if t != tok.eos_token_id]
    assert first_body[-1] == comma
    assert len(prompts.tokenize_weighted(tok, "a BREAK b")) == 2


@pytest.fixture(scope="module")
def pipe(model_dirs):
    from diffusers import StableDiffusionImg2ImgPipeline

    return StableDiffusionImg2ImgPipeline.from_pretrained(model_dirs["sd15"], local_files_only=True)


def test_weights_change_conditioning_not_text(pipe):
    neg = ""
    base = prompts.encode_prompts(pipe, "a photo of a cat", neg).prompt_embeds
    same = prompts.encode_prompts(pipe, "a photo of a (cat:1.0)", neg).prompt_embeds
    strong = prompts.encode_prompts(pipe, "a photo of a (cat:1.6)", neg).prompt_embeds
    torch.testing.assert_close(base, same, rtol=0, atol=0)
    assert not torch.allclose(base, strong)
    # Only the conditioning's scale per token moves: unweighted tokens keep their direction.
    cos = torch.nn.functional.cosine_similarity(base[0, 1:8], strong[0, 1:8], dim=-1)
    assert torch.all(cos > 0.999)


def test_long_prompt_and_negative_padding(pipe):
    long_prompt = ", ".join(f"detail{i}" for i in range(40))
    cond = prompts.encode_prompts(pipe, long_prompt, "short negative")
    assert cond.prompt_embeds.shape[1] % 77 == 0 and cond.prompt_embeds.shape[1] >= 3 * 77
    assert cond.negative_prompt_embeds.shape == cond.prompt_embeds.shape
    # The tail of the prompt conditions the result (it is not truncated away at token 77).
    other = prompts.encode_prompts(pipe, long_prompt + ", extra words at the end", "short negative")
    assert not torch.allclose(cond.prompt_embeds[:, -77:], other.prompt_embeds[:, -77:])
    stacked = prompts.Conditioning.stack([cond, prompts.encode_prompts(pipe, "short", "")])
    assert stacked.prompt_embeds.shape[0] == 2 and stacked.prompt_embeds.shape[1] == cond.prompt_embeds.shape[1]


def test_character_prompt_and_negative():
    character = {"name": "Marco", "age": 20, "gender": "man", "ethnicity": "Spanish", "features": ["goatee"]}
    assert prompts.character_prompt(character, "soft light") == \
        "RAW photo of Marco, 20-year-old Spanish man, goatee, soft light"
    assert prompts.character_prompt({}) == "RAW photo"
    neg = prompts.negative_prompt(["earrings", "cartoon", "beard"])
    assert neg == prompts.DEFAULT_NEGATIVE + ", earrings, beard"
    assert prompts.negative_prompt("earrings", base="") == "earrings"  # no leading ", " on an empty base


def test_character_prompt_extends_the_jobs_prompts():
    cp = prompts.CharacterPrompt("Mira, red hair", "earrings, cartoon")
    assert cp.applied_to("RAW photo, film grain", prompts.DEFAULT_NEGATIVE) == (
        "RAW photo, film grain, Mira, red hair", prompts.DEFAULT_NEGATIVE + ", earrings")
    assert cp.applied_to("RAW photo, ", "") == ("RAW photo, Mira, red hair", "earrings, cartoon")
    assert cp.applied_to("", "x") == ("Mira, red hair", "x, earrings, cartoon")
    assert prompts.CharacterPrompt().applied_to("a", "b") == ("a", "b")  # empty fields change nothing
    assert prompts.CharacterPrompt.coerce({"prompt": "p"}) == prompts.CharacterPrompt("p", "")
    assert prompts.CharacterPrompt.coerce("p") == prompts.CharacterPrompt("p")
    assert prompts.CharacterPrompt.coerce(cp.to_dict()) == cp
    with pytest.raises(ValueError, match="promt"):
        prompts.CharacterPrompt.coerce({"promt": "p"})
