"""An offline text set for language models: English-like text from a fixed grammar, as bytes.

Every machine builds the same bytes: the generator draws from its own 64-bit PRNG
(splitmix64, pure integer arithmetic) and never from `random` or numpy, whose streams may
change between versions; `tests/test_data_text.py` pins the SHA-256 of the corpus.

The language has structure at several scales for a byte-level model to learn: spelling
(a lexicon of real words drawn with Zipf frequencies), agreement (singular subjects take
"sees", plural ones "see"; "a" before consonants, "an" before vowels), phrase structure
(adjectives, prepositional phrases, relative clauses, coordination), punctuation and
capitals, quoted speech, and paragraphs. Tokens are bytes (vocabulary 256), so the test
loss in nats / ln 2 is bits per byte.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math

import numpy as np

from scaling_data.dataset import Dataset

VOCAB = 256  # byte-level tokens
TRAIN_BYTES = 1_000_000
TEST_BYTES = 100_000
MASK64 = (1 << 64) - 1

NOUNS = [
    "cat",
    "dog",
    "bird",
    "child",
    "teacher",
    "farmer",
    "river",
    "mountain",
    "city",
    "house",
    "garden",
    "window",
    "letter",
    "story",
    "friend",
    "doctor",
    "king",
    "queen",
    "horse",
    "ship",
    "road",
    "forest",
    "village",
    "student",
    "machine",
    "painter",
    "song",
    "book",
    "tree",
    "engine",
    "island",
    "market",
    "soldier",
    "baker",
    "sister",
    "brother",
    "stranger",
    "lamp",
    "bridge",
    "door",
    "wolf",
    "owl",
    "apple",
    "orange",
    "idea",
    "answer",
]
IRREGULAR_PLURALS = {"child": "children", "wolf": "wolves", "city": "cities", "story": "stories"}
NAMES = [
    "Anna",
    "Ben",
    "Clara",
    "David",
    "Elena",
    "Felix",
    "Greta",
    "Hugo",
    "Iris",
    "Jonas",
    "Kira",
    "Leo",
    "Mara",
    "Nils",
    "Olga",
]
VERBS = [
    "see",
    "find",
    "follow",
    "help",
    "watch",
    "call",
    "remember",
    "visit",
    "carry",
    "love",
    "fear",
    "build",
    "paint",
    "open",
    "answer",
    "push",
    "pull",
    "greet",
    "trust",
    "forget",
]
INTRANSITIVE = [
    "sleep",
    "wait",
    "laugh",
    "run",
    "sing",
    "dance",
    "rest",
    "travel",
    "listen",
    "arrive",
]
ADJECTIVES = [
    "old",
    "young",
    "small",
    "large",
    "quiet",
    "loud",
    "bright",
    "dark",
    "happy",
    "tired",
    "green",
    "red",
    "careful",
    "strange",
    "gentle",
    "ancient",
    "empty",
]
ADVERBS = [
    "slowly",
    "quickly",
    "quietly",
    "often",
    "never",
    "always",
    "suddenly",
    "carefully",
    "again",
    "today",
]
PREPOSITIONS = ["near", "behind", "under", "above", "beside", "across", "with", "without"]
SAYING = ["said", "asked", "whispered", "shouted", "replied"]


class SplitMix64:
    """A small deterministic PRNG (Steele et al. 2014) with uniform floats and choices."""

    def __init__(self, seed: int):
        self.state = seed & MASK64

    def next(self) -> int:
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK64
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        return z ^ (z >> 31)

    def uniform(self) -> float:
        return (self.next() >> 11) / float(1 << 53)

    def chance(self, p: float) -> bool:
        return self.uniform() < p

    def zipf(self, words: tuple[str, ...] | list[str], cumulative: list[float]) -> str:
        """A word drawn with probability proportional to 1 / rank."""
        u = self.uniform() * cumulative[-1]
        lo, hi = 0, len(cumulative) - 1
        while lo < hi:  # first index whose cumulative weight exceeds u
            mid = (lo + hi) // 2
            if cumulative[mid] > u:
                hi = mid
            else:
                lo = mid + 1
        return words[lo]


def _zipf_table(words) -> tuple[list[str], list[float]]:
    total, cumulative = 0.0, []
    for rank in range(1, len(words) + 1):
        total += 1.0 / rank
        cumulative.append(total)
    return list(words), cumulative


def _plural(noun: str) -> str:
    return IRREGULAR_PLURALS.get(noun) or noun + ("es" if noun.endswith(("s", "sh", "ch")) else "s")


def _third_person(verb: str) -> str:
    return verb + ("es" if verb.endswith(("s", "sh", "ch")) else "s")


class Grammar:
    """Sentences of the language, drawn word by word from one `SplitMix64`."""

    def __init__(self, rng: SplitMix64):
        self.rng = rng
        self.tables = {
            name: _zipf_table(words)
            for name, words in dict(
                noun=NOUNS,
                name=NAMES,
                verb=VERBS,
                intransitive=INTRANSITIVE,
                adjective=ADJECTIVES,
                adverb=ADVERBS,
                preposition=PREPOSITIONS,
                saying=SAYING,
            ).items()
        }

    def word(self, kind: str) -> str:
        return self.rng.zipf(*self.tables[kind])

    def noun_phrase(self, depth: int = 0) -> tuple[str, bool]:
        """(phrase, plural?)."""
        if self.rng.chance(0.15):
            return self.word("name"), False
        plural = self.rng.chance(0.3)
        words = []
        if self.rng.chance(0.4):
            words.append(self.word("adjective"))
        noun = self.word("noun")
        words.append(_plural(noun) if plural else noun)
        if plural:
            determiner = "the" if self.rng.chance(0.6) else "some"
        elif self.rng.chance(0.5):
            determiner = "the"
        else:
            determiner = "an" if words[0][0] in "aeiou" else "a"
        phrase = " ".join([determiner, *words])
        if depth < 1 and self.rng.chance(0.2):
            place, _ = self.noun_phrase(depth + 1)
            phrase += f" {self.word('preposition')} {place}"
        elif depth < 1 and self.rng.chance(0.15):
            phrase += " that " + self.verb_phrase(plural, depth + 1)
        return phrase, plural

    def verb_phrase(self, plural: bool, depth: int = 0) -> str:
        agree = (lambda v: v) if plural else _third_person
        if self.rng.chance(0.3):
            phrase = agree(self.word("intransitive"))
        else:
            obj, _ = self.noun_phrase(depth + 1)
            phrase = f"{agree(self.word('verb'))} {obj}"
        if self.rng.chance(0.25):
            phrase += " " + self.word("adverb")
        return phrase

    def clause(self) -> str:
        subject, plural = self.noun_phrase()
        return f"{subject} {self.verb_phrase(plural)}"

    def sentence(self) -> str:
        text = self.clause()
        if self.rng.chance(0.2):
            text += (", and " if self.rng.chance(0.5) else ", but ") + self.clause()
        text = text[0].upper() + text[1:]
        if self.rng.chance(0.1):
            speaker, _ = self.noun_phrase(1)
            return f'"{text}," {speaker} {self.word("saying")}.'
        return text + ("?" if self.rng.chance(0.05) else ".")

    def paragraph(self) -> str:
        count = 2 + int(self.rng.uniform() * 5)
        return " ".join(self.sentence() for _ in range(count)) + "\n"


def generate(num_bytes: int, seed: int) -> bytes:
    """`num_bytes` of text (whole paragraphs, cut at the end) from stream `seed`."""
    grammar, parts, size = Grammar(SplitMix64(seed)), [], 0
    while size < num_bytes:
        paragraph = grammar.paragraph()
        parts.append(paragraph)
        size += len(paragraph)
    return "".join(parts).encode("ascii")[:num_bytes]


def corpus() -> tuple[bytes, bytes]:
    """(train, test) text: independent streams of the same language."""
    return generate(TRAIN_BYTES, seed=1), generate(TEST_BYTES, seed=2)


def corpus_sha256() -> str:
    train, test = corpus()
    return hashlib.sha256(train + b"\0" + test).hexdigest()


def unigram_loss(train: np.ndarray, test: np.ndarray) -> float:
    """Cross entropy (nats per byte) of `test` under the training set's byte frequencies
    (add-one smoothing): what a model that ignores context achieves."""
    counts = np.bincount(train, minlength=VOCAB).astype(np.float64) + 1.0
    log_p = np.log(counts / counts.sum())
    return float(-log_p[test].mean())


def windows(tokens: np.ndarray, seq_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Non-overlapping windows: inputs [N, seq_len] and next-token targets [N, seq_len]."""
    count = (len(tokens) - 1) // seq_len
    x = tokens[: count * seq_len].reshape(count, seq_len)
    y = tokens[1 : count * seq_len + 1].reshape(count, seq_len)
    return x.astype(np.int32), y.astype(np.int32)


