"""The int8 CPU path of the review encoder: SmoothQuant-style dynamic int8 BERT layers.

fbgemm's dynamic int8 kernels, with calibrated per-channel smoothing and a few FFN channels
kept in float; see ``ReviewEncoder.quantize`` for the measured agreement with float.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    import torch

INT8_SCHEME = "smoothquant0.75-ffn4-padzero-v1"
"""Goes into :attr:`ReviewEncoder.model_id` when quantised, so vectors cached by an earlier
int8 scheme are never mixed with this one's (the ``-int8`` suffix stays)."""
_SMOOTH_ALPHA = 0.75  # SmoothQuant migration strength (query/key/value and FFN up inputs)
_FFN_HOT_CHANNELS = 4  # FFN hidden channels whose down-projection stays in float

CALIBRATION_TEXTS: tuple[str, ...] = (
    "Great seller, fast shipping!",
    "Item never arrived. Seller stopped answering my messages.",
    "ok",
    "Nice.",
    "Very good quality.",
    "Complete waste of money.",
    "Fake product!!! Do NOT buy, this account is a scam.",
    "Product as described, good value for money, would buy again.",
    "The packaging was damaged but the refund came through within two days.",
    "Lovely winter coat! Looks just like the photos. Great seller, thanks!",
    "Very pleased with the coffee grinder. I think the assembly could be better.",
    "Second time ordering this. The price is really good and the delivery was on time.",
    "As for the shipping, it is okay for the price. The handle feels a bit cheap.",
    "Stopped working after a week. Support never replied to my three emails.",
    "Would not recommend. Item smelled of smoke and the box was open.",
    "The colour was slightly different from the photos but overall fine.",
    "I bought five of these for my team and they all broke within a week",
    "Paid $49.99 + $5 shipping; received an empty envelope.",
    "Tracking number 1Z999AA10123456784 never updated.",
    "Seller asked me to pay outside the platform via gift cards.",
    "Same account left 30 five-star reviews on its own listings in one hour.",
    "Best purchase this year. Five stars from me, already recommended it to friends.",
    "Honestly, the size exceeded my expectations and the return process was easy.",
    "Not as described. The material is thin and the stitching came apart.",
    "refund refund refund refund refund",
    "5/5 ⭐⭐⭐⭐⭐ would buy again 👍",
    "Arrived early, well packed, works exactly as advertised. Thank you!",
    "The battery lasts two hours at most, far less than the listing claims.",
    "Excelente vendedor, todo llegó en perfecto estado.",
    "Ça marche très bien, merci beaucoup.",
    "Sehr gutes Produkt, schnelle Lieferung.",
    "这个卖家很好，发货很快，推荐！",
    "Отличный продавец, рекомендую.",
    "I think the design is just right. The aroma is great. Nothing more to say, really. "
    "As for the tracking, it is impressive, and the customer service is spot on.",
)
"""Fixed calibration set for the int8 activation statistics (review-like, a few languages).

Built in rather than taken from the caller's texts so the int8 model, and therefore every
vector it produces, does not depend on what was encoded first or in which order."""


class _EncoderOutput(NamedTuple):
    """The one field of a HuggingFace model output that :class:`ReviewEncoder` reads."""

    last_hidden_state: Any


