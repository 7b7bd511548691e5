"""What a classification accuracy means: against the majority-class baseline, per class, and where the
errors go (the confusion matrix).

An accuracy of 0.50 on SST-2 is chance; 0.25 on a test set that is 60% one class is worse than always
answering that class. So every fine-tuning report carries the accuracy of predicting the train half's
most frequent label, and per-class accuracies that show a model answering one label for everything.
"""

from __future__ import annotations

import numpy as np


def confusion_matrix(predicted, labels, n_labels: int) -> np.ndarray:
    """(n_labels, n_labels) counts: row = the true label, column = the predicted one."""
    matrix = np.zeros((n_labels, n_labels), dtype=np.int64)
    np.add.at(matrix, (np.asarray(labels, dtype=np.int64), np.asarray(predicted, dtype=np.int64)), 1)
    return matrix


def per_class_accuracy(matrix: np.ndarray) -> list[float | None]:
    """Recall of each true label (None for a label absent from the test items)."""
    totals = matrix.sum(1)
    return [float(matrix[i, i] / t) if t else None for i, t in enumerate(totals)]


def majority_baseline(train_labels, test_labels, label_names: list[str]) -> dict:
    """Always answer the train half's most frequent label (the first such on a tie): its test accuracy."""
    train_labels, test_labels = np.asarray(train_labels), np.asarray(test_labels)
    majority = int(np.bincount(train_labels, minlength=len(label_names)).argmax())
    return {"label": label_names[majority], "accuracy": float((test_labels == majority).mean()),
            "chance": 1.0 / len(label_names)}


def scored(logits, labels, label_names: list[str]) -> dict:
    """Accuracy, per-class accuracy ({label: acc}) and the confusion matrix of one model's logits."""
    import torch

    predicted = logits.argmax(-1).cpu()
    labels = torch.as_tensor(np.asarray(labels))
    matrix = confusion_matrix(predicted.numpy(), labels.numpy(), len(label_names))
    return {"accuracy": float((predicted == labels).float().mean()),  # float32, as every accuracy here
            "per_class_accuracy": dict(zip(label_names, per_class_accuracy(matrix))),
            "confusion": matrix.tolist()}
