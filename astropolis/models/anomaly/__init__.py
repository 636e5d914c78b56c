"""The anomaly resident: unusual sources in a frame, scored without labels (see MODEL_CARD.md).

detection.py finds sources and sets defects aside, features.py and residuals.py measure them, catalog.py drops
catalogued galaxies, model.py scores them, resident.py reports and proposes reviews; inject.py, dataset.py,
evaluation.py, train.py and card.py make, judge and document the model."""
