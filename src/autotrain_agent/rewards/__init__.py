"""GRPO reward functions, the adapter that checks their results, and the pre-launch dry run."""

from autotrain_agent.rewards.adapter import RewardAdapter, check_rewards
from autotrain_agent.rewards.dry_run import RewardDryRun, dry_run_on_rows, dry_run_reward_functions

__all__ = ["RewardAdapter", "RewardDryRun", "check_rewards", "dry_run_on_rows", "dry_run_reward_functions"]
