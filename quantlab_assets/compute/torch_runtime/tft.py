"""Seed 003 phase 4's Temporal Fusion Transformer (Lim et al. 2021), past inputs only (plain torch).

Our windows carry observed past features and no static covariates or known future inputs, so the TFT
reduces to its past-input path, kept faithful to the paper's blocks:

- per-variable embeddings: every feature j at every step is its own linear map x_t^j -> xi_t^j (d_model);
- variable selection network (VSN): v_t = softmax(GRN_v(concat_j xi_t^j)) over the F features, and
  xi~_t = sum_j v_t^j GRN_j(xi_t^j), each feature with its own GRN (weights stacked, one einsum);
  v_t sums to 1 per step and its mean over steps and windows is the feature importance;
- an LSTM encoder over xi~, then a gated skip connection (GLU, add, LayerNorm) around it;
- a static-enrichment-free temporal block: interpretable multi-head attention, with one value
  projection shared by all heads and the heads' outputs averaged, so the head-averaged weights over
  the window's steps are the attention that is exposed; the query is the window's last step (the
  forecast is made there), so attention reads steps <= t only; another gated skip connection;
- a position-wise GRN and a last gated skip connection to the LSTM output, the last step of which is
  the window's representation, fed to the same three heads as the transformer (transformer.py).

pytorch-forecasting's TemporalFusionTransformer was not used: it trains from its own TimeSeriesDataSet
(pandas, one sample per window, the layout seed 002 ran out of memory with) and its own Lightning
module, so it could not read our windows-by-index panel or share the model stack's OOF loop.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional

from quantlab_assets.compute.torch_runtime.configs import TftConfig  # noqa: F401 (re-exported)
from quantlab_assets.compute.torch_runtime.transformer import ForecastHeads


class GatedResidualNetwork(nn.Module):
    """GRN(a) = LayerNorm(skip(a) + GLU(W1 ELU(W2 a + b2) + b1)), skip a linear map when sizes differ."""

    def __init__(self, d_in: int, d_hidden: int, d_out: int, dropout: float) -> None:
        super().__init__()
        self.hidden = nn.Linear(d_in, d_hidden)
        self.output = nn.Linear(d_hidden, 2 * d_out)
        self.dropout = nn.Dropout(dropout)
        self.skip = nn.Linear(d_in, d_out) if d_in != d_out else nn.Identity()
        self.norm = nn.LayerNorm(d_out)

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        gated = functional.glu(self.output(self.dropout(functional.elu(self.hidden(a)))), dim=-1)
        return self.norm(self.skip(a) + gated)


class VariableGRNs(nn.Module):
    """F independent GRNs of width d, one per variable, evaluated together: (..., F, d) -> (..., F, d)."""

    def __init__(self, n_variables: int, d: int, dropout: float) -> None:
        super().__init__()
        scale = d ** -0.5
        self.hidden_weight = nn.Parameter(torch.randn(n_variables, d, d) * scale)
        self.hidden_bias = nn.Parameter(torch.zeros(n_variables, d))
        self.output_weight = nn.Parameter(torch.randn(n_variables, d, 2 * d) * scale)
        self.output_bias = nn.Parameter(torch.zeros(n_variables, 2 * d))
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(d)

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        hidden = functional.elu(torch.einsum("...fi,fio->...fo", a, self.hidden_weight) + self.hidden_bias)
        gated = functional.glu(torch.einsum("...fi,fio->...fo", self.dropout(hidden), self.output_weight)
                               + self.output_bias, dim=-1)
        return self.norm(a + gated)


class GatedSkip(nn.Module):
    """LayerNorm(residual + GLU(dropout(x))): the TFT's gate, add and norm."""

    def __init__(self, d: int, dropout: float) -> None:
        super().__init__()
        self.gate = nn.Linear(d, 2 * d)
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(d)

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.norm(residual + functional.glu(self.gate(self.dropout(x)), dim=-1))


class InterpretableAttention(nn.Module):
    """Multi-head attention of one query over the window with a value projection shared by the heads;
    returns the head-averaged output and the head-averaged weights (B, T), which sum to 1."""

    def __init__(self, d_model: int, n_heads: int, dropout: float) -> None:
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model {d_model} is not a multiple of n_heads {n_heads}")
        self.n_heads, self.d_head = n_heads, d_model // n_heads
        self.query = nn.Linear(d_model, d_model)
        self.key = nn.Linear(d_model, d_model)
        self.value = nn.Linear(d_model, self.d_head)
        self.output = nn.Linear(self.d_head, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, query: torch.Tensor, keys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        batch, steps, _ = keys.shape
        q = self.query(query).view(batch, self.n_heads, 1, self.d_head)
        k = self.key(keys).view(batch, steps, self.n_heads, self.d_head).transpose(1, 2)
        weights = torch.softmax(q @ k.transpose(-1, -2) / self.d_head ** 0.5, dim=-1)  # (B, H, 1, T)
        attended = self.dropout(weights) @ self.value(keys).unsqueeze(1)  # (B, H, 1, d_head)
        return self.output(attended.mean(dim=1)[:, 0]), weights.mean(dim=1)[:, 0]


class TemporalFusionForecaster(nn.Module):
    def __init__(self, config: TftConfig) -> None:
        super().__init__()
        d, n = config.d_model, config.n_features
        self.config = config
        self.variable_weight = nn.Parameter(torch.randn(n, d) * 0.1)
        self.variable_bias = nn.Parameter(torch.zeros(n, d))
        self.selection = GatedResidualNetwork(n * d, d, n, config.dropout)
        self.variable_grns = VariableGRNs(n, d, config.dropout)
        self.lstm = nn.LSTM(d, d, num_layers=config.lstm_layers, batch_first=True,
                            dropout=config.dropout if config.lstm_layers > 1 else 0.0)
        self.lstm_skip = GatedSkip(d, config.dropout)
        self.attention = InterpretableAttention(d, config.n_heads, config.dropout)
        self.attention_skip = GatedSkip(d, config.dropout)
        self.position_wise = GatedResidualNetwork(d, d, d, config.dropout)
        self.output_skip = GatedSkip(d, config.dropout)
        self.output_heads = ForecastHeads(d)

    def heads(self) -> dict[str, nn.Module]:
        return self.output_heads.by_name()

    def interpret(self, windows: torch.Tensor) -> dict[str, torch.Tensor]:
        """(B, T, F) -> representation (B, d), variable_weights (B, T, F), attention (B, T)."""
        embedded = windows.unsqueeze(-1) * self.variable_weight + self.variable_bias  # (B, T, F, d)
        variable_weights = torch.softmax(self.selection(embedded.flatten(-2)), dim=-1)
        selected = (variable_weights.unsqueeze(-1) * self.variable_grns(embedded)).sum(dim=-2)
        encoded, _ = self.lstm(selected)
        temporal = self.lstm_skip(encoded, selected)
        last = temporal[:, -1]
        attended, attention = self.attention(last, temporal)
        enriched = self.position_wise(self.attention_skip(attended, last))
        representation = self.output_skip(enriched, last)
        return {"representation": representation, "variable_weights": variable_weights, "attention": attention}

    def forward(self, windows: torch.Tensor) -> dict[str, torch.Tensor]:
        parts = self.interpret(windows)
        return {**parts, **self.output_heads(parts["representation"])}
