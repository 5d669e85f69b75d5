#!/usr/bin/env python3
"""Writes the committed PyTorch fixture `crates/lstm-candle/tests/fixtures/pytorch-two-layer/`:
a model made and trained a little by PyTorch with the reference notebook's
LSTMModel, saved as the notebook would save it (a bare state_dict under its own
names, no config.json, plus vocab.json), and PyTorch's eval-mode logits and final
(h, c) for fixed inputs, in float32 and float64.

    pip install torch safetensors
    python3 scripts/make_pytorch_fixture.py

Two layers (the reference has one), so that the names and the dropout between
layers of a deeper model are covered too; small (hidden 24), so that the fixture
stays under 150 kB. The vocabulary is the shipped model's (assets/erk/tokenizer.json), in
id order. Not run by CI (CI has no PyTorch); `lstm-candle`'s test
`pytorch_fixture_logits_and_state` and xtask's `a_pytorch_state_dict_loads_and_samples`
read what it writes.
"""
import json
import pathlib

import torch
from safetensors.torch import save_file

from reference_model import LSTMModel

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "crates/lstm-candle/tests/fixtures/pytorch-two-layer"

def vocabulary():
    tokenizer = json.loads((ROOT / "assets/erk/tokenizer.json").read_text())
    ids = tokenizer["model"]["vocab"]
    return sorted(ids, key=ids.get)


def main():
    vocab = vocabulary()
    size = len(vocab)
    torch.manual_seed(2026)
    model = LSTMModel(size, size, 24, 2, 0.2)
    # A few hundred updates on a repeating pattern, so that the weights are
    # trained ones (peaked predictions), not just PyTorch's initialisation.
    pattern = torch.tensor([vocab.index(t) for t in "60 _ 62 _ 64 _ _ _ 62 _ 60 _ _ _ r _".split()])
    adam = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(300):
        starts = torch.randint(0, len(pattern), (16,))
        window = torch.stack([pattern.roll(-int(s)).repeat(3)[:33] for s in starts])
        logits, _ = model(window[:, :-1])
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, size), window[:, 1:].reshape(-1))
        adam.zero_grad()
        loss.backward()
        adam.step()
    model.eval()

    OUT.mkdir(parents=True, exist_ok=True)
    state_dict = {name: t.detach().contiguous() for name, t in model.state_dict().items()}
    save_file(state_dict, OUT / "model.safetensors")
    (OUT / "vocab.json").write_text(json.dumps(vocab) + "\n")

    generator = torch.Generator().manual_seed(7)
    cases = [
        ("one token", [[vocab.index("60")]]),
        ("the pattern", [pattern.tolist()]),
        ("a batch of two", torch.randint(0, size, (2, 16), generator=generator).tolist()),
    ]
    model64 = LSTMModel(size, size, 24, 2, 0.2).double().eval()
    model64.load_state_dict({k: v.double() for k, v in state_dict.items()}, strict=True)
    written = []
    with torch.no_grad():
        for name, ids in cases:
            entry = {"name": name, "ids": ids}
            for key, net in (("f32", model), ("f64", model64)):
                logits, (h, c) = net(torch.tensor(ids))
                entry[f"logits_{key}"] = logits.tolist()
                entry[f"h_{key}"] = h.tolist()
                entry[f"c_{key}"] = c.tolist()
            written.append(entry)
    fixture = {
        "torch": torch.__version__,
        "architecture": {"vocab_size": size, "embedding_dim": size, "hidden_size": 24,
                         "num_layers": 2, "dropout": 0.2},
        "notes": "eval mode, zero initial state; logits[b][t] = fc(h_t) of the top layer; "
                 "h and c are (layers, batch, hidden); *_f64 from the same weights in float64",
        "cases": written,
    }
    (OUT / "logits.json").write_text(json.dumps(fixture) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
