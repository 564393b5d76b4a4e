"""The workflow's job entry point (`python -m unlearn_repro.job <command> ...`): the command runs in a child
forked by the run's job server (jobserver.py) when there is one, else in this process, as
`python -m unlearn_repro` would. Imports only the standard library before it knows which."""

import os
import runpy
import sys
import time


def main() -> None:
    os.environ["UNLEARN_JOB_START"] = repr(time.time())  # progress.py logs the first model step against it
    path = os.environ.get("UNLEARN_JOBSERVER", "")
    if path.startswith("/"):
        from unlearn_repro.jobserver import submit

        code = submit(path, sys.argv[1:])
        if code is not None:
            sys.exit(code)
    sys.argv = ["unlearn_repro", *sys.argv[1:]]
    runpy.run_module("unlearn_repro", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
