"""Corpus cleaning, tokenizer and token files on the committed sample text (no downloads)."""
import zlib
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("tokenizers")

from trainer import data as data_mod  # noqa: E402
from trainer.data import DataError, clean_gcide, is_validation, paragraphs, prepare  # noqa: E402

SAMPLE = Path(__file__).resolve().parents[1] / "trainer" / "data" / "sample.txt"

GCIDE_SNIPPET = '''00-database-info
This file was converted from the original database on:

Kettle \\Ket"tle\\, n. [AS. cetel; akin to G. kessel.]
   1. A metallic vessel, usually with a handle, for boiling water.
      [1913 Webster]

            The kettle sang upon the hob.          --Dickens.
      [1913 Webster]

   {Kettle drum} (Mus.), a drum made of a copper vessel.
      [1913 Webster]
'''


def test_clean_gcide_strips_markup():
    docs = clean_gcide(GCIDE_SNIPPET)
    assert docs == [
        "Kettle , n. 1. A metallic vessel, usually with a handle, for boiling water.",
        "The kettle sang upon the hob.",
        "Kettle drum (Mus.), a drum made of a copper vessel.",
    ]


def test_missing_gcide_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setattr(data_mod, "GCIDE_PATH", tmp_path / "nope.dict.dz")
    with pytest.raises(DataError, match="apt-get install -y dict-gcide"):
        prepare("gcide", 300, cache=tmp_path)


def test_prepare_sample(tmp_path):
    data = prepare(str(SAMPLE), 300, cache=tmp_path)
    meta = data.meta
    assert data.vocab_size == 300
    docs = paragraphs(SAMPLE.read_text())
    n_val = sum(zlib.crc32(d.encode()) % 100 == 0 for d in docs)
    assert meta["val_docs"] == n_val > 0 and meta["train_docs"] == len(docs) - n_val
    assert data.train.dtype == np.uint16 and len(data.train) == meta["train_tokens"] > 10_000
    assert isinstance(data.train, np.memmap)
    assert data.train.max() < 300
    # the end-of-text id separates documents: one per document
    assert int((np.asarray(data.val) == meta["eot_id"]).sum()) == n_val
    # the tokenizer round-trips the first validation document
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(str(data.directory / "tokenizer.json"))
    first_val = next(d for d in docs if is_validation(d))
    assert tok.decode(tok.encode(first_val).ids) == first_val
    # cached: a second call opens the same files without rewriting them
    mtime = (data.directory / "train.bin").stat().st_mtime_ns
    again = prepare(str(SAMPLE), 300, cache=tmp_path)
    assert again.directory == data.directory and (data.directory / "train.bin").stat().st_mtime_ns == mtime


def test_prepare_bytes_is_the_default(tmp_path):
    """Vocabulary 257: UTF-8 bytes of each document then end-of-text 256; decoding gives the text back."""
    data = prepare(str(SAMPLE), cache=tmp_path)
    assert data.vocab_size == 257 and data.meta["tokenizer"] == "bytes" and data.meta["eot_id"] == 256
    docs = paragraphs(SAMPLE.read_text())
    val_docs = [d for d in docs if is_validation(d)]
    expected = b"".join(d.encode("utf-8") + b"\x00" for d in val_docs)   # 0 stands in for end-of-text here
    val = np.asarray(data.val)
    assert len(val) == len(expected) and int((val == 256).sum()) == len(val_docs)
    assert bytes(np.where(val == 256, 0, val).astype(np.uint8)) == expected
    assert not (data.directory / "tokenizer.json").exists()


def test_batches_depend_only_on_seed_and_step(tmp_path):
    data = prepare(str(SAMPLE), 300, cache=tmp_path)
    x1, y1 = data.batch(5, 0, 4, 16)
    x2, y2 = data.batch(5, 0, 4, 16)
    x3, _ = data.batch(6, 0, 4, 16)
    assert x1.shape == (4, 16) and np.array_equal(x1, x2) and np.array_equal(y1, y2)
    assert np.array_equal(x1[:, 1:], y1[:, :-1])
    assert not np.array_equal(x1, x3)
    vx, vy = data.val_windows(16, 64)
    assert vx.shape == (4, 16) and np.array_equal(vx.reshape(-1)[1:], vy.reshape(-1)[:-1])
