"""The small job the fault tests run: configs/smoke.yaml's world and model on the transformers
backend (the cheapest; about 25 s uninterrupted on one busy core)."""

CONFIG = """\
world: {seed: 0, people: 60, reading_docs: 300}
model:
  train: {steps: 30, batch_size: 8, hidden_size: 128, layers: 2, heads: 2,
          intermediate_size: 256, vocab_size: 1024, seed: 0, threads: 1}
  backend: transformers
  options: {batch_size: 32}
linking: {workers: 1}
eval: {shots: 3, max_tokens: 8}
rag: {k: 1}
analysis: {min_bucket: 5, n_boot: 200}
"""
