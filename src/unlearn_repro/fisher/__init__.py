"""Second-order information: the block-diagonal inverse empirical Fisher (Woodbury / Sherman-Morrison)."""
from unlearn_repro.fisher.woodbury import EmpiricalFisherInverse, FisherMemoryError, fisher_bytes  # noqa: F401
