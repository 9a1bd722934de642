"""Forward+backward time of WNLSTM and LNLSTM (both forms) against nn.LSTM, measured in one run.

Baselines: ``nn.LSTM`` (the fused kernel), an ``nn.LSTMCell`` Python loop (the naive recurrent baseline) and a
naive LN-LSTM (input projection hoisted, recurrent part as an autograd Python loop). Prints the median time
of each and its ratio to ``nn.LSTM``; the first call of each module (TorchScript compile + warm-up) is
reported separately.

    python benchmarks/rnn_speed.py [--device cuda] [--threads 2] [--repeats 15] [--goal-only] [--no-naive]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import Tensor, nn

from rlnorm.rnn import LNLSTM, WNLSTM

SHAPES = [  # (T, B, input_size, hidden_size)
    (128, 8, 512, 256),
    (32, 16, 64, 64),
    (128, 16, 256, 128),
    (16, 64, 512, 256),
]


class CellLoopLSTM(nn.Module):
    """The naive baseline: an ``nn.LSTMCell`` stepped in Python."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.cell = nn.LSTMCell(input_size, hidden_size)

    def forward(self, x: Tensor) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        h = x.new_zeros(x.size(1), self.cell.hidden_size)
        c = torch.zeros_like(h)
        outs = []
        for x_t in x.unbind(0):
            h, c = self.cell(x_t, (h, c))
            outs.append(h)
        return torch.stack(outs), (h, c)


class NaiveLNLSTM(nn.Module):
    """LN-LSTM with the input projection hoisted and the recurrence as an autograd Python loop."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        h4 = 4 * hidden_size
        self.hidden_size = hidden_size
        self.ih = nn.Linear(input_size, h4, bias=False)
        self.hh = nn.Linear(hidden_size, h4, bias=False)
        self.ln_ih, self.ln_hh, self.ln_c = nn.LayerNorm(h4), nn.LayerNorm(h4), nn.LayerNorm(hidden_size)

    def forward(self, x: Tensor) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        hid = self.hidden_size
        gx = self.ln_ih(self.ih(x))
        h = x.new_zeros(x.size(1), hid)
        c = torch.zeros_like(h)
        outs = []
        for gx_t in gx.unbind(0):
            gates = gx_t + self.ln_hh(self.hh(h))
            i, f, o = torch.sigmoid(gates[:, : 3 * hid]).chunk(3, 1)
            c = f * c + i * torch.tanh(gates[:, 3 * hid :])
            h = o * torch.tanh(self.ln_c(c))
            outs.append(h)
        return torch.stack(outs), (h, c)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_fwd_bwd(modules: dict[str, nn.Module], x: Tensor, repeats: int) -> dict[str, tuple[float, float]]:
    """Median seconds of one forward+backward of each module, and the seconds of its very first call.

    The modules are timed in interleaved rounds so that a load change on a shared machine hits all alike.

    :param modules: recurrent modules by name, each called as ``module(x)``
    :param x: input ``(T, B, F)``
    :param repeats: timed rounds after two warm-up calls
    :return: ``{name: (median, first_call)}``
    """

    def timed(module: nn.Module) -> float:
        _sync(x.device)
        start = time.perf_counter()
        y, _ = module(x)
        y.sum().backward()
        _sync(x.device)
        return time.perf_counter() - start

    first = {name: timed(m) for name, m in modules.items()}
    for _ in range(2):
        for m in modules.values():
            timed(m)
    samples: dict[str, list[float]] = {name: [] for name in modules}
    for _ in range(repeats):
        for name, m in modules.items():
            samples[name].append(timed(m))
    return {name: (statistics.median(samples[name]), first[name]) for name in modules}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").partition("\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--no-naive", action="store_true", help="skip the two slow Python-loop baselines")
    parser.add_argument("--goal-only", action="store_true", help="only the speed goal's shape (T=128, B=8, 512->256)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"device={device} threads={torch.get_num_threads()} torch={torch.__version__} repeats={args.repeats}")
    print("fwd+bwd median ms (ratio to nn.LSTM); 'first' = first call incl. TorchScript compile")
    header = f"{'T':>4} {'B':>3} {'in':>4} {'H':>4} | {'nn.LSTM':>8} | {'WNLSTM':>15} | {'LNLSTM':>15}"
    header += f" | {'LNLSTM ba2016':>15}"
    if not args.no_naive:
        header += f" | {'LSTMCell loop':>15} | {'naive LN loop':>15}"
    print(header + " | LNLSTM first ms")
    for steps, batch, n_in, hidden in SHAPES[:1] if args.goal_only else SHAPES:
        torch.manual_seed(0)
        x = torch.randn(steps, batch, n_in, device=device)
        modules = {
            "lstm": nn.LSTM(n_in, hidden),
            "wn": WNLSTM(n_in, hidden),
            "ln": LNLSTM(n_in, hidden),  # the default form, "recurrent"
            "ln_ba2016": LNLSTM(n_in, hidden, form="ba2016"),
        }
        if not args.no_naive:
            modules["cell"] = CellLoopLSTM(n_in, hidden)
            modules["naive_ln"] = NaiveLNLSTM(n_in, hidden)
        times = time_fwd_bwd({name: m.to(device) for name, m in modules.items()}, x, args.repeats)
        base = times["lstm"][0]
        row = f"{steps:>4} {batch:>3} {n_in:>4} {hidden:>4} | {base * 1e3:8.2f}"
        for name in modules:
            if name != "lstm":
                t = times[name][0]
                row += f" | {t * 1e3:7.2f} ({t / base:4.2f}x)"
        print(row + f" | {times['ln'][1] * 1e3:.0f}")


if __name__ == "__main__":
    main()
