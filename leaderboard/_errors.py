"""Errors of the leaderboard."""


class LeaderboardError(Exception):
    """Unusable input (bad file, missing baseline run, mixed task versions)."""
