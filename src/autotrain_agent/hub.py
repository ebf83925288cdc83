"""Reachability of the Hugging Face Hub, decided once per command and quickly."""

from __future__ import annotations

import logging
import os

import httpx

logger = logging.getLogger(__name__)


def is_hub_reachable(*, timeout_s: float = 3.0) -> bool:
    """Return whether the Hub responds to an anonymous API request within `timeout_s` seconds.

    `HF_HUB_OFFLINE=1` makes it `False` without any request.
    """
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return False
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
    try:
        response = httpx.get(f"{endpoint}/api/models", params={"limit": 1}, timeout=timeout_s)
    except httpx.HTTPError as err:
        logger.debug("Hub unreachable at %s: %s", endpoint, err)
        return False
    return response.status_code < 500
