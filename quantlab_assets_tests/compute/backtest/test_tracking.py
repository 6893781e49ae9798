"""The backtest report's MLflow parameters are the values each strategy's backtest used, one per leaf."""

from quantlab_assets.compute.backtest.engine import BacktestParams, CostParams
from quantlab_assets.compute.backtest.tracking import NOT_RECORDED, used_params


def test_one_execution_model_is_logged_once_by_leaf() -> None:
    dear = BacktestParams(costs=CostParams(20, 10, 10), delay=2, rebalance="monthly")
    assert used_params({"qp_optimal": dear, "top_n": dear}) == {
        "costs.commission_bps": 20, "costs.slippage_bps": 10, "costs.spread_bps": 10, "delay": 2,
        "rebalance": "monthly", "initial_capital": 1.0, "borrow_fee_bps": 50.0}


def test_different_models_are_logged_per_strategy() -> None:
    logged = used_params({"qp_optimal": BacktestParams(delay=3), "top_n": None})
    assert logged["qp_optimal.delay"] == 3 and logged["qp_optimal.costs.commission_bps"] == 10.0
    assert logged["top_n.backtest"] == NOT_RECORDED and "delay" not in logged
