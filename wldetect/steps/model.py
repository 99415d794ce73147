"""The trainable model: frozen token embeddings, a learnable weight per token, dropout, a linear projection
to language logits, and pooling over the sequence.

Each token's logits are `(E[t] * w[t]) @ W.T + b`, so after training the whole model folds into one
`(vocab_size, n_languages)` lookup table (`wldetect.lookup`) and inference needs no matrix multiply at all.

Only real tokens are gathered and projected: a padded batch is flattened to its real positions first, so the
expensive part (the `hidden_dim`-wide gather and projection) never touches padding, and padding positions are
filled with a value that can never win `max`/`logsumexp` and is excluded from `average`.
"""

from __future__ import annotations

import torch
from torch import nn

from wldetect.errors import WLDetectError
from wldetect.pooling import POOLINGS


class LanguageDetectionModel(nn.Module):
    """Pooled per-token language logits over frozen embeddings.

    `token_mask` (bool, `vocab_size`, True = keep) sets the weight of every masked token to exactly 0.0 at
    initialisation; those weights stay ordinary trainable parameters and move if their tokens occur.
    """

    def __init__(
        self,
        embeddings: torch.Tensor,
        n_languages: int,
        *,
        dropout: float = 0.1,
        pooling: str = "logsumexp",
        token_mask: torch.Tensor | None = None,
    ):
        super().__init__()
        if embeddings.ndim != 2:
            raise WLDetectError(f"embeddings must be 2-D (vocab_size, hidden_dim), got shape {tuple(embeddings.shape)}")
        if pooling not in POOLINGS:
            raise WLDetectError(f"pooling {pooling!r}: expected one of {', '.join(POOLINGS)}")
        vocab_size, hidden_dim = embeddings.shape
        self.vocab_size = int(vocab_size)
        self.hidden_dim = int(hidden_dim)
        self.n_languages = int(n_languages)
        self.pooling = pooling
        # A buffer, not a parameter: never trained, and non-persistent so checkpoints and state dicts do not
        # carry a 5.6 GB copy of a matrix that is already cached on disk.
        self.register_buffer("embeddings", embeddings, persistent=False)
        self.token_weights = nn.Parameter(torch.ones(self.vocab_size, 1))
        if token_mask is not None:
            token_mask = torch.as_tensor(token_mask)
            if token_mask.ndim != 1 or token_mask.shape[0] != self.vocab_size:
                raise WLDetectError(
                    f"Token mask shape doesn't match vocab_size: mask has shape {tuple(token_mask.shape)}, "
                    f"vocab_size is {self.vocab_size}"
                )
            with torch.no_grad():
                self.token_weights[~token_mask.to(torch.bool)] = 0.0
        if not 0.0 <= dropout < 1.0:
            raise WLDetectError(f"dropout must be in [0, 1), got {dropout}")
        self.dropout = dropout
        self.projection = nn.Linear(self.hidden_dim, self.n_languages)

    def token_logits(self, token_ids: torch.Tensor) -> torch.Tensor:
        """Language logits of each token id in a flat (N,) tensor: (N, n_languages).

        Computes `projection(dropout(E[t] * w[t]))` as `w[t] * (dropout(E[t]) @ W.T) + b`: the same numbers
        (a scalar commutes with dropout's mask and with the matrix product), but the weight is applied to
        n_languages columns instead of hidden_dim, and its gradient is a reduction over n_languages.
        """
        embedded = self.embeddings.index_select(0, token_ids)  # a fresh copy, no grad: the buffer is frozen
        if self.training and self.dropout > 0:
            keep_probability = drop_(embedded, self.dropout)
            projected = nn.functional.linear(embedded, self.projection.weight) / keep_probability
        else:
            projected = nn.functional.linear(embedded, self.projection.weight)
        return projected * self.token_weights.index_select(0, token_ids) + self.projection.bias

    def forward(self, token_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Pooled logits (batch, n_languages) of a batch padded to its longest sequence.

        `attention_mask` is True at real positions. A row with no real token gets all-zero logits.
        """
        attention_mask = attention_mask.to(torch.bool)
        logits = self.token_logits(token_ids[attention_mask])  # real positions only
        return pool_padded(logits, attention_mask, self.pooling)

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())


def drop_(x: torch.Tensor, p: float) -> float:
    """Zero each element of `x` in place with probability `p` (quantised to 1/32768); return the keep probability.

    Dropout without its rescaling (the caller divides the much narrower projected logits instead). The keep
    decisions use 15 random bits each, four per 64-bit draw of torch's generator, so a batch costs a quarter
    of the generator calls and none of the float conversions of `torch.nn.functional.dropout`, which on a CPU
    costs more than the rest of a training step. It draws from torch's global generator, so seeding and
    checkpointed RNG state cover it.
    """
    threshold = round(p * 32768)
    n = x.numel()
    words = torch.empty((n + 3) // 4, dtype=torch.int64, device=x.device).random_()
    bits = words.view(torch.int16)[:n].view_as(x)  # the low 15 bits of every 16-bit word are uniform
    x.mul_(bits.bitwise_and_(0x7FFF) >= threshold)
    return (32768 - threshold) / 32768


def pool_padded(token_logits: torch.Tensor, attention_mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """Pool flat per-token logits (N, C) of the True positions of `attention_mask` (B, L) to (B, C)."""
    batch, length = attention_mask.shape
    n_classes = token_logits.shape[-1]
    lengths = attention_mask.sum(dim=1)
    if pooling == "average":
        padded = token_logits.new_zeros(batch, length, n_classes)
        padded = padded.masked_scatter(attention_mask[..., None], token_logits)
        return padded.sum(dim=1) / lengths.clamp(min=1)[:, None].to(token_logits.dtype)
    # The lowest finite value, not -inf: it can never win a max and exp() of it is 0, yet a row of padding
    # only (an example that tokenised to nothing) stays finite and has no NaN gradient.
    fill = torch.finfo(token_logits.dtype).min
    padded = token_logits.new_full((batch, length, n_classes), fill)
    padded = padded.masked_scatter(attention_mask[..., None], token_logits)
    if pooling == "max":
        pooled = padded.amax(dim=1)
    elif pooling == "logsumexp":
        pooled = torch.logsumexp(padded, dim=1)
    else:
        raise WLDetectError(f"pooling {pooling!r}: expected one of {', '.join(POOLINGS)}")
    return torch.where(lengths[:, None] > 0, pooled, torch.zeros_like(pooled))
