"""Worker processes that end with their parent: a loky worker initializer, light to import so it arms at once."""
from __future__ import annotations

import os
import threading
import time


def exit_with_parent(parent: int) -> None:
    """End this process within a second of its parent's death, even by kill -9 (loky's own workers otherwise work
    through their queue first: minutes). A thread polls the parent pid; its ffmpeg children then die on the
    closed pipe.

    Not prctl(PR_SET_PDEATHSIG): that signal follows the thread that spawned the worker, and joblib spawns
    workers from short-lived threads.

    Args:
        parent: pid of the process that started the workers. A worker whose parent died while it was still
            starting has another parent pid already, and ends at once.
    """

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.25)
        os._exit(1)

    threading.Thread(target=watch, name="v3s-exit-with-parent", daemon=True).start()
