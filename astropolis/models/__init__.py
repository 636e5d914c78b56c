"""The ML residents: inference, training scripts, seeded data generators, model cards and small committed
weights. May import `lake` (types only). Filled by the residents issues."""
