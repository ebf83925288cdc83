"""The outcome of a quick test run: whether the job script trained a few steps, and how fast."""

from __future__ import annotations

from pydantic import BaseModel

from .errors import HardwareError
from .estimate import flavor_tokens_per_s_ratio
from .hardware import Flavor, PriceTable


class QuickTestMeasurement(BaseModel):
    """A quick test run's job, outcome and measured training speed."""

    run_id: str
    """The full run that the quick test precedes."""
    quick_test_id: str
    """Run id of the quick test's job, e.g. `run-1-quick-test`."""
    attempt: int
    """1 for the first quick test of the experiment, counting up after each failed one."""
    job_id: str
    """The quick test's job."""
    backend: str
    """Backend that ran it: `local` when the model fits this machine, else the plan's paid backend."""
    flavor: str
    """Hardware flavor it ran on; `cpu` locally."""
    samples: int
    """Training rows it used."""
    steps: int
    """Optimizer steps it trained."""
    succeeded: bool
    """Whether the job trained every step and saved its checkpoint."""
    tokens_per_s: float | None = None
    """Measured training throughput (tokens seen over training time), when the job logged its summary."""
    message: str | None = None
    """The job's last error line, for a failed quick test."""
    cost_usd: float = 0.0
    """Money it cost: wall time from submission to end times the flavor's price; 0 locally."""

    def describe(self) -> str:
        """Return one line for the approval request and the report."""
        where = f"on {self.backend} ({self.flavor})"
        outcome = "passed" if self.succeeded else f"failed: {self.message}"
        speed = f", {self.tokens_per_s:.0f} tokens/s" if self.tokens_per_s else ""
        return f"quick test {self.quick_test_id} {outcome} {where}: {self.samples} samples, {self.steps} steps{speed}"

    def tokens_per_s_on(self, flavor: Flavor, table: PriceTable) -> float | None:
        """Return the throughput to expect on `flavor`, scaled from the measured one; `None` when unusable.

        A quick test on this machine's CPU does not predict a GPU's speed, so only a quick test on a GPU flavor
        calibrates the estimate.
        """
        if not self.succeeded or not self.tokens_per_s or self.backend == "local":
            return None
        try:
            measured = table.flavor(self.flavor)
        except HardwareError:
            return None
        ratio = flavor_tokens_per_s_ratio(flavor, measured)
        return self.tokens_per_s * ratio if ratio is not None else None