class _Int8Linear:
    """``x @ W.T + b`` on fbgemm's dynamic int8 kernel, with optional SmoothQuant.

    Weights are int8 per output channel; activations are quantised per tensor at run time,
    to the full 8-bit range where the CPU has AVX-512 VNNI (``reduce_range=False``: VNNI
    accumulates in int32 and cannot saturate the int16 pair sums that older x86 kernels
    do), to 7 bits otherwise, as ``torch.ao`` does on x86.

    With ``act_max`` (calibrated per-channel ``max|x|``) and ``alpha``, input channel ``j``
    is divided by ``s_j = max|X_j|^alpha / max|W_j|^(1 - alpha)`` and weight column ``j``
    multiplied by it (SmoothQuant, Xiao et al. 2023): exact in float, but the activation
    becomes flat enough for one scale. BERT is post-LayerNorm (the LayerNorm output is
    also the residual), so ``1/s`` cannot be folded into the LayerNorm as in pre-LN
    models; it is one multiply here.
    """

    def __init__(
        self,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        *,
        full_range: bool,
        act_max: torch.Tensor | None = None,
        alpha: float | None = None,
    ) -> None:
        import torch

        w = weight.detach().float()
        self._in_scale: torch.Tensor | None = None
        if act_max is not None and alpha is not None:
            s = act_max.float().clamp(min=1e-5).pow(alpha)
            s = (s / w.abs().amax(dim=0).clamp(min=1e-5).pow(1.0 - alpha)).clamp(min=1e-5)
            self._in_scale, w = 1.0 / s, w * s
        w_scale = (w.abs().amax(dim=1).clamp(min=1e-8) / 127.0).double()
        zero = torch.zeros(w.shape[0], dtype=torch.long)
        qweight = torch.quantize_per_channel(w, w_scale, zero, 0, torch.qint8)
        b = bias.detach().float() if bias is not None else None
        self._packed = torch.ops.quantized.linear_prepack(qweight, b)
        self._reduce_range = not full_range

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        import torch

        if self._in_scale is not None:
            x = x * self._in_scale
        y: torch.Tensor = torch.ops.quantized.linear_dynamic(x, self._packed, self._reduce_range)
        return y


