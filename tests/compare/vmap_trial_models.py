"""Modules a new user brings whose forward may not run (or may run wrongly) under ``torch.func.vmap``.

Each is written as a user writes it, knowing nothing of lightning-lrsched, save ``stacked_metrics``
(so that only ``vmap`` stands between it and stacking): SGD with momentum, cross-entropy on two
classes, ``val_loss`` and ``val_acc`` logged in validation. Sizes are tiny. The data: the package's
``SyntheticDataModule`` (10 features), or :class:`PaddedSentences` (token ids, 0 = padding).
"""

from __future__ import annotations

import lightning as L
import torch
from torch import nn
from torch.utils.data import TensorDataset

from tests.compare.own_models import OwnClassifier
from tests.compare.third_party_models import TinySentences

VOCAB = 16


class _Trial(L.LightningModule):
    """Cross-entropy on ``self(inputs)``; SGD with momentum; the steps a user writes (own_models.py's)."""

    stacked_metrics = OwnClassifier.stacked_metrics
    training_step = OwnClassifier.training_step
    validation_step = OwnClassifier.validation_step

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1, momentum=0.9)


class _MLP(_Trial):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(10, 8), nn.ReLU(), nn.Linear(8, 2))


def _masked_mean(embedded: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    keep = (tokens != 0).unsqueeze(-1).to(embedded.dtype)
    return (embedded * keep).sum(1) / keep.sum(1).clamp(min=1)


# (a) recurrent layers
class RecurrentClassifier(_Trial):
    """An embedding, an ``nn.LSTM`` (or ``nn.GRU``) over the tokens, a linear layer on the last hidden state."""

    def __init__(self, cell: str = "lstm") -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, 8, padding_idx=0)
        self.rnn = (nn.LSTM if cell == "lstm" else nn.GRU)(8, 8, batch_first=True)
        self.out = nn.Linear(8, 2)

    def forward(self, tokens):
        _, hidden = self.rnn(self.embed(tokens))
        last = hidden[0] if isinstance(hidden, tuple) else hidden
        return self.out(last[-1])


# (b) a tensor's value read in Python
class ItemClassifier(_MLP):
    """Scales its logits by their largest magnitude, read with ``.item()``."""

    def forward(self, x):
        logits = self.net(x)
        return logits / max(1.0, logits.detach().abs().max().item())


class IfPositiveClassifier(_MLP):
    """Flips its logits when their mean is negative: a Python ``if`` on a tensor."""

    def forward(self, x):
        logits = self.net(x)
        if logits.mean() > 0:
            return logits
        return -logits


# (c) in-place operations in forward
class CentresInputInPlace(_MLP):
    """Centres each batch in place (``x.sub_``) before its layers: the batch it was given changes."""

    def forward(self, x):
        x.sub_(x.mean(0, keepdim=True))
        return self.net(x)


class HalvesInputInPlace(_MLP):
    """Halves its batch in place (``x.mul_``: each call changes it again) and drops out hidden units in training."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(10, 8), nn.ReLU(), nn.Dropout(0.3), nn.Linear(8, 2))

    def forward(self, x):
        x.mul_(0.5)
        return self.net(x)


class ClipsWeightViewInPlace(_MLP):
    """Clips the first two input columns of its first layer's weight in place, every forward (a view of a parameter)."""

    def forward(self, x):
        with torch.no_grad():
            self.net[0].weight[:, :2].clamp_(-0.05, 0.05)
        return self.net(x)


# (d) data-dependent shapes
class NonzeroClassifier(_MLP):
    """Keeps only the hidden units active somewhere in the batch (``torch.nonzero`` on its activations)."""

    def forward(self, x):
        hidden = torch.relu(self.net[0](x))
        active = torch.nonzero(hidden.amax(0) > 0).squeeze(1)
        return hidden[:, active] @ self.net[2].weight[:, active].T + self.net[2].bias


class MaskedTokensClassifier(_Trial):
    """Mean of each sentence's non-padding embeddings, picked by a boolean mask of the tokens (a shape per sentence)."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, 8)
        self.out = nn.Linear(8, 2)

    def forward(self, tokens):
        embedded = self.embed(tokens)
        pooled = torch.stack([embedded[i][tokens[i] != 0].mean(0) for i in range(tokens.shape[0])])
        return self.out(pooled)


# (e) randomness in forward
class ReseedsInForward(_MLP):
    """Seeds torch's generator in forward, then adds noise to its inputs in training (a fixed augmentation)."""

    def forward(self, x):
        if self.training:
            torch.manual_seed(1234)
            x = x + 0.3 * torch.randn_like(x)
        return self.net(x)


class RandintClassifier(_MLP):
    """Zeroes two randomly drawn input features in training (``torch.randint``)."""

    def forward(self, x):
        if self.training:
            drop = torch.randint(0, x.shape[-1], (2,))
            x = x.index_fill(-1, drop, 0.0)
        return self.net(x)


class PerExampleRandintClassifier(_MLP):
    """Zeroes one randomly drawn feature per example in training (``torch.randint`` shaped like the hidden layer)."""

    def forward(self, x):
        hidden = torch.relu(self.net[0](x))
        if self.training:
            drop = torch.randint(0, hidden.shape[-1], hidden.shape[:-1])
            hidden = hidden * (torch.arange(hidden.shape[-1]) != drop.unsqueeze(-1))
        return self.net[2](hidden)


