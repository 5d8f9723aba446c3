"""Corpus, tokenizer and token files. Nothing is downloaded: text comes from installed Debian packages
(``dict-gcide``: /usr/share/dictd/gcide.dict.dz; optionally ``r-cran-janeaustenr`` through Rscript) or a
local plain-text file (paragraphs separated by blank lines).

``prepare(source)`` cleans the text into documents (paragraphs), holds out every document whose CRC32 is
0 mod 100 as the fixed validation split (about 1%), tokenizes the documents and writes token ids (uint16,
documents separated by an end-of-text id) to ``train.bin`` / ``val.bin``, read back through
``numpy.memmap``. Vocabulary ``BYTE_VOCAB`` = 257 (the default) is byte-level: the UTF-8 bytes 0-255 plus
end-of-text 256, no tokenizer to train. Larger vocabularies train a byte-level BPE with ``tokenizers``
on the training documents. Results are cached by a key of the
source, its size and the vocabulary size under ``$BAYESMOE_CACHE`` (default ~/.cache/bayesmoe)/data.
"""
from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import shutil
import subprocess
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .files import write_atomic

GCIDE_PATH = Path(os.environ.get("BAYESMOE_GCIDE", "/usr/share/dictd/gcide.dict.dz"))
"""The GCIDE dictd file (``$BAYESMOE_GCIDE`` overrides the Debian path, e.g. on a machine without the package)."""
AUSTEN_BOOKS = ("sensesensibility", "prideprejudice", "mansfieldpark", "emma", "northangerabbey", "persuasion")
EOT = "<|endoftext|>"
BYTE_VOCAB = 257
FORMAT_VERSION = 1


class DataError(RuntimeError):
    """A corpus that cannot be found or prepared (message says what to install)."""


def cache_root() -> Path:
    return Path(os.environ.get("BAYESMOE_CACHE", Path.home() / ".cache" / "bayesmoe"))


_TAG = re.compile(r"\[[^\]]*\]")          # [1913 Webster], [Obs.], etymologies
_PRON = re.compile(r"\\[^\\\n]*\\")        # \A*buse"\ pronunciations
_CITE = re.compile(r"--\s*[A-Z][^\n]*")    # --Shak. citations to end of line
_SPACE = re.compile(r"\s+")


def clean_gcide(raw: str) -> list[str]:
    """GCIDE dictd text -> plain-English paragraphs (markup, tags, pronunciations, citations removed)."""
    docs = []
    for para in re.split(r"\n\s*\n", raw):
        if para.lstrip().startswith("00-database") or "00-database" in para[:40]:
            continue
        text = _CITE.sub(" ", _PRON.sub(" ", _TAG.sub(" ", para)))
        text = _SPACE.sub(" ", text.replace("{", "").replace("}", "")).strip()
        if len(text) >= 20:
            docs.append(text)
    return docs


def paragraphs(raw: str) -> list[str]:
    """Plain text -> paragraphs (blank-line separated, inner whitespace collapsed, empty ones dropped)."""
    return [p for p in (_SPACE.sub(" ", x).strip() for x in re.split(r"\n\s*\n", raw)) if p]


def gcide_docs(path: Path | None = None) -> list[str]:
    path = path or GCIDE_PATH
    if not path.exists():
        raise DataError(f"{path} not found: install the corpus with `apt-get install -y dict-gcide`")
    return clean_gcide(gzip.open(path).read().decode("utf-8", errors="replace"))


def austen_docs() -> list[str]:
    """Jane Austen's six novels from the R package janeaustenr (needs Rscript), one paragraph per doc."""
    books = ", ".join(AUSTEN_BOOKS)
    script = f"library(janeaustenr); for (b in list({books})) {{ writeLines(b); writeLines('') }}"
    if shutil.which("Rscript") is None:
        raise DataError("Rscript not found: install `apt-get install -y r-cran-janeaustenr`")
    res = subprocess.run(["Rscript", "-e", script], capture_output=True, text=True)
    if res.returncode:
        raise DataError(f"janeaustenr unavailable: {res.stderr.strip().splitlines()[-1:]}")
    return paragraphs(res.stdout)


def source_docs(source: str) -> tuple[list[str], str]:
    """Documents and a fingerprint for ``gcide``, ``austen``, ``gcide+austen`` or a text-file path."""
    docs, prints = [], []
    for part in source.split("+"):
        if part == "gcide":
            docs += gcide_docs()
            prints.append(f"gcide:{GCIDE_PATH.stat().st_size}")
        elif part == "austen":
            docs += austen_docs()
            prints.append("austen")
        else:
            path = Path(part)
            if not path.is_file():
                raise DataError(f"corpus {part!r} is not gcide, austen or a text file")
            raw = path.read_bytes()
            docs += paragraphs(raw.decode("utf-8", errors="replace"))
            prints.append(f"file:{hashlib.sha256(raw).hexdigest()[:16]}")
    return docs, "+".join(prints)


def is_validation(doc: str) -> bool:
    """The fixed held-out split: documents whose CRC32 is 0 mod 100."""
    return zlib.crc32(doc.encode("utf-8")) % 100 == 0


