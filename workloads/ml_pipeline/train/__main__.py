"""MLPipeline, stage 2 (parallel): train LightGBM models and keep the best.

``train1`` .. ``train4`` are this same code; their default parameters give the base
hyper-parameters (number of trees, depth, leaves, feature fraction, bins), from 25
shallow trees to 300 deep ones, so the four branches of the stage differ in cost by
an order of magnitude. Each function runs a small search around its base: ``candidates``
models (varied learning rate, feature fraction and bagging seed) are trained in
parallel processes, one per core the CPU quota pays for, and the one with the best
validation loss is scored on the test set.

Why processes and not LightGBM's own threads: on these datasets (at most ~24,000 rows
x 20 features) a tree is too little work to share between OpenMP threads; measured here,
two threads took longer than one (and 60% more CPU time), while whole models in
separate processes scale with the cores. A process trains with one thread, unless
there are more cores than candidates.
"""

import io
import multiprocessing
import os
import time

import cpu_quota
import lightgbm as lgb
import numpy as np

DEFAULTS = {
    "trees": 100,
    "max_depth": -1,
    "num_leaves": 31,
    "feature_fraction": 0.8,
    "learning_rate": 0.1,
    "max_bin": 255,
    "min_data_in_leaf": 20,
    "candidates": 4,
}
CANDIDATE_KEYS = ("learning_rate", "feature_fraction", "val_logloss", "seconds")
_DATA = {}  # set in the parent before forking; the workers inherit it


def load(csv_text):
    data = np.loadtxt(io.StringIO(csv_text), delimiter=",", ndmin=2)
    return data[:, :-1], data[:, -1]


def candidate_params(hp, j, threads):
    """The j-th candidate of the search around the base hyper-parameters ``hp``."""
    lr_scale = (1.0, 0.7, 1.4, 1.0, 0.85, 1.2)[j % 6]
    ff = min(1.0, max(0.3, hp["feature_fraction"] * (1.0 - 0.1 * (j % 4))))
    return {
        "objective": "binary",
        "metric": "binary_logloss",
        "max_depth": hp["max_depth"],
        "num_leaves": hp["num_leaves"],
        "feature_fraction": ff,
        "bagging_fraction": 0.8,
        "bagging_freq": 1,
        "learning_rate": hp["learning_rate"] * lr_scale,
        "max_bin": hp["max_bin"],
        "min_data_in_leaf": hp["min_data_in_leaf"],
        "num_threads": threads,
        "seed": j,
        "verbosity": -1,
    }


def _scores(booster, x, y, threads):
    p = np.clip(booster.predict(x, num_threads=threads), 1e-7, 1 - 1e-7)
    accuracy = float(np.mean((p >= 0.5) == (y >= 0.5)))
    logloss = float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
    return accuracy, logloss


def train_candidate(task):
    """Fit one candidate on the training part, score it on validation and test."""
    params, trees = task
    d = _DATA
    start = time.perf_counter()
    dataset_params = {"max_bin": params["max_bin"], "verbosity": -1}
    train_set = lgb.Dataset(d["x_fit"], label=d["y_fit"], params=dataset_params)
    booster = lgb.train(params, train_set, num_boost_round=trees)
    threads = params["num_threads"]
    _, val_logloss = _scores(booster, d["x_val"], d["y_val"], threads)
    accuracy, logloss = _scores(booster, d["x_test"], d["y_test"], threads)
    gain = booster.feature_importance(importance_type="gain")
    return {
        "learning_rate": params["learning_rate"],
        "feature_fraction": params["feature_fraction"],
        "val_logloss": val_logloss,
        "accuracy": accuracy,
        "logloss": logloss,
        "top": [int(i) for i in np.argsort(gain)[::-1][:5]],
        "seconds": time.perf_counter() - start,
    }


def main(args):
    start = time.perf_counter()
    if not isinstance(args.get("train"), str) or not isinstance(args.get("test"), str):
        return {"error": "expected {'train': <csv>, 'test': <csv>} from preprocess"}
    hp = {k: type(v)(args.get(k, v)) for k, v in DEFAULTS.items()}
    x_train, y_train = load(args["train"])
    x_test, y_test = load(args["test"])
    cut = int(len(y_train) * 0.8)  # the last fifth of the (shuffled) training set validates
    _DATA.update(
        x_fit=x_train[:cut], y_fit=y_train[:cut], x_val=x_train[cut:], y_val=y_train[cut:],
        x_test=x_test, y_test=y_test,
    )  # fmt: skip
    cores = cpu_quota.worker_count()
    count = max(1, hp["candidates"])
    processes = min(cores, count)
    threads = max(1, cores // processes)
    tasks = [(candidate_params(hp, j, threads), hp["trees"]) for j in range(count)]
    if processes > 1:
        # fork: the workers inherit the data; LightGBM never ran in this process, so
        # no OpenMP thread pool is forked half-alive.
        with multiprocessing.get_context("fork").Pool(processes) as pool:
            results = pool.map(train_candidate, tasks, chunksize=1)
    else:
        results = [train_candidate(t) for t in tasks]
    best = min(results, key=lambda r: r["val_logloss"])
    features = args.get("features") or []
    name = os.environ.get("__OW_ACTION_NAME", "train").rsplit("/", 1)[-1]
    seconds = time.perf_counter() - start
    print(
        f"{name}: {count} x {hp['trees']} trees, {processes} processes x {threads} threads, "
        f"best acc {best['accuracy']:.3f}, {seconds:.2f}s"
    )
    return {
        "model": name,
        "hyperparameters": {**hp, **{k: best[k] for k in ("learning_rate", "feature_fraction")}},
        "processes": processes,
        "threads": threads,
        "accuracy": best["accuracy"],
        "logloss": best["logloss"],
        "val_logloss": best["val_logloss"],
        "candidates": [{k: r[k] for k in CANDIDATE_KEYS} for r in results],
        "top_features": [features[i] if i < len(features) else i for i in best["top"]],
        "train_rows": len(y_train),
        "seconds": seconds,
    }
