"""Fast frozen inference for planning: a snapshot of some members of an ensemble network.

:class:`FrozenEnsemble` computes what :class:`~forethought.models.ensemble_mlp.EnsembleDynamicsNetwork`
computes for the chosen members, without autograd, in float32 or bfloat16, with fewer passes over
the activations (fused oneDNN layers, biases folded into the products, cache-sized row blocks).
Models hand it to planners through :meth:`~forethought.models.DynamicsModel.frozen_member_predictor`.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from forethought.models.ensemble_mlp import EnsembleDynamicsNetwork, soft_bound

COMPUTE_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def compute_dtype(value: torch.dtype | str) -> torch.dtype:
    """``torch.float32`` or ``torch.bfloat16`` from a dtype or its name; anything else is refused."""
    dtype = COMPUTE_DTYPES.get(value, value) if isinstance(value, str) else value
    if dtype not in COMPUTE_DTYPES.values():
        raise ValueError(f"compute_dtype must be one of {list(COMPUTE_DTYPES)} (or the torch dtype), got {value!r}")
    return dtype


MEMBER_MAJOR_ROWS = 512  # rows per member above which FrozenEnsemble multiplies member by member
FUSED_ROWS = 256  # rows per member above which float32 uses oneDNN's fused linear + SiLU, member by member


@functools.cache
def fused_linear_available() -> bool:
    """Whether ``torch.ops.mkldnn._linear_pointwise`` (oneDNN's matrix product with the bias and
    activation fused into it) runs here and agrees with ``F.linear`` followed by SiLU."""
    if not torch.backends.mkldnn.is_available():
        return False
    try:
        x, weight, bias = torch.randn(8, 5), torch.randn(3, 5), torch.randn(3)
        got = torch.ops.mkldnn._linear_pointwise(x, weight, bias, "swish", [], "")
    except (AttributeError, RuntimeError, NotImplementedError):
        return False
    return bool(torch.allclose(got, F.silu(F.linear(x, weight, bias)), rtol=1e-4, atol=1e-5))


class FrozenEnsemble:
    """Inference-only snapshot of some members of an :class:`EnsembleDynamicsNetwork`, for planning.

    The network's function restricted to ``members``, with an optional affine map of the inputs
    in front (``x * input_scale + input_shift``, e.g. a normaliser), computed with fewer passes
    over the activations than :meth:`EnsembleDynamicsNetwork.forward`:

    * in float32 with more than ``FUSED_ROWS`` rows per member (the planner's usual batch), each
      layer is one oneDNN call with the bias and SiLU fused into the product, member by member
      (about 2x ``bmm`` on a 2-core CPU at the PETS paper's size), where PyTorch has it;
    * otherwise each layer's bias is a row of its weight matrix, read from a column of ones
      carried along with the activations, so a layer is one matrix product and one in-place SiLU;
      widths are padded with zeros to a multiple of ``pad`` (default 16: 4x200 layers become
      208 wide, which the bfloat16 AMX kernels run about 25 % faster than 200 or 201 wide);
    * each member's rows are cut into blocks whose widest activation fits in ``chunk_bytes``
      (default 640 KiB on the fused path, 2 MiB otherwise in float32, 4 MiB in bfloat16: within
      one core's L2 cache) so they stay in cache between layers.

    In float32 the result differs from the network only by rounding (about 1e-6 relative). In
    bfloat16 the weights and activations are rounded to 8-bit mantissas and the products
    accumulate in float32 (AMX / AVX512-BF16 kernels, several times the float32 throughput);
    inputs arrive, are mapped and leave in float32, and the log-std bounds apply in float32.

    A snapshot does not follow later changes of the network: take a new one (it costs one copy
    of the members' weights, two in float32).
    """

    def __init__(self, network: EnsembleDynamicsNetwork, members: list[int], dtype: torch.dtype | str = torch.float32,
                 input_scale: torch.Tensor | None = None, input_shift: torch.Tensor | None = None,
                 pad: int | None = None, chunk_bytes: int | None = None) -> None:
        self.dtype = compute_dtype(dtype)
        bf16 = self.dtype == torch.bfloat16
        self.pad = pad if pad is not None else 16
        self.chunk_bytes = chunk_bytes if chunk_bytes is not None else (4 << 20 if bf16 else 2 << 20)
        self.fused_chunk_bytes = chunk_bytes if chunk_bytes is not None else 640 << 10
        self.out_dim, self.probabilistic, self.size = network.out_dim, network.probabilistic, len(members)
        self.in_dim, self.device = network.body.in_dim, network.body.weights[0].device
        ones, zeros = torch.ones(self.in_dim, device=self.device), torch.zeros(self.in_dim, device=self.device)
        self.input_scale = ones if input_scale is None else input_scale.detach().float().to(self.device)
        self.input_shift = zeros if input_shift is None else input_shift.detach().float().to(self.device)
        index = torch.tensor(members, device=self.device)
        with torch.no_grad():
            body = network.body
            layers = [(w.index_select(0, index), b.index_select(0, index)) for w, b in zip(body.weights, body.biases)]
            self.weights = self._augmented(layers)
            # per member, per layer: (weight [out, in] contiguous, bias [out]), as oneDNN (CPU only) takes them
            self.linear_layers = None if bf16 or self.device.type != "cpu" else [
                [(w[e].t().contiguous(), b[e, 0].contiguous()) for w, b in layers] for e in range(len(members))]
            if self.probabilistic:
                self.min_log_std = network.min_log_std.index_select(0, index).clone()
                self.max_log_std = network.max_log_std.index_select(0, index).clone()

    def _augmented(self, layers: list[tuple[torch.Tensor, torch.Tensor]]) -> list[torch.Tensor]:
        """Weights ``[E, in', out']`` in the compute dtype, ``in'`` and ``out'`` padded widths.

        Row ``in`` (just after the real inputs) is the bias, divided by the value ``c`` the ones
        column holds on arrival (1 at the input, ``silu(1)`` after a hidden layer, as rounded in
        the compute dtype); a hidden layer's column ``out`` is ``1 / c`` in that row and zero
        elsewhere, so the ones column survives every layer and the bias enters the product
        exactly scaled. Further padding rows and columns are zero (they stay zero through SiLU)."""
        augmented, carried = [], torch.ones((), dtype=self.dtype, device=self.device)
        for i, (weight, bias) in enumerate(layers):
            members, inputs, outputs = weight.shape
            hidden = i < len(layers) - 1
            matrix = torch.zeros(members, self._width(inputs), self._width(outputs) if hidden else outputs,
                                 device=self.device)
            matrix[:, :inputs, :outputs] = weight
            matrix[:, inputs, :outputs] = bias[:, 0] / carried.float()
            if hidden:
                keep = (1.0 / carried.float()).to(self.dtype)
                matrix[:, inputs, outputs] = keep.float()
                carried = F.silu((carried.float() * keep.float()).to(self.dtype))
            augmented.append(matrix.to(self.dtype))
        return augmented

    def _width(self, features: int) -> int:
        """Features plus the ones column, rounded up to a multiple of ``self.pad``."""
        return -(-(features + 1) // self.pad) * self.pad

    @torch.no_grad()
    def __call__(self, *parts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(mean [E, B, out_dim], log_std [E, B, out_dim] or None)`` in float32, without autograd,
        for inputs ``[E, B, in_dim]`` given whole or as parts to concatenate along the last axis
        (e.g. obs ``[E, B, o]`` and action ``[E, B, a]``); member ``e`` reads row block ``e``.

        float32 above ``FUSED_ROWS`` rows per member: fused oneDNN layers, member by member
        (:meth:`_fused`). Otherwise, up to ``MEMBER_MAJOR_ROWS`` rows per member: one ``bmm`` per
        layer over all members, in row blocks that fit ``chunk_bytes``, whose single call wins at
        a few hundred rows. More (bfloat16, or float32 without the oneDNN op): member by member,
        one ``mm`` per layer into two reused buffers, faster than ``bmm`` splitting the members
        between threads (5 members on 2 threads: 3 and 2)."""
        rows = parts[0].shape[1]
        if self.linear_layers is not None and rows > FUSED_ROWS and fused_linear_available():
            out = self._fused(self._mapped(parts, extra_columns=0))
        else:
            h = self._input(parts)
            out = self._member_major(h) if rows > MEMBER_MAJOR_ROWS else self._batched(h)
        if not self.probabilistic:
            return out, None
        mean, raw_log_std = out.split(self.out_dim, dim=-1)
        return mean, soft_bound(raw_log_std, self.min_log_std, self.max_log_std)

    def _fused(self, x: torch.Tensor) -> torch.Tensor:
        """The raw float32 output ``[E, B, out]`` for mapped inputs ``x [E, B, in_dim]``: per
        member and row block, each hidden layer one ``mkldnn._linear_pointwise`` (product, bias,
        SiLU), the output layer one without the activation."""
        members, rows, _ = x.shape
        widest = max(weight.shape[0] for weight, _ in self.linear_layers[0])
        block = max(16, min(rows, self.fused_chunk_bytes // (widest * 4)))
        linear = torch.ops.mkldnn._linear_pointwise
        out = torch.empty(members, rows, self.linear_layers[0][-1][0].shape[0])
        for e, layers in enumerate(self.linear_layers):
            *hidden, (last_weight, last_bias) = layers
            for start in range(0, rows, block):
                y = x[e, start:start + block]
                for weight, bias in hidden:
                    y = linear(y, weight, bias, "swish", [], "")
                out[e, start:start + block] = linear(y, last_weight, last_bias, "none", [], "")
        return out

    def _batched(self, h: torch.Tensor) -> torch.Tensor:
        """The raw float32 output ``[E, B, out]`` for first-layer input ``h``, all members at once."""
        members = h.shape[0]
        widest = max(w.shape[2] for w in self.weights) * self.weights[0].element_size()
        block = max(16, self.chunk_bytes // (members * widest))
        pieces = []
        for x in h.split(block, dim=1):
            for weight in self.weights[:-1]:
                x = F.silu(torch.bmm(x, weight), inplace=True)
            pieces.append(torch.bmm(x, self.weights[-1]).float())
        return pieces[0] if len(pieces) == 1 else torch.cat(pieces, dim=1)

    def _member_major(self, h: torch.Tensor) -> torch.Tensor:
        """:meth:`_batched`, member by member."""
        members, rows, _ = h.shape
        widest = max((w.shape[2] for w in self.weights[:-1]), default=self.weights[-1].shape[2])
        block = max(16, min(rows, self.chunk_bytes // (widest * self.weights[0].element_size())))
        buffers = tuple(torch.empty(block, widest, dtype=self.dtype, device=self.device) for _ in range(2))
        out = torch.empty(members, rows, self.weights[-1].shape[2], dtype=self.dtype, device=self.device)
        for e in range(members):
            for start in range(0, rows, block):
                x = h[e, start:start + block]
                for i, weight in enumerate(self.weights[:-1]):
                    y = buffers[i % 2][: x.shape[0], : weight.shape[2]]
                    x = F.silu(torch.mm(x, weight[e], out=y), inplace=True)
                torch.mm(x, self.weights[-1][e], out=out[e, start:start + block])
        return out.float()

    def _input(self, parts: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """``[E, B, in']`` first-layer input in the compute dtype: the mapped inputs, the ones
        column, zero padding (the map is applied in float32, then rounded)."""
        h = self._mapped(parts, extra_columns=self.weights[0].shape[1] - self.in_dim)
        h[..., self.in_dim] = 1.0
        h[..., self.in_dim + 1:] = 0.0
        return h

    def _mapped(self, parts: tuple[torch.Tensor, ...], extra_columns: int) -> torch.Tensor:
        """``[E, B, in_dim + extra_columns]`` in the compute dtype, contiguous, the first ``in_dim``
        columns the parts concatenated and mapped (``x * input_scale + input_shift``, in float32),
        the extra columns left for the caller to fill."""
        features = sum(part.shape[-1] for part in parts)
        if features != self.in_dim:
            raise ValueError(f"inputs have {features} features in all, the network takes {self.in_dim}")
        members, rows = parts[0].shape[:2]
        h = torch.empty(members, rows, self.in_dim + extra_columns, dtype=self.dtype, device=self.device)
        start = 0
        for part in parts:
            end = start + part.shape[-1]
            torch.addcmul(self.input_shift[start:end], part, self.input_scale[start:end], out=h[..., start:end])
            start = end
        return h
