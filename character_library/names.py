"""Names that are safe to use as folder names, and keys that make display names unique.

Display names are free Unicode text; folder names are derived from them and are plain ASCII
(``[a-z0-9_-]``), so a name can never traverse out of the library, hit a Windows reserved device
name, differ only by case on a case-insensitive file system, or look like another folder through
Unicode confusables. Display-name uniqueness uses a *skeleton*: NFKC, case folding, invisible
characters removed and common cross-script look-alikes mapped to Latin, so "Аlice" (Cyrillic A)
cannot sit next to "Alice".
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable

from character_library.errors import UnsafeNameError

MAX_NAME_CHARS = 100
MAX_FOLDER_CHARS = 48
ID_RE = re.compile(r"^[a-z0-9][a-z0-9_]{0,63}$")

_WINDOWS_RESERVED = {"con", "prn", "aux", "nul", "clock$", "conin$", "conout$"} | {
    f"{stem}{n}" for stem in ("com", "lpt") for n in (*"123456789", "¹", "²", "³")
}

# Cross-script look-alikes of Latin letters and digits (a practical subset of Unicode's
# confusables.txt covering Cyrillic, Greek, Armenian and a few symbols people actually paste).
_CONFUSABLES = str.maketrans(
    {
        "а": "a", "в": "b", "с": "c", "е": "e", "һ": "h", "і": "i", "ј": "j", "к": "k", "м": "m",
        "н": "h", "о": "o", "р": "p", "ѕ": "s", "т": "t", "у": "y", "х": "x", "ԁ": "d", "ԛ": "q",
        "ԝ": "w", "ӏ": "l", "ɡ": "g", "ı": "i", "ȷ": "j",
        "α": "a", "β": "b", "ε": "e", "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p", "τ": "t",
        "υ": "u", "χ": "x", "ϲ": "c", "ϳ": "j",
        "օ": "o", "ս": "u", "ց": "g", "հ": "h", "ո": "n", "զ": "q",
        "ℓ": "l", "∣": "l", "ǀ": "l", "|": "l", "０": "0", "𝟎": "0", "ꓲ": "i", "ꓳ": "o",
    }
)
_INVISIBLE = {"Cf", "Cc", "Cs", "Co", "Cn"}
_TRANSLIT = str.maketrans({"ß": "ss", "æ": "ae", "œ": "oe", "ø": "o", "đ": "d", "ð": "d", "þ": "th", "ł": "l"})


def clean_display_name(name: object) -> str:
    """Normalise a display name (NFKC, collapsed whitespace) or explain why it cannot be one."""
    if not isinstance(name, str):
        raise UnsafeNameError(f"a character name must be text, got {type(name).__name__}")
    text = unicodedata.normalize("NFKC", name)
    if any(unicodedata.category(ch) == "Cc" for ch in text):
        raise UnsafeNameError(f"character name {name!r} contains control characters (newlines, tabs...)")
    text = "".join(ch for ch in text if unicodedata.category(ch) not in _INVISIBLE)
    text = " ".join(text.split())
    if not text:
        raise UnsafeNameError("a character name cannot be empty or only spaces/invisible characters")
    if len(text) > MAX_NAME_CHARS:
        raise UnsafeNameError(f"character name is {len(text)} characters long; the limit is {MAX_NAME_CHARS}")
    return text


def name_key(name: str) -> str:
    """The skeleton two display names must not share (case, width, invisibles, look-alikes)."""
    text = clean_display_name(name).casefold()
    text = unicodedata.normalize("NFKC", text).translate(_CONFUSABLES)
    return text


def _ascii_fold(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold().translate(_CONFUSABLES).translate(_TRANSLIT)
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).encode("ascii", "ignore").decode()


def safe_folder_name(name: str, taken: set[str] | frozenset[str] | Callable[[str], bool] = frozenset()) -> str:
    """An ASCII folder name for ``name`` that is not taken (a set compared case-insensitively, or a test)."""
    slug = re.sub(r"[^a-z0-9]+", "_", _ascii_fold(clean_display_name(name))).strip("_")
    slug = slug[:MAX_FOLDER_CHARS].rstrip("_") or "character"
    if slug.split(".")[0] in _WINDOWS_RESERVED or slug in _WINDOWS_RESERVED:
        slug = f"{slug}_"
    if callable(taken):
        is_taken = taken
    else:
        lowered = {t.lower() for t in taken}

        def is_taken(folder: str) -> bool:
            return folder.lower() in lowered

    candidate, n = slug, 1
    while is_taken(candidate):
        n += 1
        candidate = f"{slug[: MAX_FOLDER_CHARS - len(str(n)) - 1]}-{n}"
    check_folder_name(candidate)
    return candidate


def check_folder_name(folder: object) -> str:
    """Accept only names this module could have made; anything else came from outside and is refused."""
    if not isinstance(folder, str) or not re.fullmatch(r"[a-z0-9][a-z0-9_\-]{0,63}", folder):
        raise UnsafeNameError(
            f"{folder!r} is not a safe library folder name (lowercase ASCII letters, digits, _ and -)"
        )
    if folder.split("-")[0] in _WINDOWS_RESERVED:
        raise UnsafeNameError(f"{folder!r} is a reserved device name on Windows")
    return folder


def check_character_id(value: object) -> str:
    """Character ids travel in zips and JSON files: only the shape ``character_id_from_name`` makes."""
    if not isinstance(value, str) or not ID_RE.match(value):
        raise UnsafeNameError(f"{value!r} is not a valid character id (lowercase ASCII letters, digits and _)")
    return value


def clean_tag(tag: object) -> str:
    """Tags are short single-line labels, compared case-insensitively."""
    if not isinstance(tag, str):
        raise UnsafeNameError(f"a tag must be text, got {type(tag).__name__}")
    text = " ".join(unicodedata.normalize("NFKC", tag).split()).casefold()
    if not text or len(text) > 40 or any(unicodedata.category(ch) in _INVISIBLE for ch in text) or "," in text:
        raise UnsafeNameError(f"tag {tag!r}: 1-40 visible characters, no commas")
    return text
