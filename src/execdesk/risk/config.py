"""The risk manager's configuration: typed, frozen, validated up front."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class RiskConfig(BaseModel):
    """Limits the risk manager enforces. Fractions are of equity (portfolio or deployment).

    Defaults:
      risk_per_trade 0.01 — fixed-fractional sizing risks 1% of the deployment's equity per trade,
        measured to the strategy's stoploss;
      max_position_fraction 0.25 — no single position above 25% of its deployment's equity;
      max_order_notional null — optional absolute cap per order, in the quote currency;
      max_gross_exposure 1.0 — the sum of all positions' notional at most 100% of portfolio equity;
      max_open_positions 50;
      portfolio_halt_drawdown 0.10 — at 10% portfolio drawdown (equity incl. unrealised P&L, from its
        peak) the desk stops opening positions (REDUCING);
      portfolio_close_drawdown 0.20 — at 20% the circuit breaker closes everything and the desk HALTS;
      deployment_halt_drawdown 0.10 / deployment_close_drawdown 0.15 — the same two steps for one
        deployment's own equity (its capital plus its P&L).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    risk_per_trade: float = Field(0.01, gt=0, le=0.2)
    max_position_fraction: float = Field(0.25, gt=0, le=1.0)
    max_order_notional: float | None = Field(None, gt=0)
    max_gross_exposure: float = Field(1.0, gt=0, le=10.0)
    max_open_positions: int = Field(50, ge=1, le=100_000)
    portfolio_halt_drawdown: float = Field(0.10, gt=0, lt=1)
    portfolio_close_drawdown: float = Field(0.20, gt=0, lt=1)
    deployment_halt_drawdown: float = Field(0.10, gt=0, lt=1)
    deployment_close_drawdown: float = Field(0.15, gt=0, lt=1)

    @model_validator(mode="after")
    def _ladder_tightens(self) -> RiskConfig:
        if self.portfolio_halt_drawdown >= self.portfolio_close_drawdown:
            raise ValueError(
                f"portfolio_halt_drawdown ({self.portfolio_halt_drawdown}) must be below "
                f"portfolio_close_drawdown ({self.portfolio_close_drawdown})")
        if self.deployment_halt_drawdown >= self.deployment_close_drawdown:
            raise ValueError(
                f"deployment_halt_drawdown ({self.deployment_halt_drawdown}) must be below "
                f"deployment_close_drawdown ({self.deployment_close_drawdown})")
        return self
