"""The base of every component's options (a leaf): strict (an unknown key is an error listing the
allowed ones) and frozen. A component declares its options as a subclass with defaults, in one
place; ``genlab.config`` assembles the params schema from them."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
