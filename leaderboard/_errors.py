"""Errors of the leaderboard."""

from bench.substrate.errors import InputError


class LeaderboardError(InputError):
    """Unusable input (bad file, missing baseline run, mixed task versions)."""
