"""CPU cost of the synthetic set per frame: render (numpy/OpenCV) and encode (ffmpeg child), one process.

Measures CPU seconds rather than wall time, so the figure holds on a machine shared with other work, and
decoding the same files back (what `v3s-prep extract` pays per frame) as the baseline in the same run:
`.venv/bin/python bench/synth_speed.py [N_VIDEOS] [xvid|h264]`.
The default set needs frames x (render + encode) CPU seconds.
"""
from __future__ import annotations

import resource
import sys
import tempfile
import time
from pathlib import Path

from v3s.preprocess import synth as S


def _cpu(who: int) -> float:
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


def main(n_videos: int = 40, codec: str = "xvid") -> None:
    config = S.SynthConfig(codec=codec)
    videos = S.plan_dataset(config)[:: len(S.plan_dataset(config)) // n_videos][:n_videos]
    render_cpu = encode_cpu = decode_cpu = 0.0
    frames_total = 0
    wall = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for v in videos:
            c0 = _cpu(resource.RUSAGE_SELF)
            frames, _ = S.render_video(v.spec)
            c1 = _cpu(resource.RUSAGE_SELF)
            e0 = _cpu(resource.RUSAGE_CHILDREN)
            path = Path(tmp) / f"x{S.CODECS[codec][1]}"
            S.encode_video(frames, path, codec)
            d0 = _cpu(resource.RUSAGE_CHILDREN) + _cpu(resource.RUSAGE_SELF)
            encode_cpu += d0 - e0 - c1
            S.read_video_rgb(path)
            decode_cpu += _cpu(resource.RUSAGE_CHILDREN) + _cpu(resource.RUSAGE_SELF) - d0
            render_cpu += c1 - c0
            frames_total += len(frames)
    wall = time.perf_counter() - wall
    total = sum(S.sample_scene(v.spec).n_frames for v in S.plan_dataset(config))
    per = (render_cpu + encode_cpu) / frames_total
    print(f"{n_videos} videos, {frames_total} frames at {config.size[0]}x{config.size[1]} ({config.codec}): "
          f"render {1e3 * render_cpu / frames_total:.2f} ms/frame, encode {1e3 * encode_cpu / frames_total:.2f} "
          f"ms/frame CPU; wall {wall:.1f} s")
    print(f"baseline, decoding the same files back: {1e3 * decode_cpu / frames_total:.2f} ms/frame CPU; "
          f"making a frame costs {(render_cpu + encode_cpu) / decode_cpu:.1f}x decoding it")
    print(f"default set: {total} frames -> {per * total:.1f} CPU s, {per * total / 2:.1f} s on 2 free cores")


if __name__ == "__main__":
    main(*(int(a) if a.isdigit() else a for a in sys.argv[1:]))
