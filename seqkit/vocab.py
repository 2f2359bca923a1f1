"""The token vocabulary, built from the training split and stored in checkpoints."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<bos>", "<eos>"
SPECIALS = (PAD, UNK, BOS, EOS)


class Vocabulary:
    """A fixed mapping between tokens and ids.

    Ids 0 to 3 are `<pad>`, `<unk>`, `<bos>` and `<eos>`. The other tokens follow
    by falling count, with ties broken by the token itself, so the ids do not
    depend on the order the texts were read in.
    """

    pad_id, unk_id, bos_id, eos_id = 0, 1, 2, 3

    def __init__(self, tokens: Sequence[str]):
        if tuple(tokens[: len(SPECIALS)]) != SPECIALS:
            raise ValueError(f"a vocabulary must start with {SPECIALS}")
        self.tokens = list(tokens)
        self.index = {token: i for i, token in enumerate(self.tokens)}
        if len(self.index) != len(self.tokens):
            raise ValueError("a vocabulary must not hold a token twice")

    @classmethod
    def from_texts(
        cls,
        tokenized: Iterable[Sequence[str]],
        min_count: int = 1,
        max_size: int | None = None,
    ) -> Vocabulary:
        """Count tokens and keep those seen at least `min_count` times."""
        counts: Counter[str] = Counter()
        for tokens in tokenized:
            counts.update(tokens)
        for special in SPECIALS:
            counts.pop(special, None)
        kept = sorted(
            (token for token, count in counts.items() if count >= min_count),
            key=lambda token: (-counts[token], token),
        )
        if max_size is not None:
            kept = kept[: max(0, max_size - len(SPECIALS))]
        return cls([*SPECIALS, *kept])

    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, token: str) -> bool:
        return token in self.index

    def encode(self, tokens: Iterable[str]) -> list[int]:
        """Map tokens to ids; unknown tokens become `<unk>`."""
        unk = self.unk_id
        return [self.index.get(token, unk) for token in tokens]

    def decode(self, ids: Iterable[int], strip_specials: bool = True) -> list[str]:
        """Map ids to tokens, dropping `<pad>`, `<bos>` and `<eos>` by default."""
        skipped = {self.pad_id, self.bos_id, self.eos_id} if strip_specials else set()
        return [self.tokens[i] for i in ids if i not in skipped]

    def unknown(self, tokens: Iterable[str]) -> list[str]:
        """Return the distinct tokens missing from the vocabulary, in input order."""
        return list(dict.fromkeys(t for t in tokens if t not in self.index))

    def to_list(self) -> list[str]:
        """Return the tokens in id order, for storing in a checkpoint."""
        return list(self.tokens)
