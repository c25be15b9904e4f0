"""Models the docs name as placeholders, made real: a pickled scikit-learn classifier and its test data."""

from __future__ import annotations

import pickle
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from pathlib import Path


def classifier(model: Path, test: Path) -> None:
    """A logistic regression on iris, pickled to ``model`` as the docs' ``model.pkl`` is; ``test`` its test data."""
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    x, y = load_iris(return_X_y=True)
    x = x.astype(np.float32)
    with model.open("wb") as fh:
        pickle.dump(LogisticRegression(max_iter=1000).fit(x, y), fh)
    np.savez(test, input=x, label=y)
