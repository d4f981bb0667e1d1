"""Evaluation metrics on plain numpy arrays from any model: recognition, retrieval, ASLAN similarity."""
