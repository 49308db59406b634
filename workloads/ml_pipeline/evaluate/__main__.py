"""MLPipeline, stage 3: pick the best of the trained models.

Input ``{"value": [train1, ..., train4]}`` (Composer's fan-in convention). Ranks the
models by test accuracy, then by log loss, and returns the winner and a leaderboard.
"""


def main(args):
    results = args.get("value")
    if not isinstance(results, list) or not results:
        return {"error": "expected {'value': [<train result>, ...]} from the parallel stage"}
    good = [r for r in results if isinstance(r, dict) and "accuracy" in r]
    if not good:
        return {"error": "no model trained", "results": results}
    board = sorted(good, key=lambda r: (-r["accuracy"], r["logloss"]))
    seconds = [float(r["seconds"]) for r in good]
    return {
        "best": {k: board[0][k] for k in ("model", "hyperparameters", "accuracy", "logloss")},
        "leaderboard": [
            {k: r.get(k) for k in ("model", "accuracy", "logloss", "seconds", "processes", "threads")}
            for r in board
        ],
        "failed": len(results) - len(good),
        "skew": max(seconds) / max(min(seconds), 1e-9),
    }
