"""Tiny models for the router tests: a 2-layer BERT encoder and a BERT reward model, with tiny.py's
tokenizer, built in well under a second."""

from __future__ import annotations

from pathlib import Path

from tiny import make_tiny_tokenizer


def _bert_config(path: Path):
    from transformers import AutoTokenizer, BertConfig

    make_tiny_tokenizer(path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    return BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=256,
        pad_token_id=tokenizer.pad_token_id,
    )


def make_tiny_encoder(path: Path, seed: int = 0) -> Path:
    import torch
    from transformers import BertModel

    config = _bert_config(path)
    torch.manual_seed(seed)
    BertModel(config).save_pretrained(path)
    return path


def make_tiny_reward_model(path: Path, seed: int = 0) -> Path:
    import torch
    from transformers import BertForSequenceClassification

    config = _bert_config(path)
    config.num_labels = 1
    torch.manual_seed(seed)
    BertForSequenceClassification(config).save_pretrained(path)
    return path