class _Int8BertLayer:
    """One post-LayerNorm BERT layer with every projection on :class:`_Int8Linear`.

    Query, key and value run as one ``[3H, H]`` product (one activation quantisation, one
    larger GEMM) and share one SmoothQuant scale, as does the FFN up-projection. The
    ``_FFN_HOT_CHANNELS`` FFN hidden channels with the largest calibrated GELU output
    (the [CLS] token's, ~15-25 against ~5 elsewhere in layers 0-3) skip the int8
    down-projection: they are zeroed in its input (and its weight columns) and their
    contribution is added back in float, so they no longer set its range (LLM.int8()'s
    outlier split, Dettmers et al. 2022). Attention is PyTorch's SDPA; LayerNorm, GELU and
    the residual additions stay in float.
    """

    def __init__(self, layer: Any, stats: dict[str, torch.Tensor], full_range: bool) -> None:
        import torch

        att = layer.attention
        projections = (att.self.query, att.self.key, att.self.value)
        self._qkv = _Int8Linear(
            torch.cat([p.weight for p in projections]),
            torch.cat([p.bias for p in projections]),
            full_range=full_range,
            act_max=stats["qkv"],
            alpha=_SMOOTH_ALPHA,
        )
        self._attn_out = _Int8Linear(
            att.output.dense.weight, att.output.dense.bias, full_range=full_range
        )
        up, down = layer.intermediate.dense, layer.output.dense
        self._ffn_in = _Int8Linear(
            up.weight,
            up.bias,
            full_range=full_range,
            act_max=stats["ffn_in"],
            alpha=_SMOOTH_ALPHA,
        )
        self._hot = torch.topk(stats["ffn_out"], _FFN_HOT_CHANNELS).indices.sort().values
        down_weight = down.weight.detach().float()
        self._hot_weight = down_weight[:, self._hot].t().contiguous()  # [k, hidden]
        self._ffn_out = _Int8Linear(
            down_weight.index_fill(1, self._hot, 0.0), down.bias, full_range=full_range
        )
        self._ln1 = att.output.LayerNorm
        self._ln2 = layer.output.LayerNorm
        self._heads = int(att.self.num_attention_heads)

    def __call__(
        self, x: torch.Tensor, mask: torch.Tensor | None, keep: torch.Tensor | None
    ) -> torch.Tensor:
        """Run the layer; ``mask`` is SDPA's key mask, ``keep`` zeroes padded rows."""
        import torch
        import torch.nn.functional as F

        batch, length, hidden = x.shape
        qkv = self._qkv(x).view(batch, length, 3, self._heads, hidden // self._heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        h = self._ln1(self._attn_out(ctx.transpose(1, 2).reshape(batch, length, hidden)) + x)
        if keep is not None:
            h.mul_(keep)
        act = torch.ops.aten.gelu_(self._ffn_in(h))  # in place: a fresh [tokens, 4H] tensor
        flat = act.view(-1, act.shape[-1])
        hot = flat.index_select(1, self._hot)
        flat.index_fill_(1, self._hot, 0.0)
        y = self._ffn_out(act)
        y.view(-1, hidden).addmm_(hot, self._hot_weight)
        out: torch.Tensor = self._ln2(y + h)
        return out.mul_(keep) if keep is not None else out


class Int8Bert:
    """Inference-only BERT encoder: the checkpoint's embeddings, then int8 layers.

    Called like the HuggingFace model (``input_ids``, ``attention_mask``, optional
    ``token_type_ids``) and returns an object with ``last_hidden_state``; no pooler.
    """

    def __init__(self, model: Any, stats: list[dict[str, torch.Tensor]], full_range: bool) -> None:
        self._embeddings = model.embeddings
        self._layers = [
            _Int8BertLayer(layer, layer_stats, full_range)
            for layer, layer_stats in zip(model.encoder.layer, stats, strict=True)
        ]

    def __call__(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
    ) -> _EncoderOutput:

        x = self._embeddings(input_ids=input_ids, token_type_ids=token_type_ids)
        mask = keep = None
        if not bool(attention_mask.all()):
            # SDPA masks keys only; every query row keeps its [CLS] key, so none is empty.
            mask = attention_mask.bool()[:, None, None, :]
            # Padded rows never reach a real row in float (their keys are masked), but they
            # would widen the per-tensor int8 ranges: zeroing them is exact for real rows
            # and lifted the minimum cosine on mixed-length batches from 0.990 to 0.995.
            keep = attention_mask[..., None].to(x.dtype)
            x = x * keep
        for layer in self._layers:
            x = layer(x, mask, keep)
        return _EncoderOutput(x)


def bert_like(model: Any) -> bool:
    """Whether ``model`` has the post-LayerNorm BERT layout that :class:`Int8Bert` runs."""
    import torch

    config = getattr(model, "config", None)
    layers = getattr(getattr(model, "encoder", None), "layer", None)
    if config is None or getattr(model, "embeddings", None) is None or not layers:
        return False
    if getattr(config, "hidden_act", None) != "gelu" or getattr(config, "is_decoder", False):
        return False
    if getattr(config, "position_embedding_type", None) not in (None, "absolute"):
        return False
    linear, norm = torch.nn.Linear, torch.nn.LayerNorm
    for layer in layers:
        try:
            att = layer.attention
            parts = [
                (att.self.query, linear),
                (att.self.key, linear),
                (att.self.value, linear),
                (att.output.dense, linear),
                (att.output.LayerNorm, norm),
                (layer.intermediate.dense, linear),
                (layer.output.dense, linear),
                (layer.output.LayerNorm, norm),
            ]
            heads = int(att.self.num_attention_heads)
        except AttributeError:
            return False
        if not all(isinstance(module, kind) for module, kind in parts):
            return False
        if any(isinstance(m, linear) and m.bias is None for m, _ in parts):
            return False
        if att.self.query.out_features % heads or att.self.query.in_features % heads:
            return False
    return True


def full_range_int8() -> bool:
    """Whether fbgemm may use all 8 activation bits: only with AVX-512 VNNI (see
    :class:`_Int8Linear`); elsewhere 7 bits, as ``torch.ao`` does on x86."""
    import torch

    capabilities = getattr(torch.cpu, "get_capabilities", None)
    if capabilities is None:
        return False
    try:
        return bool(capabilities().get("avx512_vnni", False))
    except Exception:  # an unknown CPU or torch build: be safe
        return False
