"""Modules we did not write: Lightning's demo BoringModel and Transformer LM, and tiny `transformers` models.

A BatchNorm ResNet and a BERT (two param groups, AdamW) from tiny `transformers` configs.

Each is used as it is, save what compare's report reads: ``val_loss`` logged in validation. The
ResNet also says how to score a batch (``stacked_metrics``) so that it can be stacked.
"""

from __future__ import annotations

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.demos.boring_classes import BoringModel
from lightning.pytorch.demos.transformer import LightningTransformer, Transformer
from torch.utils.data import DataLoader, TensorDataset


class _Classifier(L.LightningModule):
    """A `transformers` classifier as a user wraps one: cross-entropy on ``logits(inputs)``, its loss and
    accuracy logged in validation (the steps a user writes), and ``stacked_metrics`` so it can be stacked."""

    def logits(self, inputs):
        raise NotImplementedError

    def stacked_metrics(self, batch):
        inputs, labels = batch
        logits = self.logits(inputs)
        return {"loss": F.cross_entropy(logits, labels), "acc": (logits.argmax(-1) == labels).float().mean()}

    def training_step(self, batch, batch_idx):
        return self.stacked_metrics(batch)["loss"]

    def validation_step(self, batch, batch_idx):
        metrics = self.stacked_metrics(batch)
        self.log("val_loss", metrics["loss"])
        self.log("val_acc", metrics["acc"])


class LoggingBoringModel(BoringModel):
    """Lightning's BoringModel (SGD at 0.1 with a StepLR of its own), logging its validation loss."""

    def validation_step(self, batch, batch_idx):
        out = super().validation_step(batch, batch_idx)
        self.log("val_loss", out["x"])
        return out


class TinyResNet(_Classifier):
    """``transformers``' ResNet (BatchNorm) from a tiny config, SGD with momentum and weight decay."""

    def __init__(self) -> None:
        super().__init__()
        from transformers import ResNetConfig, ResNetForImageClassification

        config = ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], layer_type="basic", num_labels=2)
        self.net = ResNetForImageClassification(config)

    def logits(self, x):
        return self.net(pixel_values=x).logits

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)


class TinyImages(L.LightningDataModule):
    """3x16x16 images whose class is whether the red channel is brighter than the blue one."""

    def __init__(self, seed: int = 0, batch_size: int = 16) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        x = torch.randn(192, 3, 16, 16, generator=generator)
        y = (x[:, 0].mean((1, 2)) > x[:, 2].mean((1, 2))).long()
        self.train_set, self.val_set = TensorDataset(x[:128], y[:128]), TensorDataset(x[128:], y[128:])
        self.batch_size = batch_size
        self.seed = seed

    def train_dataloader(self):
        generator = torch.Generator().manual_seed(self.seed)
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=True, generator=generator)

    def val_dataloader(self):
        return DataLoader(self.val_set, batch_size=self.batch_size)


class LoggingTransformer(LightningTransformer):
    """Lightning's demo ``LightningTransformer`` (a small ``nn.Transformer`` LM, SGD at 0.1), tiny, on our tokens.

    Added to the demo: ``stacked_metrics`` (its own training loss, the NLL of the next token), a
    ``validation_step`` that logs it as ``val_loss`` (the demo has neither), and a ``prepare_data``
    that downloads nothing (the demo's fetches WikiText-2; tokens come from :class:`TinyTokens`).
    The constructor builds a tiny ``Transformer`` of the demo's class instead of the demo's 8M
    parameters; its dropout is the demo's 0.2 unless told.
    """

    def __init__(self, vocab_size: int = 16, dropout: float = 0.2) -> None:
        super(LightningTransformer, self).__init__()  # the demo's __init__ builds its 8M-parameter model
        self.model = Transformer(vocab_size=vocab_size, ninp=8, nhead=2, nhid=16, nlayers=1, dropout=dropout)

    def prepare_data(self) -> None:
        pass

    def stacked_metrics(self, batch):
        inputs, target = batch
        return {"loss": F.nll_loss(self(inputs, target), target.view(-1))}

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self.stacked_metrics(batch)["loss"])


class TinyTokens(L.LightningDataModule):
    """Blocks of 8 tokens from a 16-word vocabulary in a repeating pattern with noise, and the next token of each."""

    def __init__(self, seed: int = 0, batch_size: int = 8, vocab_size: int = 16) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        tokens = (torch.arange(8 * 81) * 3) % vocab_size
        noise = torch.rand(tokens.shape, generator=generator) < 0.1
        tokens = torch.where(noise, torch.randint(vocab_size, tokens.shape, generator=generator), tokens)
        blocks = torch.arange(80) * 8
        inputs = torch.stack([tokens[b : b + 8] for b in blocks])
        targets = torch.stack([tokens[b + 1 : b + 9] for b in blocks])
        self.train_set, self.val_set = (
            TensorDataset(inputs[:64], targets[:64]),
            TensorDataset(inputs[64:], targets[64:]),
        )
        self.batch_size, self.seed = batch_size, seed

    def train_dataloader(self):
        generator = torch.Generator().manual_seed(self.seed)
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=True, generator=generator)

    def val_dataloader(self):
        return DataLoader(self.val_set, batch_size=self.batch_size)


NO_DECAY = ("bias", "LayerNorm.weight")


class TinyBert(_Classifier):
    """``transformers``' BertForSequenceClassification from a tiny config, AdamW with the usual two param groups.

    As Hugging Face's examples set it up: weight decay 0.01 except on biases and LayerNorm weights
    (a group of their own without decay). ``dropout`` sets both of BERT's dropout probabilities.
    """

    def __init__(self, dropout: float = 0.1, vocab_size: int = 16) -> None:
        super().__init__()
        from transformers import BertConfig, BertForSequenceClassification

        config = BertConfig(
            vocab_size=vocab_size,
            hidden_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=32,
            max_position_embeddings=16,
            hidden_dropout_prob=dropout,
            attention_probs_dropout_prob=dropout,
            num_labels=2,
        )
        self.net = BertForSequenceClassification(config)

    def logits(self, tokens):
        return self.net(input_ids=tokens).logits

    def configure_optimizers(self):
        named = list(self.named_parameters())
        groups = [
            {"params": [p for n, p in named if not n.endswith(NO_DECAY)], "weight_decay": 0.01},
            {"params": [p for n, p in named if n.endswith(NO_DECAY)], "weight_decay": 0.0},
        ]
        return torch.optim.AdamW(groups, lr=1e-3, betas=(0.9, 0.98))


class TinySentences(L.LightningDataModule):
    """Sentences of 8 tokens labelled by whether token 1 appears more often than token 2 in them."""

    def __init__(self, seed: int = 0, batch_size: int = 16, vocab_size: int = 16) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        tokens = torch.randint(1, vocab_size, (96, 8), generator=generator)
        labels = ((tokens == 1).sum(1) > (tokens == 2).sum(1)).long()
        self.train_set, self.val_set = TensorDataset(tokens[:64], labels[:64]), TensorDataset(tokens[64:], labels[64:])
        self.batch_size, self.seed = batch_size, seed

    def train_dataloader(self):
        generator = torch.Generator().manual_seed(self.seed)
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=True, generator=generator)

    def val_dataloader(self):
        return DataLoader(self.val_set, batch_size=self.batch_size)
