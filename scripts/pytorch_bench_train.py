#!/usr/bin/env python3
"""PyTorch's training throughput for the same model and step as
`cargo xtask bench train`, printed as the same JSON lines, so the two can be
compared on one machine.

    python3 scripts/pytorch_bench_train.py            # default size and 2x256, 1 and 2 threads
    python3 scripts/pytorch_bench_train.py --objective last

One step: random token windows (batch 64, 64 tokens + 1 target, vocabulary 38),
the reference notebook's LSTMModel in train mode (dropout 0.2), cross-entropy at
every position (`--objective all`, what esac-melody trains) or only at the last
one (`--objective last`, the notebook's recipe), backward, Adam lr 1e-3 without
gradient clipping (as `bench train`). Median of `--steps` timed steps
after two warm-up steps. Needs `torch` (pip install torch); not run by CI.
"""
import argparse
import json
import time

import torch

from reference_model import LSTMModel

def bench(hidden, layers, threads, steps, objective, vocab=38, batch=64, seq_len=64):
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = LSTMModel(vocab, vocab, hidden, layers, 0.2).train()
    adam = torch.optim.Adam(model.parameters(), lr=1e-3)
    times = []
    for step in range(steps + 2):
        window = torch.randint(0, vocab, (batch, seq_len + 1))
        start = time.perf_counter()
        inputs, targets = window[:, :-1], window[:, 1:]
        logits, _ = model(inputs)
        if objective == "last":
            loss = torch.nn.functional.cross_entropy(logits[:, -1], targets[:, -1])
        else:
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, vocab), targets.reshape(-1))
        adam.zero_grad(set_to_none=True)
        loss.backward()
        adam.step()
        if step >= 2:
            times.append(time.perf_counter() - start)
    times.sort()
    median = times[len(times) // 2]
    return {
        "bench": "train-step", "framework": f"pytorch {torch.__version__}",
        "objective": objective, "hidden": hidden, "layers": layers, "vocab": vocab,
        "batch": batch, "seq_len": seq_len, "steps": steps, "threads": threads,
        "recurrence": "torch.nn.LSTM", "median_step_ms": median * 1e3,
        "tokens_per_s": batch * seq_len / median,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--objective", choices=["all", "last"], default="all")
    args = parser.parse_args()
    for hidden, layers in [(128, 1), (256, 2)]:
        for threads in [1, 2]:
            print(json.dumps(bench(hidden, layers, threads, args.steps, args.objective)), flush=True)


if __name__ == "__main__":
    main()
