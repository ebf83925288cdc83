"""Run a training script with `transformers.Trainer.train` timed in wall and CPU seconds.

    python bench/_timed_train.py TIMING.json SCRIPT [SCRIPT ARGUMENTS...]

Writes `{"train_wall_s", "train_cpu_s"}` to TIMING.json when training returns. CPU seconds are the process's
`time.process_time()`, summed over all its threads. They count the work done even while other processes hold the
cores, and wall seconds count the time a user waits. Neither covers imports or model loading.
"""

import json
import runpy
import sys
import time
from pathlib import Path


def main() -> None:
    timing_path, script, *arguments = sys.argv[1:]
    from transformers import Trainer

    original_train = Trainer.train

    def timed_train(self, *args, **kwargs):
        started_wall, started_cpu = time.perf_counter(), time.process_time()
        result = original_train(self, *args, **kwargs)
        timing = {"train_wall_s": time.perf_counter() - started_wall, "train_cpu_s": time.process_time() - started_cpu}
        Path(timing_path).write_text(json.dumps(timing))
        return result

    Trainer.train = timed_train
    sys.argv = [script, *arguments]
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
