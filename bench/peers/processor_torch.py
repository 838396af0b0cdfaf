"""DESIGN.md's processor train step in PyTorch (eager, CPU). See common.py for the exact maths.

    bench/peers/.venv/bin/python bench/peers/processor_torch.py --mesh mesh_r4.json --latent 128 --layers 8
"""

import torch
from torch import nn

import common


class Mlp(nn.Module):
    """Linear(in, D) -> SiLU -> Linear(D, D) -> LayerNorm(D) (post-LN, learned scale and offset)."""

    def __init__(self, inputs: int, latent: int):
        super().__init__()
        self.hidden = nn.Linear(inputs, latent)
        self.output = nn.Linear(latent, latent)
        self.norm = nn.LayerNorm(latent, eps=1e-5)

    def finish(self, h: torch.Tensor) -> torch.Tensor:
        """h: [rows, D] (first layer's output, bias included) -> [rows, D]"""
        return self.norm(self.output(torch.nn.functional.silu(h)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.finish(self.hidden(x))


class InteractionLayer(nn.Module):
    def __init__(self, latent: int, form: str):
        super().__init__()
        self.latent, self.form = latent, form
        self.edge_mlp = Mlp(3 * latent, latent)
        self.node_mlp = Mlp(2 * latent, latent)

    def forward(self, x, e, senders, receivers):
        """x: [N, D], e: [E, D], senders / receivers: [E] -> (x', e')"""
        d = self.latent
        if self.form == "plain":
            edge_delta = self.edge_mlp(torch.cat([e, x[senders], x[receivers]], dim=-1))
        else:
            w = self.edge_mlp.hidden.weight  # [D, 3D]: columns for e, x_snd, x_rcv
            h = (e @ w[:, :d].T + (x @ w[:, d:2 * d].T)[senders] + (x @ w[:, 2 * d:].T)[receivers]
                 + self.edge_mlp.hidden.bias)
            edge_delta = self.edge_mlp.finish(h)
        e = e + edge_delta
        agg = torch.zeros_like(x).index_add_(0, receivers, e)
        x = x + self.node_mlp(torch.cat([x, agg], dim=-1))
        return x, e


class Processor(nn.Module):
    def __init__(self, latent: int, layers: int, form: str):
        super().__init__()
        self.layers = nn.ModuleList(InteractionLayer(latent, form) for _ in range(layers))

    def forward(self, x, e, senders, receivers):
        for layer in self.layers:
            x, e = layer(x, e, senders, receivers)
        return x


def main():
    args = common.parse_args("PyTorch")
    torch.manual_seed(args.seed)
    nodes, senders, receivers, mesh_level = common.load_mesh(args.mesh)
    senders = torch.tensor(senders, dtype=torch.long)
    receivers = torch.tensor(receivers, dtype=torch.long)
    edges = len(senders)
    d = args.latent
    x = torch.randn(nodes, d)
    e = torch.randn(edges, d)
    target = torch.randn(nodes, d)
    model = Processor(d, args.layers, args.form)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-8)

    def step():
        optimiser.zero_grad(set_to_none=True)
        loss = ((model(x, e, senders, receivers) - target) ** 2).mean()
        loss.backward()
        optimiser.step()
        loss.item()

    times = common.time_steps(step, args.steps)
    common.report(args, "pytorch", "torch-cpu", torch.get_num_threads(), nodes, edges, mesh_level, times,
                  torch.__version__)


if __name__ == "__main__":
    main()
