"""Restormer (Zamir et al., CVPR 2022), the teacher, and the family the students come from.

A faithful re-implementation of the official ``basicsr/models/archs/restormer_arch.py``
(swz30/Restormer): same constructor keywords, same module names, hence the same ``state_dict``
keys, so official checkpoints (``torch.load(f)["params"]``) and BasicSR YAML ``network_g`` blocks
load unchanged. Tested against outputs of the official code (``tests/data/restormer_reference``,
docs/design.md section 2.4).

Parts follow the paper: MDTA (multi-Dconv head transposed attention, ``Attention``), GDFN
(gated-Dconv feed-forward network, ``FeedForward``), the transformer block, and the
pixel-(un)shuffle down/upsampling of the 4-level U-shape. Shapes are written ``B, C, H, W``.

The one addition is the keyword-only ``attention_impl``: ``"matmul"`` (the official explicit
``softmax(q k^T * t) v``) or ``"sdpa"`` (the same function through
``torch.nn.functional.scaled_dot_product_attention``). It changes no parameter and no output
beyond float rounding.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import torch
import torch.nn.functional as F  # noqa: N812 -- the torch convention
from torch import nn

LAYER_NORM_TYPES = ("WithBias", "BiasFree")
ATTENTION_IMPLS = ("matmul", "sdpa")


def to_3d(x: torch.Tensor) -> torch.Tensor:
    """``B, C, H, W -> B, H*W, C``."""
    return x.flatten(2).transpose(1, 2)


def to_4d(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """``B, H*W, C -> B, C, H, W``."""
    return x.transpose(1, 2).reshape(x.shape[0], x.shape[2], h, w)


##########################################################################
## Layer Norm (over channels, per pixel; population variance, eps 1e-5)


class BiasFree_LayerNorm(nn.Module):  # noqa: N801 -- official class name
    def __init__(self, normalized_shape: int | Sequence[int]) -> None:
        super().__init__()
        if isinstance(normalized_shape, numbers.Integral):
            normalized_shape = (normalized_shape,)
        normalized_shape = torch.Size(normalized_shape)
        assert len(normalized_shape) == 1
        self.weight = nn.Parameter(torch.ones(normalized_shape))
        self.normalized_shape = normalized_shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sigma = x.var(-1, keepdim=True, unbiased=False)
        return x / torch.sqrt(sigma + 1e-5) * self.weight


class WithBias_LayerNorm(nn.Module):  # noqa: N801 -- official class name
    def __init__(self, normalized_shape: int | Sequence[int]) -> None:
        super().__init__()
        if isinstance(normalized_shape, numbers.Integral):
            normalized_shape = (normalized_shape,)
        normalized_shape = torch.Size(normalized_shape)
        assert len(normalized_shape) == 1
        self.weight = nn.Parameter(torch.ones(normalized_shape))
        self.bias = nn.Parameter(torch.zeros(normalized_shape))
        self.normalized_shape = normalized_shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # the official (x - mu) / sqrt(var + 1e-5) * weight + bias (population variance), through the
        # fused kernel: same formula, ~5x faster on small widths on CPU (results/perf.md), <1e-6 apart
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, 1e-5)


class LayerNorm(nn.Module):
    def __init__(self, dim: int, LayerNorm_type: str) -> None:  # noqa: N803 -- official keyword
        super().__init__()
        if LayerNorm_type not in LAYER_NORM_TYPES:
            raise ValueError(f"LayerNorm_type must be one of {LAYER_NORM_TYPES}, got {LayerNorm_type!r}")
        if LayerNorm_type == "BiasFree":
            self.body = BiasFree_LayerNorm(dim)
        else:
            self.body = WithBias_LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        return to_4d(self.body(to_3d(x)), h, w)


##########################################################################
## Gated-Dconv Feed-Forward Network (GDFN)


class FeedForward(nn.Module):
    def __init__(self, dim: int, ffn_expansion_factor: float, bias: bool) -> None:
        super().__init__()
        hidden_features = int(dim * ffn_expansion_factor)
        self.project_in = nn.Conv2d(dim, hidden_features * 2, kernel_size=1, bias=bias)
        self.dwconv = nn.Conv2d(
            hidden_features * 2, hidden_features * 2, kernel_size=3, stride=1, padding=1,
            groups=hidden_features * 2, bias=bias,
        )
        self.project_out = nn.Conv2d(hidden_features, dim, kernel_size=1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.project_in(x)
        x1, x2 = self.dwconv(x).chunk(2, dim=1)
        x = F.gelu(x1) * x2
        return self.project_out(x)


##########################################################################
## Multi-DConv Head Transposed Self-Attention (MDTA): a C x C map per head


class Attention(nn.Module):
    def __init__(self, dim: int, num_heads: int, bias: bool, attention_impl: str = "matmul") -> None:
        super().__init__()
        if attention_impl not in ATTENTION_IMPLS:
            raise ValueError(f"attention_impl must be one of {ATTENTION_IMPLS}, got {attention_impl!r}")
        self.num_heads = num_heads
        self.attention_impl = attention_impl
        self.temperature = nn.Parameter(torch.ones(num_heads, 1, 1))
        self.qkv = nn.Conv2d(dim, dim * 3, kernel_size=1, bias=bias)
        self.qkv_dwconv = nn.Conv2d(dim * 3, dim * 3, kernel_size=3, stride=1, padding=1, groups=dim * 3, bias=bias)
        self.project_out = nn.Conv2d(dim, dim, kernel_size=1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        qkv = self.qkv_dwconv(self.qkv(x))
        q, k, v = qkv.chunk(3, dim=1)
        # B, (head c), H, W -> B, head, c, H*W
        q = q.reshape(b, self.num_heads, c // self.num_heads, h * w)
        k = k.reshape(b, self.num_heads, c // self.num_heads, h * w)
        v = v.reshape(b, self.num_heads, c // self.num_heads, h * w)
        q = F.normalize(q, dim=-1)
        k = F.normalize(k, dim=-1)
        if self.attention_impl == "sdpa":
            out = F.scaled_dot_product_attention(q * self.temperature, k, v, scale=1.0)
        else:
            attn = (q @ k.transpose(-2, -1)) * self.temperature  # B, head, c, c
            attn = attn.softmax(dim=-1)
            out = attn @ v
        out = out.reshape(b, c, h, w)
        return self.project_out(out)


##########################################################################
## Transformer block: x + MDTA(LN(x)), then x + GDFN(LN(x))


class TransformerBlock(nn.Module):
    def __init__(
        self, dim: int, num_heads: int, ffn_expansion_factor: float, bias: bool,
        LayerNorm_type: str, attention_impl: str = "matmul",  # noqa: N803
    ) -> None:
        super().__init__()
        self.norm1 = LayerNorm(dim, LayerNorm_type)
        self.attn = Attention(dim, num_heads, bias, attention_impl)
        self.norm2 = LayerNorm(dim, LayerNorm_type)
        self.ffn = FeedForward(dim, ffn_expansion_factor, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.ffn(self.norm2(x))


##########################################################################
## Overlapped image patch embedding with 3x3 Conv


class OverlapPatchEmbed(nn.Module):
    def __init__(self, in_c: int = 3, embed_dim: int = 48, bias: bool = False) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_c, embed_dim, kernel_size=3, stride=1, padding=1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


##########################################################################
## Resizing modules: C, H, W -> 2C, H/2, W/2 (down) and C, H, W -> C/2, 2H, 2W (up)


class Downsample(nn.Module):
    def __init__(self, n_feat: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(n_feat, n_feat // 2, kernel_size=3, stride=1, padding=1, bias=False), nn.PixelUnshuffle(2)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class Upsample(nn.Module):
    def __init__(self, n_feat: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(n_feat, n_feat * 2, kernel_size=3, stride=1, padding=1, bias=False), nn.PixelShuffle(2)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


##########################################################################
## Restormer


class Restormer(nn.Module):
    """Restormer with the official keywords. Input ``B, inp_channels, H, W`` in [0, 1], with H and W
    multiples of 8 (three 2x downsamplings); output ``B, out_channels, H, W`` (residual on the input
    unless ``dual_pixel_task``)."""

    #: spatial size must be divisible by this (three PixelUnshuffle(2) levels)
    size_divisor = 8

    def __init__(
        self,
        inp_channels: int = 3,
        out_channels: int = 3,
        dim: int = 48,
        num_blocks: Sequence[int] = (4, 6, 6, 8),
        num_refinement_blocks: int = 4,
        heads: Sequence[int] = (1, 2, 4, 8),
        ffn_expansion_factor: float = 2.66,
        bias: bool = False,
        LayerNorm_type: str = "WithBias",  # noqa: N803 -- official keyword; other option 'BiasFree'
        dual_pixel_task: bool = False,  # True for dual-pixel defocus deblurring only (inp_channels=6)
        *,
        attention_impl: str = "matmul",
    ) -> None:
        super().__init__()
        if len(num_blocks) != 4 or len(heads) != 4:
            raise ValueError(f"num_blocks and heads need 4 entries, got {list(num_blocks)} and {list(heads)}")

        def level(width: int, n_heads: int, n: int) -> nn.Sequential:
            return nn.Sequential(*[
                TransformerBlock(width, n_heads, ffn_expansion_factor, bias, LayerNorm_type, attention_impl)
                for _ in range(n)
            ])

        self.patch_embed = OverlapPatchEmbed(inp_channels, dim)
        self.encoder_level1 = level(dim, heads[0], num_blocks[0])
        self.down1_2 = Downsample(dim)  ## From Level 1 to Level 2
        self.encoder_level2 = level(int(dim * 2**1), heads[1], num_blocks[1])
        self.down2_3 = Downsample(int(dim * 2**1))  ## From Level 2 to Level 3
        self.encoder_level3 = level(int(dim * 2**2), heads[2], num_blocks[2])
        self.down3_4 = Downsample(int(dim * 2**2))  ## From Level 3 to Level 4
        self.latent = level(int(dim * 2**3), heads[3], num_blocks[3])

        self.up4_3 = Upsample(int(dim * 2**3))  ## From Level 4 to Level 3
        self.reduce_chan_level3 = nn.Conv2d(int(dim * 2**3), int(dim * 2**2), kernel_size=1, bias=bias)
        self.decoder_level3 = level(int(dim * 2**2), heads[2], num_blocks[2])
        self.up3_2 = Upsample(int(dim * 2**2))  ## From Level 3 to Level 2
        self.reduce_chan_level2 = nn.Conv2d(int(dim * 2**2), int(dim * 2**1), kernel_size=1, bias=bias)
        self.decoder_level2 = level(int(dim * 2**1), heads[1], num_blocks[1])
        self.up2_1 = Upsample(int(dim * 2**1))  ## From Level 2 to Level 1 (NO 1x1 conv to reduce channels)
        self.decoder_level1 = level(int(dim * 2**1), heads[0], num_blocks[0])
        self.refinement = level(int(dim * 2**1), heads[0], num_refinement_blocks)

        #### For Dual-Pixel Defocus Deblurring Task ####
        self.dual_pixel_task = dual_pixel_task
        if self.dual_pixel_task:
            self.skip_conv = nn.Conv2d(dim, int(dim * 2**1), kernel_size=1, bias=bias)
        self.output = nn.Conv2d(int(dim * 2**1), out_channels, kernel_size=3, stride=1, padding=1, bias=bias)

    def forward(self, inp_img: torch.Tensor) -> torch.Tensor:
        inp_enc_level1 = self.patch_embed(inp_img)  # B, dim, H, W
        out_enc_level1 = self.encoder_level1(inp_enc_level1)
        inp_enc_level2 = self.down1_2(out_enc_level1)  # B, 2dim, H/2, W/2
        out_enc_level2 = self.encoder_level2(inp_enc_level2)
        inp_enc_level3 = self.down2_3(out_enc_level2)  # B, 4dim, H/4, W/4
        out_enc_level3 = self.encoder_level3(inp_enc_level3)
        inp_enc_level4 = self.down3_4(out_enc_level3)  # B, 8dim, H/8, W/8
        latent = self.latent(inp_enc_level4)

        inp_dec_level3 = self.up4_3(latent)
        inp_dec_level3 = torch.cat([inp_dec_level3, out_enc_level3], 1)
        inp_dec_level3 = self.reduce_chan_level3(inp_dec_level3)  # B, 4dim, H/4, W/4
        out_dec_level3 = self.decoder_level3(inp_dec_level3)

        inp_dec_level2 = self.up3_2(out_dec_level3)
        inp_dec_level2 = torch.cat([inp_dec_level2, out_enc_level2], 1)
        inp_dec_level2 = self.reduce_chan_level2(inp_dec_level2)  # B, 2dim, H/2, W/2
        out_dec_level2 = self.decoder_level2(inp_dec_level2)

        inp_dec_level1 = self.up2_1(out_dec_level2)
        inp_dec_level1 = torch.cat([inp_dec_level1, out_enc_level1], 1)  # B, 2dim, H, W
        out_dec_level1 = self.decoder_level1(inp_dec_level1)
        out_dec_level1 = self.refinement(out_dec_level1)

        if self.dual_pixel_task:
            out_dec_level1 = out_dec_level1 + self.skip_conv(inp_enc_level1)
            return self.output(out_dec_level1)
        return self.output(out_dec_level1) + inp_img
