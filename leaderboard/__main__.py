"""``python -m leaderboard build|check``."""

from leaderboard._cli import main

if __name__ == "__main__":
    raise SystemExit(main())
