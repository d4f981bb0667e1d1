"""Code two stages both need: the store format, ffmpeg location, V3S transforms, backbones, configs."""
