"""Every router the app serves, in one list (the authorisation matrix test walks the app)."""

from __future__ import annotations

from fastapi import APIRouter

ROUTERS: list[APIRouter] = []
