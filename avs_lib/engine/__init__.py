"""Training and evaluation: datasets from configs, the system of models and losses, fit, evaluate."""
