"""Stage 2: V3S pretraining and supervised finetuning on cached frames (v3s-train)."""