@dataclasses.dataclass(frozen=True)
class TextDataset(Dataset):
    """Token windows: x [N, T] int32 tokens, y [N, T] the next tokens; num_classes = vocab."""

    unigram_loss: float = math.nan

    def summary(self) -> str:
        return (
            f"{self.name}: {len(self.x_train)} train / {len(self.x_test)} test windows of "
            f"{self.x_train.shape[1]} bytes, vocabulary {self.num_classes}; unigram baseline "
            f"{self.unigram_loss:.3f} nats = {self.unigram_loss / math.log(2):.3f} bits per byte"
        )

    def extra_metrics(self, loss: float) -> dict[str, float]:
        return {"bits_per_byte": loss / math.log(2)}


def grammar_text(seq_len: int = 64) -> TextDataset:
    """The generated language as byte windows of `seq_len` (ValueError when not in
    [1, 4096])."""
    if not 1 <= seq_len <= 4096:
        raise ValueError(f"seq_len must be in [1, 4096], got {seq_len}")
    train, test = (np.frombuffer(part, np.uint8) for part in corpus())
    x_train, y_train = windows(train, seq_len)
    x_test, y_test = windows(test, seq_len)
    return TextDataset(
        name="grammar_text",
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
        num_classes=VOCAB,
        unigram_loss=unigram_loss(train, test),
    )


TEXT_SOURCES = {"grammar_text": grammar_text}
