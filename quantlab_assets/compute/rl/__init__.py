"""RL portfolio allocation (seed 003, phase 5): a gymnasium environment on the backtest engine's execution
model, PPO and SAC policies (stable-baselines3), and their evaluation beside the lab's baselines."""
