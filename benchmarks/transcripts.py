"""Free-text aggregation: ROVER's word error rate and speed against crowd-kit, and text vote.

Run from the repository root:

    .venv/bin/python benchmarks/transcripts.py [--items 10000] [--rounds 3] [--out FILE]

Transcripts: known sentences from a built-in grammar and vocabulary (5 to 14 words, written
with capitals and a full stop), each transcribed by 5 simulated workers who substitute, delete
and insert words at their own error rate, with seeded randomness. Each scenario is one set of
worker error rates; an item's workers come in a random order, so the first transcript, the
backbone of ROVER's alignment, is not always the best one. Both ROVERs get the same tokenizer
(``tasksets.text.words``: normalise, then split) and detokenizer (``" ".join``). WER is over
the whole corpus (all edit operations / all reference words), after normalisation.

Timing: whole aggregations of every scenario's items, ours (from ``TextAnswers``) and
crowd-kit's (from a DataFrame built beforehand), alternating for ``--rounds`` rounds; each
contender's minimum of process CPU time (user + system) and of wall time is kept.
``normalise`` builds its character tables on first use; that happens before any timing.

Exact answers: short answers (cities, numbers, names) typed by 5 workers each, right with
their accuracy in varied spellings (case, punctuation, spaces, curly apostrophes, full-width
digits), else a plausible wrong answer. Text vote (normalised) against a vote on the raw
strings, with the same tie rule.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tasksets.text import TextAnswers, normalise, rover, text_vote, word_edit_distance, words

RESULTS = Path(__file__).resolve().parent / "RESULTS-transcripts.md"
SEED = 20261201

DETERMINERS = ["the", "a", "this", "that", "every", "no", "our", "their"]
ADJECTIVES = ["small", "old", "red", "quiet", "bright", "heavy", "green", "cold", "busy", "new"]
NOUNS = [
    "dog", "river", "train", "teacher", "window", "garden", "doctor", "letter", "market",
    "bridge", "storm", "child", "kettle", "village", "engine", "painter", "mountain", "table",
]  # fmt: skip
VERBS = [
    "sees", "crosses", "opens", "follows", "paints", "carries", "finds", "builds", "hears",
    "leaves", "watches", "fixes",
]  # fmt: skip
PREPOSITIONS = ["near", "behind", "under", "beside", "after", "before"]
ADVERBS = ["slowly", "today", "again", "quickly", "at night", "every morning", "once"]
VOCABULARY = sorted(
    {word for group in (DETERMINERS, ADJECTIVES, NOUNS, VERBS, PREPOSITIONS) for word in group}
    | {word for phrase in ADVERBS for word in phrase.split()}
)

SCENARIOS: dict[str, tuple[float, ...]] = {
    "mixed 0.05-0.4": (0.05, 0.1, 0.2, 0.3, 0.4),
    "all 0.1": (0.1,) * 5,
    "all 0.2": (0.2,) * 5,
    "all 0.3": (0.3,) * 5,
    "mixed 0.2-0.4": (0.2, 0.25, 0.3, 0.35, 0.4),
}

ANSWERS = {  # true answer -> plausible wrong answers
    "New York": ["Newark", "York", "New Jersey"],
    "Saint Petersburg": ["Petersburg", "Moscow", "Saint Paul"],
    "O'Brien": ["Brien", "O'Brian", "Obrien"],
    "42": ["24", "41", "420"],
    "1984": ["1948", "1994", "1884"],
    "Zürich": ["Zurich", "Geneva", "Bern"],
    "Rio de Janeiro": ["Rio", "São Paulo", "Janeiro"],
    "don't know": ["no", "unknown", "do not know"],
    "Mont Blanc": ["Mont-Blanc Tunnel", "Montblanc", "Matterhorn"],
    "3.14": ["3", "3.41", "22/7"],
}
EXACT_ACCURACIES = (0.55, 0.65, 0.75, 0.85, 0.9)


@dataclass(frozen=True, slots=True)
class Corpus:
    truth: list[str]
    answers: TextAnswers
    worker_rates: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class Timing:
    cpu: float  # seconds, minimum over rounds
    wall: float


def sentence(rng: np.random.Generator) -> str:
    def pick(words_: list[str]) -> str:
        return words_[int(rng.integers(len(words_)))]

    def noun_phrase() -> list[str]:
        phrase = [pick(DETERMINERS)]
        if rng.random() < 0.6:
            phrase.append(pick(ADJECTIVES))
        return [*phrase, pick(NOUNS)]

    parts = [*noun_phrase(), pick(VERBS), *noun_phrase()]
    if rng.random() < 0.5:
        parts += [pick(PREPOSITIONS), *noun_phrase()]
    if rng.random() < 0.5:
        parts.append(pick(ADVERBS))
    text = " ".join(parts)
    return text[0].upper() + text[1:] + "."


def transcribe(truth: str, rate: float, rng: np.random.Generator) -> str:
    """A worker's transcript: per word, an error with probability ``rate``: half of them a
    substitution, a quarter a deletion, a quarter an inserted word after it."""
    out: list[str] = []
    for word in truth.rstrip(".").split():
        draw = rng.random()
        if draw >= rate:
            out.append(word)
        elif draw < rate / 2:
            out.append(VOCABULARY[int(rng.integers(len(VOCABULARY)))])
        elif draw < rate * 3 / 4:
            continue
        else:
            out += [word, VOCABULARY[int(rng.integers(len(VOCABULARY)))]]
    text = " ".join(out)
    if rng.random() < 0.5:  # casing and a full stop, which normalisation removes
        text = text.capitalize() + "."
    return text


def corpus(n_items: int, rates: tuple[float, ...], seed: int) -> Corpus:
    rng = np.random.default_rng(seed)
    truth = [sentence(rng) for _ in range(n_items)]
    items, workers, texts = [], [], []
    for item, text in enumerate(truth):
        for worker in rng.permutation(len(rates)).tolist():
            items.append(item)
            workers.append(worker)
            texts.append(transcribe(text, rates[worker], rng))
    answers = TextAnswers(np.array(items), np.array(workers), texts, n_items, len(rates))
    return Corpus(truth, answers, rates)


def corpus_wer(references: list[str], hypotheses: list[str]) -> float:
    errors = total = 0
    for reference, hypothesis in zip(references, hypotheses, strict=True):
        reference_words = words(reference)
        errors += word_edit_distance(reference_words, words(hypothesis))
        total += len(reference_words)
    return errors / total


def crowdkit_installed() -> bool:
    return all(importlib.util.find_spec(name) for name in ("crowdkit", "pandas"))


def crowdkit_rover(answers: TextAnswers) -> Callable[[], list[str]]:
    """A run of crowd-kit's ROVER with our tokenizer, returning a text per item."""
    import pandas as pd
    from crowdkit.aggregation import ROVER

    frame = pd.DataFrame(
        {"task": answers.items, "worker": answers.workers, "text": list(answers.texts)}
    )

    def run() -> list[str]:
        texts = ROVER(words, " ".join).fit_predict(frame)
        return [str(texts[item]) for item in range(answers.n_items)]

    return run


