"""Work beyond one process: deterministic sharding (``--part K/N``), the Ray engine (``--engine ray``),
the archive index (``radseg index``) and its catalog as the input of ``segment`` / ``convert``."""
