"""MLPipeline, stage 1: clean the dataset, standardise it, split train/test.

Input ``{"csv": "<header>\\n<rows>", "label": "label"}``. Drops duplicate rows and
rows without a label, fills missing cells with the column median, clips outliers to
5 standard deviations, standardises every feature and makes a stratified 80/20 split.
Output: train and test sets as compact CSV text (features then label).
"""

import io
import math
import time

import numpy as np
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler


def parse(csv_text, label):
    lines = csv_text.strip().splitlines()
    header = lines[0].split(",")
    if label not in header:
        raise ValueError(f"no column named {label!r}")
    rows = [[float(c) if c else math.nan for c in line.split(",")] for line in lines[1:] if line]
    data = np.asarray(rows, dtype=np.float64)
    at = header.index(label)
    features = [h for i, h in enumerate(header) if i != at]
    return features, np.delete(data, at, axis=1), data[:, at]


def to_csv(x, y):
    out = io.StringIO()
    np.savetxt(out, np.column_stack([x, y]), fmt="%.5g", delimiter=",")
    return out.getvalue()


def main(args):
    start = time.perf_counter()
    if not isinstance(args.get("csv"), str):
        return {"error": "expected {'csv': '<header>\\n<rows>'}"}
    features, x, y = parse(args["csv"], args.get("label", "label"))
    rows_in = len(y)
    keep = ~np.isnan(y)
    x, y = x[keep], y[keep]
    _, unique = np.unique(np.column_stack([x, y]), axis=0, return_index=True)
    unique.sort()
    x, y = x[unique], y[unique]
    missing = int(np.isnan(x).sum())
    medians = np.nanmedian(x, axis=0)
    x = np.where(np.isnan(x), medians, x)
    mean, std = x.mean(axis=0), x.std(axis=0) + 1e-12
    x = np.clip(x, mean - 5 * std, mean + 5 * std)
    x = StandardScaler().fit_transform(x)
    test_size = float(args.get("test_size", 0.2))
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=test_size, stratify=y, random_state=int(args.get("seed", 0))
    )
    rows = {"input": rows_in, "duplicates": rows_in - len(y), "train": len(y_train), "test": len(y_test)}
    print(f"preprocess: {rows_in} rows -> {len(y_train)} train / {len(y_test)} test, {missing} cells imputed")
    return {
        "features": features,
        "train": to_csv(x_train, y_train),
        "test": to_csv(x_test, y_test),
        "rows": rows,
        "imputed": missing,
        "seconds": time.perf_counter() - start,
    }