def our_rover(answers: TextAnswers) -> Callable[[], list[str]]:
    def run() -> list[str]:
        return [text or "" for text in rover(answers)]

    return run


def tokenize_all(answers: TextAnswers) -> Callable[[], list[str]]:
    """The tokenizer both ROVERs call, alone over every transcript."""

    def run() -> list[str]:
        return [" ".join(words(text)) for text in answers.texts]

    return run


def alternate(
    contenders: dict[str, Callable[[], list[str]]], rounds: int
) -> tuple[dict[str, Timing], dict[str, list[str]]]:
    """Run the contenders in turn for ``rounds`` rounds; each one's minimum and last output."""
    cpus: dict[str, list[float]] = {name: [] for name in contenders}
    walls: dict[str, list[float]] = {name: [] for name in contenders}
    outputs: dict[str, list[str]] = {}
    for _ in range(rounds):
        for name, run in contenders.items():
            cpu_start, wall_start = _process_cpu(), time.perf_counter()
            outputs[name] = run()
            walls[name].append(time.perf_counter() - wall_start)
            cpus[name].append(_process_cpu() - cpu_start)
    timings = {name: Timing(min(cpus[name]), min(walls[name])) for name in contenders}
    return timings, outputs


def exact_answers(n_items: int, seed: int) -> tuple[list[str], TextAnswers]:
    rng = np.random.default_rng(seed)
    names = list(ANSWERS)
    truth = [names[int(rng.integers(len(names)))] for _ in range(n_items)]
    items, workers, texts = [], [], []
    for item, answer in enumerate(truth):
        for worker in range(len(EXACT_ACCURACIES)):
            if rng.random() < EXACT_ACCURACIES[worker]:
                given = answer
            else:
                wrong = ANSWERS[answer]
                given = wrong[int(rng.integers(len(wrong)))]
            items.append(item)
            workers.append(worker)
            texts.append(respell(given, rng))
    answers = TextAnswers(np.array(items), np.array(workers), texts, n_items, len(EXACT_ACCURACIES))
    return truth, answers


