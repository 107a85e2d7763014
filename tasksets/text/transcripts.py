"""ROVER: a word-level vote over several transcripts of one item (Fiscus, 1997).

J. G. Fiscus, "A post-processing system to yield reduced word error rates: Recognizer Output
Voting Error Reduction (ROVER)", IEEE ASRU 1997, pp. 347-354.

The result equals crowd-kit's ``crowdkit.aggregation.ROVER`` (1.4.2) given the same tokenizer
and detokenizer, word for word. Its rules, which this module reproduces:

- An item's transcripts are taken in the order of their rows. The first one's tokens are the
  first slots of a word transition network (WTN); every later transcript is aligned to the
  network and merged into it, so each slot holds one token (``""`` for none) per transcript.
- Alignment is an edit-distance programme between the transcript's tokens (rows ``i``) and
  the slots (columns ``j``): a token costs 0 against a slot that already holds it and 1
  against one that does not (diagonal); skipping a slot costs 0 when the slot already holds an
  empty token and 1 otherwise; inserting a token costs 1 and opens a new slot, empty for every
  earlier transcript. The border row and column cost ``j`` and ``i`` whatever the slots hold.
- Among equal costs a cell prefers the diagonal, then skipping a slot, then inserting; the
  backtrace from the last cell follows those choices.
- Each slot's winner is the token most transcripts gave; a tie goes to the longer token, then
  to the one that sorts last. Winning empty tokens are dropped and the rest detokenized.

Tokens are whatever the tokenizer returns, an empty string included: an empty token and a
skipped slot are the same ``""`` vote, as in crowd-kit. The default tokenizer is
``normalise(text).split()`` and the default detokenizer ``" ".join``.

How it runs: tokens are coded as integers, and the network of each item is an array of slots x
transcripts. Items with the same number of transcripts are aligned together, in chunks of
similar length: each row of the edit-distance programme is a few numpy operations over every
item and slot of the chunk (the in-row dependency on the left cell is a running minimum), and
the backtrace moves every item's cursor at once.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from itertools import chain

import numpy as np

from tasksets.text.answers import TextAnswers
from tasksets.text.normalisation import words

Tokenizer = Callable[[str], Sequence[str]]
Detokenizer = Callable[[list[str]], str]

_DIAGONAL, _SKIP_SLOT, _INSERT = 0, 1, 2
_NO_TOKEN = -2  # pads transcripts: never equal to a slot entry
_NO_SLOT = -1  # pads networks
# A chunk stops growing when items x transcript length x network length reaches this many
# cells (one byte each in the backtrace table).
_CHUNK_CELLS = 1 << 22


def rover(
    answers: TextAnswers,
    tokenizer: Tokenizer | None = None,
    detokenizer: Detokenizer | None = None,
) -> tuple[str | None, ...]:
    """The ROVER transcript of every item; ``None`` for an item with no answers."""
    tokenize: Tokenizer = words if tokenizer is None else tokenizer
    detokenize: Detokenizer = " ".join if detokenizer is None else detokenizer

    order, offsets = answers.item_rows()
    texts = answers.texts
    tokenized = [tokenize(texts[row]) for row in order.tolist()]
    lengths = np.fromiter(map(len, tokenized), np.int64, len(tokenized))  # in item order
    # A token's code is the number of distinct tokens before it; "" is 0.
    vocabulary: defaultdict[str, int] = defaultdict()
    vocabulary.default_factory = vocabulary.__len__
    vocabulary[""] = 0
    tokens_flat = np.fromiter(
        map(vocabulary.__getitem__, chain.from_iterable(tokenized)), np.int32, int(lengths.sum())
    )
    starts = np.zeros(order.size, dtype=np.int64)
    np.cumsum(lengths[:-1], out=starts[1:])
    names = list(vocabulary)
    # Slot ties go to the longer token, then the one that sorts last: rank tokens that way.
    rank = np.empty(len(names), dtype=np.int64)
    rank[sorted(range(len(names)), key=lambda code: (len(names[code]), names[code]))] = np.arange(
        len(names)
    )

    transcripts_per_item = np.diff(offsets)
    item_of_answer = answers.items[order]
    total_tokens = np.bincount(item_of_answer, weights=lengths, minlength=answers.n_items)
    longest = np.zeros(answers.n_items, dtype=np.int64)
    np.maximum.at(longest, item_of_answer, lengths)
    results: list[str | None] = [None] * answers.n_items
    answered = np.flatnonzero(transcripts_per_item > 0)
    # Same number of transcripts together, then by length, so a chunk pads little.
    answered = answered[np.lexsort((total_tokens[answered], transcripts_per_item[answered]))]
    for chunk in _chunks(answered, transcripts_per_item, total_tokens, longest):
        first_answer = offsets[chunk]
        network, slots = _network(
            first_answer, int(transcripts_per_item[chunk[0]]), tokens_flat, starts, lengths
        )
        winners = _vote(network, slots, rank)
        # Winning empty tokens are dropped; then each item's tokens are a slice.
        kept = winners != 0
        item_of_slot = np.repeat(np.arange(chunk.size), slots)
        kept_per_item = np.bincount(item_of_slot[kept], minlength=chunk.size)
        tokens = list(map(names.__getitem__, winners[kept].tolist()))
        end = 0
        for item, count in zip(chunk.tolist(), kept_per_item.tolist(), strict=True):
            results[item] = detokenize(tokens[end : end + count])
            end += count
    return tuple(results)


def _chunks(
    items: np.ndarray,
    transcripts_per_item: np.ndarray,
    total_tokens: np.ndarray,
    longest: np.ndarray,
) -> list[np.ndarray]:
    """Consecutive runs of ``items`` with one number of transcripts and a bounded size."""
    chunks: list[np.ndarray] = []
    start = 0
    while start < items.size:
        count = transcripts_per_item[items[start]]
        end = start
        widest = 0
        while end < items.size and transcripts_per_item[items[end]] == count:
            widest = max(widest, int(longest[items[end]]) + 1)
            cells = (end - start + 1) * widest * (int(total_tokens[items[end]]) + 1)
            if end > start and cells > _CHUNK_CELLS:
                break
            end += 1
        chunks.append(items[start:end])
        start = end
    return chunks


def _transcript(
    answer: np.ndarray, tokens_flat: np.ndarray, starts: np.ndarray, lengths: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The tokens of the given answers, one padded row each, and their lengths."""
    length = lengths[answer]
    width = max(int(length.max()), 1)  # one column at least, for the backtrace to read
    column = np.arange(width)
    inside = column < length[:, None]
    index = np.where(inside, starts[answer][:, None] + column, 0)
    tokens = tokens_flat[index] if tokens_flat.size else np.zeros(index.shape, np.int32)
    return np.where(inside, tokens, _NO_TOKEN).astype(np.int32), length