class NoisyEvaluation(_MLP):
    """Adds noise to its inputs in evaluation only (a robustness check a user bakes into validation)."""

    def forward(self, x):
        if not self.training:
            x = x + 0.5 * torch.randn_like(x)
        return self.net(x)


# (f) an embedding that renormalises its weight in place
class MaxNormEmbedding(_Trial):
    """``nn.Embedding(padding_idx=0, max_norm=1.0)``: each lookup renormalises the rows it reads, in place."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, 8, padding_idx=0, max_norm=1.0)
        self.out = nn.Linear(8, 2)

    def forward(self, tokens):
        return self.out(_masked_mean(self.embed(tokens), tokens))


# (g) normalisation without running statistics
class NormCNN(_Trial):
    """A small CNN on the 10 features as a 1 x 10 signal, with GroupNorm or LayerNorm."""

    def __init__(self, norm: str = "group") -> None:
        super().__init__()
        self.conv = nn.Conv1d(1, 4, 3, padding=1)
        self.norm = nn.GroupNorm(2, 4) if norm == "group" else nn.LayerNorm([4, 10])
        self.out = nn.Linear(40, 2)

    def forward(self, x):
        return self.out(torch.relu(self.norm(self.conv(x.unsqueeze(1)))).flatten(1))


# (h) attention with a padding mask
class AttentionClassifier(_Trial):
    """``nn.MultiheadAttention`` over the tokens with ``key_padding_mask`` (padding ignored), masked mean, linear."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, 8, padding_idx=0)
        self.attention = nn.MultiheadAttention(8, 2, batch_first=True)
        self.out = nn.Linear(8, 2)

    def forward(self, tokens):
        embedded = self.embed(tokens)
        attended, _ = self.attention(embedded, embedded, embedded, key_padding_mask=tokens == 0, need_weights=False)
        return self.out(_masked_mean(attended, tokens))


class EncoderClassifier(_Trial):
    """``nn.TransformerEncoder`` (its default nested-tensor fast path) with ``src_key_padding_mask``, masked mean.

    Training runs the layers op by op; evaluation (no gradient) takes the fast path, which packs the
    unpadded tokens into a nested tensor.
    """

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, 8, padding_idx=0)
        layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 1)
        self.out = nn.Linear(8, 2)

    def forward(self, tokens):
        encoded = self.encoder(self.embed(tokens), src_key_padding_mask=tokens == 0)
        return self.out(_masked_mean(encoded, tokens))


# (i) a non-float buffer updated in forward
class CountsCalls(_MLP):
    """Counts its forward calls in an integer buffer and cools its logits by that count.

    ``in_place``: ``self.calls += 1``; otherwise ``self.calls = self.calls + 1`` (a new tensor each call).
    """

    def __init__(self, in_place: bool = True) -> None:
        super().__init__()
        self.in_place = in_place
        self.register_buffer("calls", torch.zeros((), dtype=torch.long))

    def forward(self, x):
        if self.in_place:
            self.calls += 1
        else:
            self.calls = self.calls + 1
        return self.net(x) / (1.0 + 0.05 * self.calls)


class CountsCallsInPython(_MLP):
    """Counts its forward calls in a Python int (no buffer) and cools its logits by that count."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return self.net(x) / (1.0 + 0.05 * self.calls)


class NoisyCountsInPython(CountsCallsInPython):
    """:class:`CountsCallsInPython` that also drops out hidden units in training (it draws random numbers)."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(10, 8), nn.ReLU(), nn.Dropout(0.3), nn.Linear(8, 2))


class WarmsTemperatureByEpoch(_MLP):
    """Sets the temperature of its logits in ``on_train_epoch_start``: a hook, not a step hook, that changes forward."""

    def __init__(self) -> None:
        super().__init__()
        self.temperature = 1.0

    def on_train_epoch_start(self):
        self.temperature = 1.0 + self.current_epoch

    def forward(self, x):
        return self.net(x) / self.temperature


class PaddedSentences(TinySentences):
    """Sentences of 3 to 8 tokens (ids 1..15) padded with 0 to 8, labelled by whether 1 outnumbers 2 in them."""

    def __init__(self, seed: int = 0, batch_size: int = 16) -> None:
        L.LightningDataModule.__init__(self)  # its own sentences; TinySentences' loaders
        generator = torch.Generator().manual_seed(seed)
        tokens = torch.randint(1, VOCAB, (96, 8), generator=generator)
        lengths = torch.randint(3, 9, (96, 1), generator=generator)
        tokens = torch.where(torch.arange(8) < lengths, tokens, torch.zeros_like(tokens))
        labels = ((tokens == 1).sum(1) > (tokens == 2).sum(1)).long()
        self.train_set, self.val_set = TensorDataset(tokens[:64], labels[:64]), TensorDataset(tokens[64:], labels[64:])
        self.batch_size, self.seed = batch_size, seed


class NoisyCounts(CountsCalls):
    """:class:`CountsCalls` that also drops out hidden units in training (it draws random numbers)."""

    def __init__(self, in_place: bool = True) -> None:
        super().__init__(in_place)
        self.net = nn.Sequential(nn.Linear(10, 8), nn.ReLU(), nn.Dropout(0.3), nn.Linear(8, 2))


class CountsLazilyInPython(_MLP):
    """:class:`CountsCallsInPython` whose counter its forward creates at its first call (``getattr(..., 0)``)."""

    def forward(self, x):
        self.calls = getattr(self, "calls", 0) + 1
        return self.net(x) / (1.0 + 0.05 * self.calls)
