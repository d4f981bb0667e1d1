"""Stage 3: recognition, retrieval, ASLAN similarity and Grad-CAM from checkpoints and stores (v3s-eval)."""