def _network(
    first_answer: np.ndarray,
    n_transcripts: int,
    tokens_flat: np.ndarray,
    starts: np.ndarray,
    lengths: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Every item's network, shape (transcripts, items, slots), and its number of slots.

    (Transcript first, so that each transcript's tokens are contiguous for the comparisons.)
    """
    first, slots = _transcript(first_answer, tokens_flat, starts, lengths)
    network = np.where(first == _NO_TOKEN, _NO_SLOT, first)[None]
    for k in range(1, n_transcripts):
        hypothesis, hypothesis_length = _transcript(first_answer + k, tokens_flat, starts, lengths)
        choice = _align(network, hypothesis)
        network, slots = _merge(network, slots, hypothesis, hypothesis_length, choice)
    return network, slots


def _align(network: np.ndarray, hypothesis: np.ndarray) -> np.ndarray:
    """The choice of every cell of the edit-distance programme, shape (items, i, j)."""
    _, n_items, n_slots = network.shape
    n_tokens = hypothesis.shape[1]
    choice = np.empty((n_items, n_tokens + 1, n_slots + 1), dtype=np.int8)
    choice[:, 0, :] = _SKIP_SLOT
    choice[:, :, 0] = _INSERT
    skip_cost = (~_holds(network, np.zeros((n_items, 1), np.int32))).astype(np.int32)
    # Cost of skipping slots 1..j, so that the in-row minimum is a running minimum.
    skip_before = np.zeros((n_items, n_slots + 1), dtype=np.int32)
    np.cumsum(skip_cost, axis=1, out=skip_before[:, 1:])
    previous = np.broadcast_to(np.arange(n_slots + 1, dtype=np.int32), (n_items, n_slots + 1))
    best_before = np.empty((n_items, n_slots + 1), dtype=np.int32)
    for i in range(1, n_tokens + 1):
        diagonal = previous[:, :-1] + ~_holds(network, hypothesis[:, i - 1 : i])
        best_before[:, 0] = i
        np.minimum(diagonal, previous[:, 1:] + 1, out=best_before[:, 1:])
        current = np.minimum.accumulate(best_before - skip_before, axis=1) + skip_before
        best = current[:, 1:]
        skip = current[:, :-1] + skip_cost
        choice[:, i, 1:] = np.where(
            diagonal == best, _DIAGONAL, np.where(skip == best, _SKIP_SLOT, _INSERT)
        )
        previous = current
    return choice


def _holds(network: np.ndarray, token: np.ndarray) -> np.ndarray:
    """Whether each slot holds the item's ``token`` (shape (items, 1)) from any transcript."""
    found = network[0] == token
    for column in network[1:]:
        found |= column == token
    return found


def _merge(
    network: np.ndarray,
    slots: np.ndarray,
    hypothesis: np.ndarray,
    hypothesis_length: np.ndarray,
    choice: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Follow the choices back from the last cell and add the hypothesis as a new column."""
    n_transcripts, n_items, _ = network.shape
    rows = np.arange(n_items)
    i, j = hypothesis_length.copy(), slots.copy()
    sources: list[np.ndarray] = []  # per step, the slot each item keeps (-1: a new slot)
    tokens: list[np.ndarray] = []  # per step, the token each item adds to it
    moving: list[np.ndarray] = []
    while True:
        active = (i > 0) | (j > 0)
        if not active.any():
            break
        step = choice[rows, i, j]
        diagonal = active & (step == _DIAGONAL)
        skip = active & (step == _SKIP_SLOT)
        insert = active & (step == _INSERT)
        sources.append(np.where(insert, -1, j - 1))
        tokens.append(np.where(skip, 0, hypothesis[rows, np.maximum(i - 1, 0)]))
        moving.append(active)
        i = i - (diagonal | insert)
        j = j - (diagonal | skip)
    if not moving:
        return np.full((n_transcripts + 1, n_items, 0), _NO_SLOT, np.int32), slots * 0
    active_steps = np.array(moving)
    new_slots = active_steps.sum(axis=0)
    step_index, item = np.nonzero(active_steps)
    position = new_slots[item] - 1 - step_index  # the backtrace runs from the last slot
    source = np.array(sources)[step_index, item]
    merged = np.full((n_transcripts + 1, n_items, int(new_slots.max())), _NO_SLOT, np.int32)
    if network.shape[2]:
        kept = np.where(source >= 0, network[:, item, np.maximum(source, 0)], 0)
    else:  # no slots yet: every step was an insertion
        kept = np.zeros((n_transcripts, item.size), np.int32)
    merged[:-1, item, position] = kept
    merged[-1, item, position] = np.array(tokens)[step_index, item]
    return merged, new_slots


def _vote(network: np.ndarray, slots: np.ndarray, rank: np.ndarray) -> np.ndarray:
    """The winning token of every slot, items one after another."""
    n_transcripts, _, n_slots = network.shape
    used = np.arange(n_slots) < slots[:, None]
    entries = network[:, used]  # (transcripts, all slots of all items)
    n_codes = rank.size
    slot_of_entry = np.tile(np.arange(entries.shape[1], dtype=np.int64), n_transcripts)
    pairs, counts = np.unique(slot_of_entry * n_codes + entries.ravel(), return_counts=True)
    slot, code = np.divmod(pairs, n_codes)
    # Most votes, then the token's rank (longer, then later in sort order): the last wins.
    order = np.lexsort((rank[code], counts, slot))
    last = np.ones(order.size, dtype=bool)
    last[:-1] = slot[order][1:] != slot[order][:-1]
    return code[order[last]]
