"""Tiny, randomly initialised models for tests: a 2-layer Llama, a BPE tokenizer trained on the fly, LoRA
adapters.

Everything here builds in well under a second on a laptop CPU and needs no network.
"""

from __future__ import annotations

from pathlib import Path

EOS_TOKEN = "<|im_end|>"
PAD_TOKEN = "<|endoftext|>"
SPECIAL_TOKENS = [PAD_TOKEN, "<|im_start|>", EOS_TOKEN]

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

_CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "Paris is the capital of France, and Berlin is the capital of Germany.",
    "A small language model can answer simple questions about the world.",
    "Water boils at one hundred degrees Celsius at sea level.",
    "The cat sat on the mat while the dog slept by the door.",
    "Please summarise the following text in one short sentence.",
    "Question: what is two plus two? Answer: four.",
    "Rivers flow into the sea, and rain falls from the clouds above.",
    "She read the book, wrote a letter, and went for a walk in the park.",
    "Numbers like 1, 2, 3, 10, 42 and 100 appear in many texts.",
]


def make_tiny_tokenizer(path: Path) -> Path:
    """Train a byte-level BPE tokenizer with a ChatML-like chat template and save it to `path`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=384,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_CORPUS * 4, trainer=trainer)
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, eos_token=EOS_TOKEN, pad_token=PAD_TOKEN, bos_token=None
    )
    wrapped.chat_template = CHAT_TEMPLATE
    path.mkdir(parents=True, exist_ok=True)
    wrapped.save_pretrained(path)
    return path


def make_tiny_sentencepiece_tokenizer(path: Path) -> Path:
    """Train a sentencepiece-style tokenizer (spaces as "▁", byte fallback such as "<0x0A>", Gemma-like) and
    save it to `path`, with a chat template of its own."""
    import json

    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    trainer = trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<pad>", "<eos>", "<bos>"], show_progress=False
    )
    trained = Tokenizer(models.BPE())
    trained.normalizer = normalizers.Replace(" ", "▁")
    trained.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="never", split=True)
    trained.train_from_iterator(_CORPUS * 4, trainer=trainer)
    vocab = trained.get_vocab()
    for byte in range(256):
        vocab.setdefault(f"<0x{byte:02X}>", len(vocab))
    merges = [tuple(pair) for pair in json.loads(trained.to_str())["model"]["merges"]]
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=merges, byte_fallback=True))
    tokenizer.normalizer = trained.normalizer
    tokenizer.pre_tokenizer = trained.pre_tokenizer
    tokenizer.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()]
    )
    tokenizer.add_special_tokens(["<pad>", "<eos>", "<bos>"])
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, eos_token="<eos>", pad_token="<pad>", bos_token=None
    )
    wrapped.chat_template = CHAT_TEMPLATE.replace("<|im_start|>", "<bos>").replace("<|im_end|>", "<eos>")
    path.mkdir(parents=True, exist_ok=True)
    wrapped.save_pretrained(path)
    return path


def make_tiny_model(path: Path, seed: int = 0, sentencepiece: bool = False) -> Path:
    """Save a tiny random Llama causal LM and its tokenizer to `path`; `from_pretrained(path)` loads both.

    The tokenizer is byte-level BPE, or with `sentencepiece` a "▁"-style one with byte fallback."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    (make_tiny_sentencepiece_tokenizer if sentencepiece else make_tiny_tokenizer)(path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        # A wider init than the default 0.02 makes the random model's logits peaky, so greedy picks are far
        # from ties and tests comparing token choices are stable.
        initializer_range=0.2,
        tie_word_embeddings=False,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(path)
    return path


def make_tiny_adapter(base_path: Path, out: Path, seed: int, targets: str | list[str] = "all-linear") -> Path:
    """Save a random LoRA adapter (r=4, on `targets`: all linear layers unless named) for the model at
    `base_path` to `out`."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(base_path)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=targets, init_lora_weights=False)
    torch.manual_seed(seed)
    peft_model = get_peft_model(base, config)
    peft_model.save_pretrained(out, safe_serialization=True)
    return out
