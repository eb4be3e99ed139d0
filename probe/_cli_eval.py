"""`ltprobe eval`, `ltprobe rag` and `ltprobe bench eval` (handlers import what they need)."""

from __future__ import annotations

import argparse
from pathlib import Path


def build_local_model(out_dir: str | Path, *, n_facts: int = 400, steps: int = 300, seed: int = 0,
                      hidden: int = 64, layers: int = 2) -> Path:
    """Train a tiny Llama on synthetic `Q: ...\\nA: ...` facts into `out_dir`; return the folder.

    Used by `ltprobe bench eval` when no `--model` is given and by the tests: a real model
    folder that transformers and vLLM load offline, trained for a few seconds so that its
    greedy answers follow the prompt format (an answer, then a newline). Reuses a finished
    folder (`config.json` present).
    """
    import random

    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    out = Path(out_dir)
    if (out / "config.json").exists() and (out / "tokenizer.json").exists():
        return out
    rng = random.Random(seed)
    texts = local_qa_texts(n_facts, seed)
    bpe = Tokenizer(models.BPE(unk_token=None))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=600, special_tokens=["<s>", "</s>", "<pad>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<s>", eos_token="</s>",
                                        pad_token="<pad>")
    torch.manual_seed(seed)
    config = LlamaConfig(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=2,
                         num_key_value_heads=2, intermediate_size=hidden * 4,
                         vocab_size=len(tokenizer), max_position_embeddings=512,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=False)
    model = LlamaForCausalLM(config)
    # Training documents: several facts in a row, as a few-shot prompt will show them.
    blocks = []
    for _ in range(steps * 16):
        blocks.append("".join(rng.sample(texts, 4)))
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for step in range(steps):
        batch = tokenizer(blocks[step * 16:(step + 1) * 16], return_tensors="pt", padding=True,
                          truncation=True, max_length=96)
        labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
        loss = model(**batch, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()
    out.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(out)
    model.save_pretrained(out)
    return out


def local_qa_texts(n_facts: int, seed: int = 0) -> list[str]:
    """Synthetic facts `Q: In what city was NAME born?\\nA: CITY\\n\\n` with made-up names."""
    import random

    rng = random.Random(seed)
    syllables = ["ka", "lo", "mi", "ren", "do", "sa", "vi", "tor", "bel", "an", "qu", "is", "mar", "el"]
    cities = ["Arlon", "Bexley", "Corvin", "Dalmar", "Eskin", "Farrow", "Galen", "Hollis"]
    colours = ["red", "blue", "green", "amber", "violet", "grey"]
    texts = []
    for _ in range(n_facts):
        name = "".join(rng.sample(syllables, 2)).title() + " " + "".join(rng.sample(syllables, 3)).title()
        if rng.random() < 0.5:
            texts.append(f"Q: In what city was {name} born?\nA: {rng.choice(cities)}\n\n")
        else:
            texts.append(f"Q: What is the favourite colour of {name}?\nA: {rng.choice(colours)}\n\n")
    return texts
