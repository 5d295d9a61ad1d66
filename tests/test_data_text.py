"""The offline text set: the same bytes everywhere, windows, baseline, and lm/vit runs."""

import json
import math

import numpy as np
import pytest
from cli_cases import one_line, run_table

import scaling_data as data
from scaling_data import text

# SHA-256 of train + b"\0" + test. A change here changes every text result: bump it only
# with a deliberate change of the language, and say so in WORKSPACE.md.
CORPUS_SHA256 = "a94c6cf597a569ce211133626324e4fca6f4fc9ee4c8c25531091334a891152f"


def test_corpus_is_the_same_bytes_on_every_machine():
    assert text.corpus_sha256() == CORPUS_SHA256


def test_the_prng_is_splitmix64():
    # reference values of splitmix64 seeded with 0 (Vigna's C implementation)
    rng = text.SplitMix64(0)
    assert [rng.next() for _ in range(2)] == [0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4]


def test_text_has_the_structure_it_claims():
    train, _ = text.corpus()
    words = train.decode("ascii").split()
    assert "sees" in words and "see" in words and "an" in words
    # agreement: a singular subject "The cat" is never followed by a plural verb
    sentence_pairs = set(zip(words, words[1:], words[2:]))
    assert ("The", "cat", "see") not in sentence_pairs
    assert train.count(b"\n") > 1000  # paragraphs


def test_windows_are_inputs_and_next_bytes():
    dataset = data.load("grammar_text", seq_len=32)
    assert dataset.x_train.shape[1] == 32 and dataset.x_train.dtype == np.int32
    np.testing.assert_array_equal(dataset.x_train[0, 1:], dataset.y_train[0, :-1])
    np.testing.assert_array_equal(dataset.x_train[1, 0], dataset.y_train[0, -1])
    assert dataset.num_classes == 256


def test_unigram_baseline_is_the_cross_entropy_of_byte_frequencies():
    train = np.array([0, 0, 0, 1], np.uint8)
    test = np.array([0, 1], np.uint8)
    counts = np.ones(256)
    counts[0] += 3
    counts[1] += 1
    p = counts / counts.sum()
    expected = -(math.log(p[0]) + math.log(p[1])) / 2
    assert text.unigram_loss(train, test) == pytest.approx(expected)
    dataset = data.load("grammar_text")
    assert 2.5 < dataset.unigram_loss < 3.5  # English-like bytes: ~4.3 bits
    assert "unigram baseline" in dataset.summary()
    assert dataset.extra_metrics(math.log(2)) == {"bits_per_byte": pytest.approx(1.0)}


def test_bad_window_length_is_a_value_error():
    with pytest.raises(ValueError, match="seq_len"):
        data.load("grammar_text", seq_len=0)


BAD_SETTINGS = [
    (["--model=lm", "--dataset=digits"], "--dataset"),
    (["--model=vit", "--dataset=grammar_text"], "--dataset"),
    (["--model=lm", "--seq_len=0"], "--seq_len"),
    (["--model=lm", "--heads=3"], "--heads"),
    (["--model=lm", "--head_dim=48"], "--head_dim"),
    (["--model=lm", "--positions=absolute"], "--positions"),
    (["--model=vit", "--pooling=max"], "--pooling"),
    (["--model=vit", "--patch_size=3"], "--patch_size"),
]


@pytest.fixture(scope="module")
def bad_setting_results(tmp_path_factory):
    """Every command line of BAD_SETTINGS in one interpreter (tests/cli_cases.py)."""
    return run_table("train", BAD_SETTINGS, tmp_path_factory.mktemp("bad_settings"),
                     lambda args, case: ([*args, "--steps=1", f"--workdir={case / 'w'}"],
                                         case / "w"))  # fmt: skip


@pytest.mark.parametrize("args, flag", BAD_SETTINGS)
def test_bad_transformer_settings_are_one_line_and_status_2(bad_setting_results, args, flag):
    line = one_line(bad_setting_results[" ".join(args)])
    assert line.startswith(f"error: {flag}"), line


def test_a_small_lm_learns_below_the_unigram_baseline(tmp_path):
    """In this process (its promise is what it learns; the CLI's are above)."""
    from scaling_training.config import TrainConfig
    from scaling_training.loop import train

    workdir, lines = tmp_path / "lm", []
    config = TrainConfig.from_flags(
        model="lm", width=32, base_width=32, depth=1, base_depth=1, seq_len=16, steps=150,
        eval_every=150, log_every=150, lr=1e-2, checkpoint_every=0, plots=False, tied=True,
        workdir=str(workdir),
    )  # fmt: skip
    train(config, echo=lines.append)
    stdout = "\n".join(lines)
    assert "unigram baseline" in stdout and "bits per byte" in stdout
    last = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()][-1]
    baseline = data.load("grammar_text").unigram_loss
    assert last["test_loss"] < 0.75 * baseline, (last, baseline)
    assert last["test_bits_per_byte"] == pytest.approx(last["test_loss"] / math.log(2))
