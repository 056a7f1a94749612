"""Parallel text in other languages, offline: message catalogues of installed packages.

Debian packages ship compiled gettext catalogues (``/usr/share/locale/<lang>/
LC_MESSAGES/<domain>.mo``): every English message (``msgid``) of a program
with its translation (``msgstr``). Taking the same messages in every language
gives a small *parallel* corpus -- the same content in English, German,
Russian, Chinese... -- without a download. It is technical prose (error
messages, help texts), not general text: say so when reporting on it.
"""

from __future__ import annotations

import gettext
import re
from pathlib import Path

import pandas as pd

from .._utils import check_positive_int, check_random_state, logger
from ..exceptions import DataError

__all__ = ["catalog_texts", "catalog_languages", "CATALOG_DOMAINS"]

#: Where Debian installs compiled message catalogues.
LOCALE_DIR = "/usr/share/locale"

#: Catalogues read by default (GNU tools and GLib: long, full-sentence messages).
CATALOG_DOMAINS = ("glib20", "coreutils", "tar", "wget", "libc", "dpkg")

_FORMAT = re.compile(r"%(\d+\$)?[-+ #0']*(\d+|\*)?(\.(\d+|\*))?(hh|h|ll|l|j|z|t|L)?[a-zA-Z%]"
                     r"|\{[^{}]*\}|%\([a-z_]+\)[sd]")


def _clean(text):
    text = _FORMAT.sub("X", text)
    text = text.replace("_", "").replace("\t", " ")
    return re.sub(r"\s+", " ", text).strip()


def _plain(text, min_chars):
    if len(text) < min_chars or "<" in text or "--" in text or "\\" in text:
        return False
    letters = sum(ch.isalpha() or ch.isspace() for ch in text)
    return letters >= 0.8 * len(text)


def _catalog(locale_dir, lang, domain):
    path = Path(locale_dir) / lang / "LC_MESSAGES" / f"{domain}.mo"
    if not path.is_file():
        return None
    with open(path, "rb") as fh:
        return gettext.GNUTranslations(fh)._catalog


def catalog_languages(*, domains=CATALOG_DOMAINS, locale_dir=LOCALE_DIR, min_chars=40):
    """Languages with catalogues installed, and how many usable messages each domain has.

    Returns
    -------
    pandas.DataFrame
        One row per language: ``language`` and one column per domain.
    """
    root = Path(locale_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} does not exist: no message catalogues are installed.")
    rows = []
    for lang in sorted(p.name for p in root.iterdir() if (p / "LC_MESSAGES").is_dir()):
        row = {"language": lang}
        for dom in domains:
            cat = _catalog(root, lang, dom) or {}
            row[dom] = sum(1 for k, v in cat.items() if isinstance(k, str) and v and v != k
                           and _plain(_clean(k), min_chars))
        rows.append(row)
    return pd.DataFrame(rows)


def catalog_texts(languages=("de", "fr", "es", "ru", "zh_CN"), *, english=True,
                  domains=CATALOG_DOMAINS, min_chars=40, join=4, max_texts=None,
                  locale_dir=LOCALE_DIR, random_state=0):
    """Parallel text sets from installed message catalogues: the same messages in each language.

    Messages are taken when every requested language translates them (so the
    sets are parallel), their English originals are plain prose of at least
    ``min_chars`` characters (no markup, no command-line options), and format
    placeholders (``%s``, ``{name}``) are replaced by ``X``. They are
    shuffled with a fixed seed and joined ``join`` at a time into texts.

    Parameters
    ----------
    languages : list of str, default=("de", "fr", "es", "ru", "zh_CN")
        Locale names under ``locale_dir`` (``catalog_languages()`` lists them).
    english : bool, default=True
        Add the English originals as set ``"en"`` (first).
    domains : list of str, default=CATALOG_DOMAINS
    min_chars : int, default=40
    join : int, default=4
        Messages per text.
    max_texts : int, optional
        Texts per language (after joining).
    locale_dir : str, default="/usr/share/locale"
    random_state : int, default=0

    Returns
    -------
    dict of str to list of str
        ``{"en": [...], "de": [...], ...}``; item ``i`` of every set holds
        the same messages.

    Raises
    ------
    FileNotFoundError
        No catalogue of a language is installed.
    DataError
        No message is translated in every language.
    """
    languages = [languages] if isinstance(languages, str) else list(languages)
    if not languages:
        raise ValueError("languages is empty; give locale names such as 'de' or 'zh_CN'.")
    join = check_positive_int("join", join)
    min_chars = check_positive_int("min_chars", min_chars)
    max_texts = check_positive_int("max_texts", max_texts, allow_none=True)
    rng = check_random_state(random_state)
    pairs = {}  # (domain, msgid) -> {lang: msgstr}
    for lang in languages:
        found = False
        for dom in domains:
            cat = _catalog(locale_dir, lang, dom)
            if cat is None:
                continue
            found = True
            for k, v in cat.items():
                if isinstance(k, str) and k and isinstance(v, str) and v and v != k \
                        and "\x04" not in k:
                    pairs.setdefault((dom, k), {})[lang] = v
        if not found:
            raise FileNotFoundError(
                f"No message catalogue of language {lang!r} among domains {list(domains)} "
                f"under {locale_dir}; catalog_languages() lists what is installed.")
    keys = sorted(k for k, v in pairs.items() if len(v) == len(languages)
                  and _plain(_clean(k[1]), min_chars))
    if not keys:
        raise DataError(f"No message of {list(domains)} is translated into all of "
                        f"{languages}; use fewer languages or other domains.")
    order = rng.permutation(len(keys))
    keys = [keys[i] for i in order]
    n_texts = len(keys) // join
    if max_texts is not None:
        n_texts = min(n_texts, max_texts)
    if n_texts == 0:
        raise DataError(f"Only {len(keys)} parallel messages: fewer than join={join}.")
    out = {}
    for lang in (["en"] if english else []) + languages:
        texts = []
        for t in range(n_texts):
            group = keys[t * join:(t + 1) * join]
            msgs = [_clean(k[1] if lang == "en" else pairs[k][lang]) for k in group]
            texts.append(" ".join(m if m.endswith((".", "!", "?", "。", ":")) else m + "."
                                  for m in msgs))
        out[lang] = texts
    logger.info("catalog_texts: %d parallel messages in %d texts per language (%s)",
                n_texts * join, n_texts, ", ".join(out))
    return out
