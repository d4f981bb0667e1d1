"""The former spelling of the main job, `python -m v3s.evaluate.demo`, kept so that it still runs.

The main job lives in `v3s.pipeline.demo` (the one package allowed to import every stage), and `v3s-eval demo` is
its command. This module only hands over to it when run as a script; it imports nothing from the pipeline, so
`evaluate/` stays below it.
"""
if __name__ == "__main__":
    import runpy

    runpy.run_module("v3s.pipeline.demo", run_name="__main__", alter_sys=True)
