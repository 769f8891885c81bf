"""The embedded model's tokenizer: words through a `tokenizers` word-level model, numbers as value tokens.

Text is split into special tokens, numbers and word segments:

* a number (``4.1934``, ``297``, ``41.8``, ``2.146671e+01``; no sign) becomes ONE
  value token (:mod:`comllm.lm.values`) of its value, absorbing a single space before
  it (an exponent is part of the number: ``2.15e+01`` is 21.5, not 2.15 and three words);
* an integer right after an *id prefix* (``server 3``, ``服务器3``) stays a word,
  so the model can copy a server id from the prompt into its answer;
* word segments go through a word-level `tokenizers` model whose pieces keep
  their leading space (``" server"``, ``" 3"``, ``":"``, ``"\\n"``), so decoding
  is exact apart from number formatting.

The class is a Hugging Face ``PreTrainedTokenizer``: ``save_pretrained`` /
``AutoTokenizer.from_pretrained`` work (after ``import comllm.lm``), and so do
``tokenizer(text)``, ``decode`` and TRL. Our own code uses the faster
:meth:`ComllmTokenizer.encode_batch`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from typing import Any

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizer

from comllm.lm.values import ValueCodec

SPECIAL_TOKENS = ("<pad>", "<s>", "</s>", "<unk>")
PAD, BOS, EOS, UNK = SPECIAL_TOKENS
#: integers right after one of these stay word tokens (server ids)
DEFAULT_ID_PREFIXES = ("server ", "Server ", "server", "服务器", "servers ")
#: how word segments are cut into pieces (each keeps its leading space)
WORD_PATTERN = r" ?[A-Za-z_]+| ?\d+| ?[^\sA-Za-z_\d]|\n| +|\s"
#: id words always in the vocabulary: answers may name any server up to this id
MAX_SERVER_ID = 128
_VALUE_OPEN, _VALUE_CLOSE = "\u27e6", "\u27e7"  # ⟦4.19⟧ is how a value token prints


def _number_regex(id_prefixes: Iterable[str]) -> re.Pattern:
    behind = "".join(f"(?<!{re.escape(p)})" for p in sorted(set(id_prefixes), key=len, reverse=True))
    return re.compile(rf"(?P<sp> )?(?<![A-Za-z_\d.]){behind}(?P<num>\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)")


def _word_tokenizer() -> Tokenizer:
    tok = Tokenizer(models.WordLevel(unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(WORD_PATTERN), behavior="isolated")
    tok.decoder = decoders.Fuse()
    return tok


class ComllmTokenizer(PreTrainedTokenizer):
    """Word-level text plus one value token per number; see the module docstring.

    ``vocab_file``: the word-level `tokenizers` JSON; ``value_codec``: a
    :class:`~comllm.lm.values.ValueCodec` as a dict (its ``base`` must equal the
    word vocabulary's size); ``id_prefixes``: words after which an integer is an
    id. ``stats`` counts value tokens, clipped values and unknown words.
    """

    vocab_files_names = {"vocab_file": "word_tokenizer.json"}
    model_input_names = ["input_ids", "attention_mask"]

    def __init__(
        self,
        vocab_file: str,
        value_codec: dict | None = None,
        id_prefixes: list[str] | None = None,
        pad_token: str = PAD,
        bos_token: str = BOS,
        eos_token: str = EOS,
        unk_token: str = UNK,
        **kwargs: Any,
    ) -> None:
        self.words = Tokenizer.from_file(vocab_file)
        self._vocab: dict[str, int] = self.words.get_vocab()
        self._inv: dict[int, str] = {i: t for t, i in self._vocab.items()}
        for tok in SPECIAL_TOKENS:
            if tok not in self._vocab:
                raise ValueError(f"word tokenizer {vocab_file} lacks the special token {tok!r}")
        self.codec = ValueCodec.from_dict(value_codec) if value_codec else ValueCodec(base=len(self._vocab))
        if self.codec.base != len(self._vocab):
            raise ValueError(
                f"value_codec base={self.codec.base} must equal the word vocabulary size {len(self._vocab)}"
            )
        self.id_prefixes = list(id_prefixes if id_prefixes is not None else DEFAULT_ID_PREFIXES)
        self._num_re = _number_regex(self.id_prefixes)
        self._special_re = re.compile("(" + "|".join(re.escape(t) for t in SPECIAL_TOKENS) + ")")
        self._segment_cache: dict[str, list[int]] = {}
        self.stats = {"values": 0, "clipped": 0, "unknown": 0}
        kwargs.setdefault("clean_up_tokenization_spaces", False)
        super().__init__(
            value_codec=self.codec.to_dict(),
            id_prefixes=self.id_prefixes,
            pad_token=pad_token,
            bos_token=bos_token,
            eos_token=eos_token,
            unk_token=unk_token,
            **kwargs,
        )

    # ---- building ---------------------------------------------------------
    @classmethod
    def build(
        cls,
        corpus: Iterable[str],
        directory: str | os.PathLike,
        codec: dict | None = None,
        id_prefixes: Iterable[str] | None = None,
    ) -> "ComllmTokenizer":
        """Train the word vocabulary on ``corpus`` (numbers removed), save it in ``directory``, load it.

        ``codec`` overrides :class:`ValueCodec` fields other than ``base``.
        """
        prefixes = list(id_prefixes if id_prefixes is not None else DEFAULT_ID_PREFIXES)
        num_re = _number_regex(prefixes)
        special_re = re.compile("|".join(re.escape(t) for t in SPECIAL_TOKENS))

        def segments() -> Iterable[str]:
            for text in corpus:
                for part in special_re.split(text):
                    for seg in _split_words(num_re, part):
                        # every word also with / without a leading space (a word may start a line or an answer)
                        yield seg
                        yield " " + seg.lstrip()
                        yield seg.lstrip()
            for i in range(MAX_SERVER_ID + 1):
                yield f" {i}"
                yield str(i)
            for c in range(33, 127):
                yield chr(c)
                yield " " + chr(c)

        words = _word_tokenizer()
        trainer = trainers.WordLevelTrainer(special_tokens=list(SPECIAL_TOKENS), min_frequency=1, show_progress=False)
        words.train_from_iterator(segments(), trainer)
        os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, cls.vocab_files_names["vocab_file"])
        words.save(path)
        fields = dict(codec or {})
        fields.pop("base", None)
        value_codec = ValueCodec(base=words.get_vocab_size(), **fields)
        return cls(vocab_file=path, value_codec=value_codec.to_dict(), id_prefixes=prefixes)

    # ---- fast path ----------------------------------------------------------
    @property
    def n_words(self) -> int:
        """Size of the word vocabulary (= the model's output vocabulary)."""
        return len(self._vocab)

    def _segment_ids(self, segment: str) -> list[int]:
        ids = self._segment_cache.get(segment)
        if ids is None:
            ids = self.words.encode(segment, add_special_tokens=False).ids
            if len(self._segment_cache) > 200_000:
                self._segment_cache.clear()
            self._segment_cache[segment] = ids
        return ids

    def encode_text(self, text: str) -> list[int]:
        """Ids of ``text`` (no special tokens added; special-token strings in it are honoured)."""
        out: list[int] = []
        unk = self._vocab[UNK]
        codec = self.codec
        for part in self._special_re.split(text) if "<" in text else (text,):
            if not part:
                continue
            if part in SPECIAL_TOKENS:
                out.append(self._vocab[part])
                continue
            pos = 0
            for m in self._num_re.finditer(part):
                if m.start() > pos:
                    out.extend(self._segment_ids(part[pos : m.start()]))
                tid, clipped = codec.encode(float(m.group("num")), spaced=m.group("sp") is not None)
                out.append(tid)
                self.stats["values"] += 1
                self.stats["clipped"] += clipped
                pos = m.end()
            if pos < len(part):
                out.extend(self._segment_ids(part[pos:]))
        self.stats["unknown"] += out.count(unk)
        return out

    def encode_batch(self, texts: Iterable[str]) -> list[list[int]]:
        """:meth:`encode_text` of each text."""
        return [self.encode_text(t) for t in texts]

    def values_of(self, ids: Iterable[int]) -> list[float]:
        """The values of the value tokens among ``ids`` (in order)."""
        return [self.codec.decode(i)[0] for i in ids if self.codec.is_value(i)]

    # ---- Hugging Face interface --------------------------------------------
    @property
    def vocab_size(self) -> int:
        """Every id this tokenizer can produce: words, then the value block."""
        return self.codec.end

    def get_vocab(self) -> dict[str, int]:
        """The word vocabulary (value ids are computed, not listed)."""
        return dict(self._vocab)

    def _add_tokens(self, new_tokens, special_tokens: bool = False) -> int:  # type: ignore[override]
        new = [t for t in (new_tokens or []) if str(t) and str(t) not in self._vocab]
        if new:
            raise ValueError(
                f"cannot add tokens {[str(t) for t in new]}: the value block follows the word vocabulary; "
                "build a new tokenizer with these words in its corpus"
            )
        return super()._add_tokens(new_tokens, special_tokens=special_tokens)

    def tokenize(self, text: str, **kwargs: Any) -> list[str]:  # type: ignore[override]
        return [self._convert_id_to_token(i) for i in self.encode_text(text)]

    def _tokenize(self, text: str, **kwargs: Any) -> list[str]:
        return self.tokenize(text)

    def _convert_token_to_id(self, token: str) -> int:
        if token.startswith(_VALUE_OPEN) and token.endswith(_VALUE_CLOSE):
            body = token[1:-1]
            return self.codec.encode(float(body), spaced=body.startswith(" "))[0]
        return self._vocab.get(token, self._vocab[UNK])

    def _convert_id_to_token(self, index: int) -> str:
        if self.codec.is_value(index):
            value, spaced = self.codec.decode(index)
            return _VALUE_OPEN + (" " if spaced else "") + self.codec.format(value) + _VALUE_CLOSE
        return self._inv.get(index, UNK)

    def convert_tokens_to_string(self, tokens: list[str]) -> str:
        return "".join(t[1:-1] if t.startswith(_VALUE_OPEN) and t.endswith(_VALUE_CLOSE) else t for t in tokens)

    def build_inputs_with_special_tokens(self, token_ids_0: list[int], token_ids_1: list[int] | None = None) -> list[int]:
        return list(token_ids_0) + (list(token_ids_1) if token_ids_1 else [])

    def get_special_tokens_mask(self, token_ids_0, token_ids_1=None, already_has_special_tokens: bool = False):
        ids = list(token_ids_0) + (list(token_ids_1) if token_ids_1 else [])
        if already_has_special_tokens:
            specials = {self._vocab[t] for t in SPECIAL_TOKENS}
            return [int(i in specials) for i in ids]
        return [0] * len(ids)

    def save_vocabulary(self, save_directory: str, filename_prefix: str | None = None) -> tuple[str, ...]:
        name = (filename_prefix + "-" if filename_prefix else "") + self.vocab_files_names["vocab_file"]
        path = os.path.join(save_directory, name)
        self.words.save(path)
        return (path,)


def _split_words(num_re: re.Pattern, text: str) -> list[str]:
    """The word segments of ``text`` (numbers removed)."""
    out, pos = [], 0
    for m in num_re.finditer(text):
        if m.start() > pos:
            out.append(text[pos : m.start()])
        pos = m.end()
    if pos < len(text):
        out.append(text[pos:])
    return out
