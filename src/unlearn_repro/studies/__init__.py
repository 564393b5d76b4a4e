"""The studies, one declaration file each, registered by name when this package is imported: every module
here is imported, so a new study is a new file here (beside its rule file, pipeline and report modules and
params block), with no list to edit. The Snakefile includes each study's rule file and asks for its target,
config.load_schema merges its params block's schema, the CLI gets its commands and dvc.yaml its stage."""

import importlib
import pkgutil

from unlearn_repro.studies.base import STUDIES, DvcStage, Study, block_schema, register  # noqa: F401

for _mod in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    importlib.import_module(f"{__name__}.{_mod}")
