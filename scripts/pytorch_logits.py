#!/usr/bin/env python3
"""Load an esac-melody model into the reference notebook's PyTorch LSTMModel and
print its eval-mode logits, to compare with `cargo xtask logits`.

    python3 scripts/pytorch_logits.py runs/erk "0 12 5 7" > torch.json
    cargo xtask logits --model runs/erk --ids "0 12 5 7" > ours.json

Needs `torch` and `safetensors` (pip install torch safetensors). Not run by CI:
PyTorch cannot be installed on the project's build machines. The same check in
the other direction runs in CI: `crates/lstm-candle/tests/numerics.rs` loads the
reference notebook's own PyTorch-trained weights and compares our logits with
the logits PyTorch wrote for them (`shared/models/reference-lstm-erk`).
"""
import json
import sys

import torch
from safetensors.torch import load_file


class LSTMModel(torch.nn.Module):
    """The reference notebook's model, with its parameter names."""

    def __init__(self, vocab_size, embedding_dim, hidden_size, num_layers, dropout):
        super().__init__()
        self.embedding = torch.nn.Embedding(vocab_size, embedding_dim)
        self.lstm = torch.nn.LSTM(embedding_dim, hidden_size, num_layers, batch_first=True,
                                  dropout=dropout if num_layers > 1 else 0.0)
        self.dropout = torch.nn.Dropout(dropout)
        self.fc = torch.nn.Linear(hidden_size, vocab_size)

    def forward(self, ids):
        out, _ = self.lstm(self.embedding(ids))
        return self.fc(self.dropout(out))


def main():
    model_dir, ids = sys.argv[1], [int(i) for i in sys.argv[2].split()]
    config = json.load(open(f"{model_dir}/config.json"))
    model = LSTMModel(config["vocab_size"], config["embedding_dim"], config["hidden_size"],
                      config["num_layers"], config["dropout"])
    # strict=True: every name and shape must match exactly.
    model.load_state_dict(load_file(f"{model_dir}/model.safetensors"), strict=True)
    model.eval()
    with torch.no_grad():
        logits = model(torch.tensor([ids]))[0]
    print(json.dumps({"ids": ids, "vocab_size": config["vocab_size"], "logits": logits.tolist()}))


if __name__ == "__main__":
    main()
