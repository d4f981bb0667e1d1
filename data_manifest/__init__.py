"""Dataset layouts and the official split files (UCF101, HMDB51, Kinetics-400, ASLAN, folder)."""
