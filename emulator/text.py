"""Deterministic answer text: prose-like sentences from a seed, cut into byte slices.

The words come from a small vocabulary per script (English, Russian), arranged by one
sentence pattern, so an answer reads like prose without meaning anything. The byte slices
are cut so that multi-byte characters straddle chunk boundaries on purpose: a client
that decodes each chunk on its own (the seed's defect) breaks, as it would on real TCP.
"""

from __future__ import annotations

import random
import re

_CYRILLIC = re.compile(r"[\u0400-\u04ff]")
_LATIN = re.compile(r"[A-Za-z]")

# Pattern: [opener] determiner adjective subject verb adjective object tail.
_EN = {
    "opener": ("Then", "Meanwhile", "In practice", "As a rule", "Still", "Later", "By then"),
    "det": ("The", "Every", "Each", "This", "One", "Our", "That"),
    "adj": (
        "quiet", "careful", "patient", "small", "steady", "bright", "simple", "early",
        "narrow", "common", "honest", "distant", "gentle", "old", "clear",
    ),
    "subject": (
        "worker", "river", "reader", "garden", "engine", "teacher", "traveller", "window",
        "letter", "machine", "city", "village", "clock", "neighbour", "sailor",
    ),
    "verb": (
        "carries", "follows", "explains", "finds", "keeps", "opens", "reaches", "shows",
        "builds", "remembers", "measures", "holds", "changes", "writes", "answers",
    ),
    "object": (
        "path", "story", "signal", "record", "bridge", "promise", "message", "pattern",
        "harvest", "evening", "lesson", "market", "road", "idea", "question",
    ),
    "tail": (
        "before dawn", "without a sound", "step by step", "along the road", "in the morning",
        "after the rain", "with great care", "for a while", "at the edge of town",
        "once again", "near the old bridge", "as usual",
    ),
}  # fmt: skip

# Masculine forms throughout, so adjectives agree; inanimate objects keep accusative = nominative.
_RU = {
    "opener": ("Потом", "Тем временем", "Обычно", "Иногда", "Вечером", "Сначала", "Всё же"),
    "det": ("Каждый", "Этот", "Наш", "Тот", "Один", "Всякий", "Любой"),
    "adj": (
        "тихий", "внимательный", "терпеливый", "маленький", "спокойный", "светлый",
        "простой", "ранний", "старый", "честный", "далёкий", "добрый", "ясный", "новый",
        "быстрый",
    ),
    "subject": (
        "работник", "читатель", "сад", "город", "учитель", "путник", "мастер", "поезд",
        "ветер", "садовник", "сосед", "моряк", "часовщик", "художник", "почтальон",
    ),
    "verb": (
        "несёт", "ищет", "объясняет", "находит", "хранит", "открывает", "строит", "помнит",
        "измеряет", "держит", "меняет", "пишет", "видит", "проверяет", "читает",
    ),
    "object": (
        "путь", "рассказ", "сигнал", "мост", "урок", "рынок", "ответ", "вопрос", "порядок",
        "дом", "план", "свет", "след", "узор", "ключ",
    ),
    "tail": (
        "до рассвета", "без лишнего шума", "шаг за шагом", "вдоль дороги", "по утрам",
        "после дождя", "с большой заботой", "на краю города", "снова и снова",
        "у старого моста", "как обычно", "в тишине",
    ),
}  # fmt: skip


def is_cyrillic(text: str) -> bool:
    """Whether the text is mostly Cyrillic (more Cyrillic letters than Latin ones)."""
    return len(_CYRILLIC.findall(text)) > len(_LATIN.findall(text))


def _sentences(rng: random.Random, words: dict[str, tuple[str, ...]], english: bool) -> list[str]:
    """One sentence in forms from the fullest to the shortest (to end an answer on size)."""
    pick = {part: rng.choice(choices) for part, choices in words.items()}
    other_adj = rng.choice(words["adj"])
    opener = rng.random() < 0.3
    the = "the " if english else ""
    core = f"{pick['subject']} {pick['verb']} {the}"
    forms = []
    for with_adjectives, with_tail in ((True, True), (True, False), (False, False)):
        adj1, adj2 = (f"{pick['adj']} ", f"{other_adj} ") if with_adjectives else ("", "")
        tail = f" {pick['tail']}" if with_tail else ""
        forms.append(f"{pick['det']} {adj1}{core}{adj2}{pick['object']}{tail}.")
    if opener:
        det = pick["det"]
        # English sets an opening adverbial off with a comma; Russian does not here.
        lead = f"{pick['opener']}{',' if english else ''} {det[0].lower()}{det[1:]}"
        forms.insert(0, lead + forms[0][len(det) :])
    return forms


def answer_text(seed: int, cyrillic: bool, target_bytes: int) -> str:
    """Whole sentences from ``seed``, ending within about one short sentence of the target."""
    rng = random.Random(seed)
    words = _RU if cyrillic else _EN
    parts: list[str] = []
    size = -1  # no space before the first sentence
    while size < target_bytes:
        forms = [(len(f.encode()) + 1, f) for f in _sentences(rng, words, not cyrillic)]
        room = target_bytes - size
        fitting = [(n, f) for n, f in forms if n <= room]
        if fitting:
            n, sentence = fitting[0]  # the fullest form that fits
        else:
            n, sentence = forms[-1]
            # Nothing fits: end here, short of the target or past it, whichever is nearer.
            if parts and n - room > room:
                break
        parts.append(sentence)
        size += n
        if n < forms[0][0]:
            break
    return " ".join(parts)


def cut(data: bytes, pieces: int) -> tuple[bytes, ...]:
    """``pieces`` non-empty slices of ``data``, boundaries moved inside multi-byte characters."""
    n = len(data)
    pieces = max(1, min(pieces, n))
    bounds = [0]
    for i in range(1, pieces):
        b = max(i * n // pieces, bounds[-1] + 1)
        # A boundary on the first byte of a multi-byte character moves one byte in, so the
        # character is split; the room check keeps every later slice non-empty.
        if data[b] >= 0xC0 and b + 1 <= n - (pieces - i):
            b += 1
        bounds.append(b)
    bounds.append(n)
    return tuple(data[a:b] for a, b in zip(bounds, bounds[1:], strict=False))


def answer_chunks(seed: int, cyrillic: bool, chunks: int, chunk_size: int) -> tuple[bytes, ...]:
    """The answer for ``seed`` as ``chunks`` byte slices of about ``chunk_size`` bytes each."""
    return cut(answer_text(seed, cyrillic, chunks * chunk_size).encode(), chunks)
