#!/usr/bin/env python3
"""Load an esac-melody model into the reference notebook's PyTorch LSTMModel with
`load_state_dict(strict=True)` and print its eval-mode logits; with --against,
compare them with `cargo xtask logits` output instead.

    cargo xtask logits --model assets/erk --ids "0 12 5 7" > ours.json
    python3 scripts/pytorch_logits.py assets/erk "0 12 5 7" --against ours.json
    # strict load ok; 4 x 38 logits; max |pytorch - esac-melody| = 9.5e-07

Needs `torch` and `safetensors` (pip install torch safetensors; PyPI's torch
wheel is 540 MB plus its CUDA libraries). Not run by CI, which has no PyTorch.
The other direction runs in CI: `crates/lstm-candle/tests/numerics.rs` loads a
model trained and saved by PyTorch (the committed fixture made by
scripts/make_pytorch_fixture.py, and the reference notebook's own weights in
shared/models/reference-lstm-erk) and compares our logits with PyTorch's.
"""
import argparse
import json
import sys

import torch
from safetensors.torch import load_file

from reference_model import LSTMModel

def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model_dir")
    parser.add_argument("ids", help='token ids, e.g. "0 12 5 7"')
    parser.add_argument("--against", help="`cargo xtask logits` JSON to compare with")
    args = parser.parse_args()
    ids = [int(i) for i in args.ids.split()]
    config = json.load(open(f"{args.model_dir}/config.json"))
    model = LSTMModel(config["vocab_size"], config["embedding_dim"], config["hidden_size"],
                      config["num_layers"], config["dropout"])
    # strict=True: every name and shape must match exactly.
    model.load_state_dict(load_file(f"{args.model_dir}/model.safetensors"), strict=True)
    model.eval()
    with torch.no_grad():
        logits = model(torch.tensor([ids]))[0][0]
    if args.against is None:
        print(json.dumps({"ids": ids, "vocab_size": config["vocab_size"], "logits": logits.tolist()}))
        return
    ours = json.load(open(args.against))
    if ours["ids"] != ids:
        sys.exit(f"{args.against} is for ids {ours['ids']}, not {ids}")
    diff = (logits - torch.tensor(ours["logits"])).abs().max().item()
    print(f"strict load ok; {len(ids)} x {config['vocab_size']} logits; "
          f"max |pytorch - esac-melody| = {diff:.2g}")
    if diff > 1e-4:
        sys.exit("the logits differ by more than float32 rounding")


if __name__ == "__main__":
    main()
