"""Build-time step of the workload image: train the VideoAnalytics digit classifier.

Runs inside the image (``RUN python3 train_digits.py <out>``) next to a copy of
``workloads/video_analytics/recognition/digits.py``, on scikit-learn's bundled
``load_digits`` data (nothing is downloaded), and saves the model with joblib where
the recognition functions look for it first.
"""

import sys
import time

import digits


def main(argv):
    out = argv[1] if len(argv) > 1 else digits.MODEL_PATH
    start = time.perf_counter()
    model = digits.train()
    digits.save(model, out)
    print(f"trained the digits classifier in {time.perf_counter() - start:.1f}s -> {out}")


if __name__ == "__main__":
    main(sys.argv)
