"""Second-order information: the block-diagonal inverse empirical Fisher (Woodbury / Sherman-Morrison),
sharded and planned in memory, and the per-sample gradients of D+ it is built from."""

from unlearn_repro.fisher import per_sample  # noqa: F401,E402
from unlearn_repro.fisher.woodbury import (  # noqa: F401
    STORAGE,
    EmpiricalFisherInverse,
    FisherMemoryError,
    batched_eigh,
    fisher_bytes,
    invert_spd,
    memory_plan,
    plan_layout,
    propose,
    shard_ranges,
)
