"""Stage 3: recognition, retrieval, ASLAN similarity, kNN and linear probes, embeddings, Grad-CAM and speediness
curves from checkpoints and stores (v3s-eval)."""