@dataclass(frozen=True)
class TokenData:
    """Memory-mapped token ids of one prepared corpus. ``train`` / ``val``: uint16 arrays."""

    directory: Path
    vocab_size: int
    train: np.ndarray
    val: np.ndarray

    @classmethod
    def open(cls, directory: Path) -> "TokenData":
        meta = json.loads((directory / "meta.json").read_text())
        mm = lambda name: np.memmap(directory / name, dtype=np.uint16, mode="r")  # noqa: E731
        return cls(directory, int(meta["vocab_size"]), mm("train.bin"), mm("val.bin"))

    @property
    def meta(self) -> dict:
        return json.loads((self.directory / "meta.json").read_text())

    def batch(self, step: int, seed: int, batch_size: int, seq_len: int) -> tuple[np.ndarray, np.ndarray]:
        """Training inputs and targets [batch_size, seq_len] (int64) for ``step``: random windows drawn
        from a generator seeded by (seed, step), so a resumed run sees exactly the same batches."""
        rng = np.random.default_rng([seed, step])
        starts = rng.integers(0, len(self.train) - seq_len - 1, size=batch_size)
        win = np.stack([self.train[s:s + seq_len + 1] for s in starts]).astype(np.int64)
        return win[:, :-1], win[:, 1:]

    def val_windows(self, seq_len: int, max_tokens: int) -> tuple[np.ndarray, np.ndarray]:
        """The fixed validation set: consecutive non-overlapping windows from the start of ``val``."""
        n = min((len(self.val) - 1) // seq_len, max(1, max_tokens // seq_len))
        if n < 1:
            raise DataError(f"validation split has {len(self.val)} tokens, fewer than seq_len {seq_len}")
        ids = np.asarray(self.val[:n * seq_len + 1], dtype=np.int64)
        x = ids[:-1].reshape(n, seq_len)
        y = ids[1:].reshape(n, seq_len)
        return x, y


def _encode(tokenizer, docs: list[str], eot: int) -> np.ndarray:
    out = []
    for i in range(0, len(docs), 4096):
        for enc in tokenizer.encode_batch(docs[i:i + 4096]):
            out.append(np.asarray(enc.ids + [eot], dtype=np.uint16))
    return np.concatenate(out) if out else np.zeros(0, np.uint16)


def _encode_bytes(docs: list[str]) -> np.ndarray:
    """Byte-level ids: each document's UTF-8 bytes (0-255) followed by end-of-text (256)."""
    out = [np.append(np.frombuffer(d.encode("utf-8"), dtype=np.uint8).astype(np.uint16), np.uint16(256))
           for d in docs]
    return np.concatenate(out) if out else np.zeros(0, np.uint16)


def prepare(source: str = "gcide", vocab_size: int = BYTE_VOCAB, cache: Path | None = None) -> TokenData:
    """Clean, split, tokenize and write token files once; later calls open the cache.

    ``vocab_size`` 257 is byte-level (no tokenizer); 258-65535 trains a byte-level BPE of that size.
    """
    if not 256 < vocab_size <= 65535:
        raise DataError(f"vocab_size must be 257 (bytes) or a BPE size in (257, 65535], got {vocab_size}")
    docs, fingerprint = source_docs(source)
    key = hashlib.sha256(f"{FORMAT_VERSION}|{fingerprint}|{vocab_size}".encode()).hexdigest()[:16]
    directory = (cache or cache_root() / "data") / key
    if (directory / "meta.json").exists():
        return TokenData.open(directory)
    directory.mkdir(parents=True, exist_ok=True)
    train_docs = [d for d in docs if not is_validation(d)]
    val_docs = [d for d in docs if is_validation(d)]
    if not train_docs or not val_docs:
        raise DataError(f"corpus {source!r} has too few documents for a train/validation split")
    if vocab_size == BYTE_VOCAB:
        eot, n_vocab, tokenizer = 256, BYTE_VOCAB, "bytes"
        train, val = _encode_bytes(train_docs), _encode_bytes(val_docs)
    else:
        from tokenizers import ByteLevelBPETokenizer

        tok = ByteLevelBPETokenizer()
        tok.train_from_iterator(train_docs, vocab_size=vocab_size, min_frequency=2, special_tokens=[EOT],
                                show_progress=False)
        eot, n_vocab, tokenizer = tok.token_to_id(EOT), tok.get_vocab_size(), "byte-level BPE"
        write_atomic(directory / "tokenizer.json", tok._tokenizer.to_str().encode())
        train, val = _encode(tok, train_docs, eot), _encode(tok, val_docs, eot)
    write_atomic(directory / "train.bin", train.tobytes())
    write_atomic(directory / "val.bin", val.tobytes())
    meta = {"source": source, "fingerprint": fingerprint, "vocab_size": n_vocab, "tokenizer": tokenizer,
            "requested_vocab_size": vocab_size, "eot_id": eot, "train_docs": len(train_docs),
            "val_docs": len(val_docs), "train_tokens": int(len(train)), "val_tokens": int(len(val)),
            "train_bytes": sum(len(d.encode()) for d in train_docs), "format": FORMAT_VERSION,
            "validation_rule": "crc32(doc) % 100 == 0"}
    write_atomic(directory / "meta.json", json.dumps(meta, indent=2).encode())
    return TokenData.open(directory)
