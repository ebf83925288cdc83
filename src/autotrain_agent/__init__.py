"""autotrain-agent: plan, run, monitor, evaluate and report fine-tuning experiments."""

import logging

logging.getLogger(__name__).addHandler(logging.NullHandler())

__version__ = "0.1.0"