def respell(text: str, rng: np.random.Generator) -> str:
    """One of the spellings people type for the same answer."""
    match int(rng.integers(7)):
        case 0:
            return text.lower()
        case 1:
            return text.upper()
        case 2:
            return f" {text}.\n"
        case 3:
            return text.replace("'", "\u2019").replace(" ", "  ")
        case 4:
            return text.translate({ord(d): ord(d) + 0xFEE0 for d in "0123456789"})  # full-width
        case 5:
            return f"{text}!"
        case _:
            return text


def raw_vote(answers: TextAnswers) -> list[str]:
    """Majority of the raw strings, ties to the string that sorts first."""
    counts: dict[int, dict[str, int]] = {}
    for item, text in zip(answers.items.tolist(), answers.texts, strict=True):
        counts.setdefault(item, {})
        counts[item][text] = counts[item].get(text, 0) + 1
    return [
        min(counts[item].items(), key=lambda pair: (-pair[1], pair[0]))[0]
        for item in range(answers.n_items)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    with_crowdkit = crowdkit_installed()
    normalise("")  # builds its character tables (a one-off 0.3 s) before any timing
    lines: list[str] = []

    def say(line: str = "") -> None:
        print(line, flush=True)
        lines.append(line)

    say("# Free-text aggregation benchmark")
    say()
    say(
        f"Measured {date.today()} on {platform.machine()}, {len(os.sched_getaffinity(0))} cores, "
        f"Python {platform.python_version()}, numpy {np.__version__}"
        + (f", crowd-kit {_version('crowd-kit')}" if with_crowdkit else ", without crowd-kit")
        + f". Command: `.venv/bin/python benchmarks/transcripts.py --items {args.items} "
        f"--rounds {args.rounds}`."
    )
    say()
    say(
        f"ROVER: {args.items:,} sentences x 5 workers per scenario. WER over the corpus after "
        "normalisation; CPU is user + system time of a whole aggregation, each contender's "
        f"minimum over {args.rounds} alternating rounds. Both ROVERs call the same tokenizer "
        "(normalise, then split); its column is the time of tokenizing every transcript alone."
    )
    say()
    say(
        "| workers' error rates | mean worker WER | best worker WER | ROVER WER (ours) "
        "| crowd-kit ROVER WER | outputs equal | ours CPU s | of which tokenizer | crowd-kit CPU s "
        "| speed-up (CPU) |"
    )
    say("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    shortfalls: list[str] = []
    for index, (name, rates) in enumerate(SCENARIOS.items()):
        data = corpus(args.items, rates, SEED + index)
        answers = data.answers
        contenders = {
            "ours": our_rover(answers),
            "tokenizer": tokenize_all(answers),
        }
        if with_crowdkit:
            contenders["crowd-kit"] = crowdkit_rover(answers)
        timings, outputs = alternate(contenders, args.rounds)
        references = [data.truth[item] for item in answers.items.tolist()]
        per_worker = {
            worker: corpus_wer(
                [ref for ref, w in zip(references, answers.workers, strict=True) if w == worker],
                [
                    text
                    for text, w in zip(answers.texts, answers.workers, strict=True)
                    if w == worker
                ],
            )
            for worker in range(len(rates))
        }
        mean_worker = corpus_wer(references, list(answers.texts))
        ours_wer = corpus_wer(data.truth, outputs["ours"])
        row = [name, f"{mean_worker:.3f}", f"{min(per_worker.values()):.3f}", f"{ours_wer:.3f}"]
        if with_crowdkit:
            theirs = outputs["crowd-kit"]
            equal = sum(a == b for a, b in zip(outputs["ours"], theirs, strict=True))
            speedup = timings["crowd-kit"].cpu / timings["ours"].cpu
            row += [f"{corpus_wer(data.truth, theirs):.3f}", f"{equal:,}/{args.items:,}"]
            row += [f"{timings['ours'].cpu:.2f}", f"{timings['tokenizer'].cpu:.2f}"]
            row.append(f"{timings['crowd-kit'].cpu:.2f}")
            row.append(f"{speedup:.0f}x")
            if equal != args.items:
                shortfalls.append(f"{name}: {args.items - equal} outputs differ from crowd-kit's")
            if speedup < 10:
                shortfalls.append(f"{name}: only {speedup:.1f}x crowd-kit's speed")
        else:
            row += ["", "", f"{timings['ours'].cpu:.2f}", f"{timings['tokenizer'].cpu:.2f}", "", ""]
        if ours_wer >= mean_worker:
            shortfalls.append(f"{name}: ROVER no better than the mean worker")
        say("| " + " | ".join(row) + " |")

    say()
    truth, exact = exact_answers(args.items, SEED + 100)
    truth_forms = [normalise(answer) for answer in truth]
    timings, _ = alternate(
        {"text_vote": lambda: [text or "" for text in text_vote(exact).texts]}, args.rounds
    )
    voted = text_vote(exact)
    vote_accuracy = np.mean([a == b for a, b in zip(voted.forms, truth_forms, strict=True)])
    raw_accuracy = np.mean(
        [normalise(a) == b for a, b in zip(raw_vote(exact), truth_forms, strict=True)]
    )
    worker_accuracy = np.mean(
        [
            normalise(text) == truth_forms[item]
            for item, text in zip(exact.items.tolist(), exact.texts, strict=True)
        ]
    )
    confident = voted.confidence >= 0.6
    confident_accuracy = np.mean(
        [a == b for a, b, c in zip(voted.forms, truth_forms, confident, strict=True) if c]
    )
    say(
        f"Exact answers: {args.items:,} items x 5 workers (right with probability "
        f"{', '.join(f'{a:.2f}' for a in EXACT_ACCURACIES)}), each typing one of 7 spellings."
    )
    say()
    say("| aggregation | accuracy | CPU s |")
    say("|---|---:|---:|")
    say(f"| mean single worker | {worker_accuracy:.3f} | |")
    say(f"| vote on raw strings | {raw_accuracy:.3f} | |")
    say(f"| text_vote (normalised) | {vote_accuracy:.3f} | {timings['text_vote'].cpu:.3f} |")
    say(
        f"| text_vote, items with confidence >= 0.6 ({confident.mean():.0%}) "
        f"| {confident_accuracy:.3f} | |"
    )
    if vote_accuracy <= raw_accuracy:
        shortfalls.append("text_vote no better than a vote on raw strings")
    say()
    say(
        "Targets: ROVER output equal to crowd-kit's and >= 10x faster (CPU), ROVER WER below "
        "the mean worker's, text_vote above the raw vote: "
        + ("all met." if not shortfalls else "; ".join(shortfalls) + ".")
    )
    args.out.write_text("\n".join(lines) + "\n")


def _version(distribution: str) -> str:
    from importlib.metadata import version

    return version(distribution)


def _process_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


if __name__ == "__main__":
    main()
