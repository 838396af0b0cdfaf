"""Stand-ins for PyTorch modules, so the exporter can be tested (and shown) without torch.

`Module` has the forward-hook interface of torch.nn.Module that LatentRecorder uses: `register_forward_hook(hook)`
returns a handle with `.remove()`, and calling the module runs `forward` then every hook as
`hook(module, args, output)` (a hook returning something else than None replaces the output, as in torch).
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional

import numpy as np


class _Handle:
    def __init__(self, hooks: Dict[int, Callable], key: int):
        self._hooks, self._key = hooks, key

    def remove(self) -> None:
        self._hooks.pop(self._key, None)


class Module:
    def __init__(self) -> None:
        self._forward_hooks: Dict[int, Callable] = {}
        self._next_hook = 0

    def register_forward_hook(self, hook: Callable) -> _Handle:
        key = self._next_hook
        self._next_hook += 1
        self._forward_hooks[key] = hook
        return _Handle(self._forward_hooks, key)

    def forward(self, *args: Any) -> Any:
        raise NotImplementedError

    def __call__(self, *args: Any) -> Any:
        output = self.forward(*args)
        for hook in list(self._forward_hooks.values()):
            result = hook(self, args, output)
            if result is not None:
                output = result
        return output


class ResidualBlock(Module):
    """x -> x + scale * tanh(x @ W + b), on the last axis. With `tuple_output`, returns (x_new, None) like anemoi's
    graph blocks; with `in_place`, overwrites its input afterwards (to test that recorders copy)."""

    def __init__(self, latent: int, seed: int, scale: float = 0.5, tuple_output: bool = False, in_place: bool = False):
        super().__init__()
        rng = np.random.default_rng(seed)
        self.weight = (rng.standard_normal((latent, latent)) / np.sqrt(latent)).astype(np.float32)
        self.bias = (0.1 * rng.standard_normal(latent)).astype(np.float32)
        self.scale = np.float32(scale)
        self.tuple_output = tuple_output
        self.in_place = in_place

    def update(self, x: np.ndarray) -> np.ndarray:
        return self.scale * np.tanh(x @ self.weight + self.bias)

    def forward(self, x: np.ndarray, *rest: Any) -> Any:
        out = (x + self.update(x)).astype(x.dtype)
        return (out, None) if self.tuple_output else out

    def __call__(self, *args: Any) -> Any:
        output = super().__call__(*args)
        if self.in_place:
            args[0][...] = np.nan
        return output


class Processor(Module):
    """`blocks` applied in turn (each may appear more than once in `order`, like a weight-shared processor)."""

    def __init__(self, blocks: List[ResidualBlock], order: Optional[List[int]] = None):
        super().__init__()
        self.proc = blocks
        self.order = order if order is not None else list(range(len(blocks)))

    def forward(self, x: np.ndarray) -> np.ndarray:
        for k in self.order:
            out = self.proc[k](x)
            x = out[0] if isinstance(out, tuple) else out
        return x


class StandInModel(Module):
    """A tiny encoder-processor model on `nodes` nodes: inputs [batch, nodes, channels] -> a linear embedding
    to `latent` -> `layers` residual blocks. With `flat`, the processor sees [batch * nodes, latent] rows
    (anemoi's layout) instead of [batch, nodes, latent]."""

    def __init__(self, nodes: int, channels: int, latent: int, layers: int, seed: int = 0, flat: bool = False):
        super().__init__()
        rng = np.random.default_rng(seed)
        self.nodes, self.latent, self.flat = nodes, latent, flat
        self.embed = rng.standard_normal((channels, latent)).astype(np.float32)
        self.processor = Processor(
            [ResidualBlock(latent, seed=seed + 1 + i, tuple_output=flat) for i in range(layers)]
        )

    def forward(self, inputs: np.ndarray) -> np.ndarray:
        x = np.asarray(inputs, dtype=np.float32) @ self.embed
        if self.flat:
            x = x.reshape(-1, self.latent)
        return self.processor(x)
