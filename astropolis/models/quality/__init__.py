"""The quality resident: one frame -> QualityReport (see MODEL_CARD.md)."""
